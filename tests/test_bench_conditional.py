"""The conditional benchmark (issue 17, "Measured"): ``run_bench(..., condition="label")``
trains the models that can take a class as Q(x | c), in folders of their own, and reports
conditional NLL, Bayes-rule accuracy and the class accuracy of conditional samples beside a
scikit-learn LogisticRegression row."""

from __future__ import annotations

import json
import math

import pytest
import torch

import genzoo
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


# -- given a text input: genzoo bench --condition input -----------------------------------------
#: Whether ``sentiment-text`` (a label given a text, known P(Y | X)) is registered.
SENTIMENT_TEXT = "sentiment-text" in grid.SHIPPED
TEXT_TINY = {
    "lstm-lm": grid.Budget(quick_steps=10, batch_size=64, lr=1e-2,
                           hparams={"embedding": 8, "hidden": 16}, datasets=("grammar",),
                           conditioned={"input": ("synthetic-pairs",)}),
    "categorical": grid.Budget(quick_steps=10, batch_size=128, lr=1e-2, hparams={"hidden": [8]},
                               datasets=("digits-binary",),
                               conditioned={"input": ("sentiment-text",)}),
}  # fmt: skip


def test_the_input_condition_selects_the_text_conditional_cells():
    models = [m.name for m in genzoo.list_models()]
    chosen = {(m, d) for m, d, _, _ in grid.cells(models, ["8gaussians", "digits"], 1,
                                                  condition="input")}  # fmt: skip
    expected = {("lstm-lm", "synthetic-pairs"), ("transformer-lm", "synthetic-pairs")}
    assert chosen == expected | ({("categorical", "sentiment-text")} if SENTIMENT_TEXT else set())


def test_text_conditional_bench_reports_nll_entropy_and_kl_gap(monkeypatch, tmp_path):
    monkeypatch.setattr(grid, "BUDGETS", TEXT_TINY)
    run_bench(tmp_path, quick=True, models=["lstm-lm", "categorical", "gmm"], jobs=1,
              condition="input")  # fmt: skip
    rows = {(r["model"], r["dataset"]): r for r in rows_of(tmp_path)}
    expected = {("lstm-lm", "synthetic-pairs")}
    assert set(rows) == expected | (
        {("categorical", "sentiment-text")} if SENTIMENT_TEXT else set()
    )
    assert all(r["status"] == "ok" and r["condition"] == "input" for r in rows.values()), rows
    lm = rows["lstm-lm", "synthetic-pairs"]
    assert lm["true_conditional_entropy"] == pytest.approx(0.5, abs=0.1)
    assert lm["kl_gap"] == pytest.approx(lm["nll"] - lm["true_conditional_entropy"], abs=1e-6)
    if SENTIMENT_TEXT:
        assert 0 < rows["categorical", "sentiment-text"]["conditional_kl"] < math.log(3)
    report = (tmp_path / "report.md").read_text()
    section = report.split("## Conditional generation")[1].split("\n## ")[0]
    assert "### Given a text input" in section and "Bayes accuracy" not in section
    for column in ("cond. NLL (nats) ↓", "nats per output token/label ↓",
                   "true conditional entropy (nats)", "KL gap (nats) ↓"):  # fmt: skip
        assert column in section
    line = next(x for x in section.splitlines() if x.startswith("| lstm-lm"))
    per_token = f"{lm['nll'] / 6:.3f}"  # an output: 6 positions
    assert per_token in line and f"{lm['kl_gap']:.3f}" in line
