"""The conditional benchmark (issue 17, "Measured"): ``run_bench(..., condition="label")``
trains the models that can take a class as Q(x | c), in folders of their own, and reports
conditional NLL, Bayes-rule accuracy and the class accuracy of conditional samples beside a
scikit-learn LogisticRegression row."""

from __future__ import annotations

import json

import pytest
import torch

from genzoo.bench import grid
from genzoo.bench.measure import logistic_reference, sample_class_accuracy
from genzoo.bench.runner import RESULT_FILE, cell_dir, cell_identity, run_bench
from genzoo.data import dataset_info
from genzoo.metrics.modes import mode_centres

TINY = {
    "gmm": grid.Budget(quick_steps=5, hparams={"n_components": 1}),
    "realnvp": grid.Budget(quick_steps=5, batch_size=64, hparams={"hidden": 16, "n_layers": 2}),
    "vae": grid.Budget(quick_steps=5, batch_size=64, hparams={"hidden": 16, "iwae_samples": 8}),
}


@pytest.fixture
def tiny_budgets(monkeypatch):
    monkeypatch.setattr(grid, "BUDGETS", TINY)


def rows_of(path):
    return [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]


def test_conditional_bench_writes_its_columns_section_and_reference(tiny_budgets, tmp_path):
    # planar (unconditional only) is left out: only models that can take a class are trained
    run_bench(tmp_path, quick=True, models=["gmm", "realnvp", "vae", "planar"],
              datasets=["8gaussians", "swissroll"], jobs=1, condition="label")  # fmt: skip
    rows = rows_of(tmp_path)
    assert {(r["model"], r["dataset"]) for r in rows} == {
        ("gmm", "8gaussians"),
        ("realnvp", "8gaussians"),
        ("vae", "8gaussians"),
    }  # fmt: skip  (swissroll carries no label)
    assert all(r["status"] == "ok" and r["condition"] == "label" for r in rows), rows
    by_model = {r["model"]: r for r in rows}
    for name in ("gmm", "realnvp", "vae"):
        assert 0.0 <= by_model[name]["sample_class_accuracy"] <= 1.0
        assert by_model[name]["sample_class_accuracy_chance"] == pytest.approx(1 / 8)
        assert "nll" in by_model[name]
    # even 5 EM steps of one Gaussian per class put samples in their own mode
    assert by_model["gmm"]["sample_class_accuracy"] > 0.9
    assert by_model["gmm"]["bayes_accuracy"] > 0.9
    assert "bayes_accuracy" in by_model["realnvp"]
    report = (tmp_path / "report.md").read_text()
    assert "## Conditional generation" in report
    for column in ("cond. NLL (nats) ↓", "Bayes accuracy ↑", "sample class accuracy ↑"):
        assert column in report
    assert "LogisticRegression" in report
    references = json.loads((tmp_path / "conditional_references.json").read_text())
    assert references["8gaussians"]["bayes_accuracy"] > 0.9
    assert "Conditional generation" in (tmp_path / "report.html").read_text()


def test_conditional_and_unconditional_cells_never_share_a_folder(tiny_budgets, tmp_path):
    run_bench(tmp_path, quick=True, models=["gmm"], datasets=["8gaussians"], jobs=1)
    plain = json.loads((cell_dir(tmp_path, "gmm", "8gaussians", 0) / RESULT_FILE).read_text())
    run_bench(tmp_path, quick=True, models=["gmm"], datasets=["8gaussians"], jobs=1,
              condition="label")  # fmt: skip
    folder = cell_dir(tmp_path, "gmm", "8gaussians", 0, condition="label")
    assert folder.name == "gmm__8gaussians__0__c-label"
    conditional = json.loads((folder / RESULT_FILE).read_text())
    assert "condition" not in plain and conditional["condition"] == "label"
    assert plain["identity"] != conditional["identity"]
    assert conditional["identity"] == cell_identity("gmm", "8gaussians", True, None, 1.0, "label")
    # the unconditional cell was left as it was, and its identity is unchanged
    again = json.loads((cell_dir(tmp_path, "gmm", "8gaussians", 0) / RESULT_FILE).read_text())
    assert again == plain
    assert plain["identity"] == cell_identity("gmm", "8gaussians", True, None, 1.0)


def test_a_condition_no_dataset_carries_is_refused(tiny_budgets, tmp_path):
    with pytest.raises(ValueError, match="conditioned"):
        run_bench(tmp_path, quick=True, models=["gmm"], datasets=["swissroll"], jobs=1,
                  condition="label")  # fmt: skip


def test_sample_class_accuracy_on_known_cases():
    info = dataset_info("8gaussians")
    centres, _ = mode_centres("8gaussians")
    labels = torch.arange(80) % 8
    samples = torch.as_tensor(centres, dtype=torch.float32)[labels]

    class Points:
        data_kind = "continuous"

    exact = sample_class_accuracy(samples, labels, Points(), info)
    assert exact["sample_class_accuracy"] == 1.0
    shifted = sample_class_accuracy(samples, (labels + 1) % 8, Points(), info)
    assert shifted["sample_class_accuracy"] == 0.0


def test_logistic_reference_separates_digits():
    row = logistic_reference("digits")
    assert row["bayes_accuracy"] > 0.9  # a linear classifier on 8x8 digits: about 0.95
    assert logistic_reference("swissroll") == {}
