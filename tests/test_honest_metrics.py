"""Every number labelled for what it is: no NLL from an unnormalised energy, the importance-
weighted dequantisation bound (Theis et al. 2016; Ho et al. 2019), bits per scored token for the
sentence VAE, and the classifier two-sample test (Lopez-Paz & Oquab 2017)."""

from __future__ import annotations

import math

import pytest
import torch

import genzoo
from genzoo.errors import DataError, DensityUnavailable
from genzoo.metrics import (
    UNNORMALIZED_NOTE,
    classifier_two_sample_accuracy,
    dequantized_log_prob,
    negative_log_likelihood,
)
from genzoo.metrics.likelihood import per_example_log_prob
from genzoo.models.base import GenerativeModel
from genzoo.workflow import evaluate

NLL_KEYS = ("nll", "nll_stderr", "bits_per_dim", "bits_per_token", "gap_to_entropy", "kl_gap")


# -- unnormalised densities -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ebm", "mdsm-ebm"])
def test_an_unnormalised_model_gets_no_nll_and_a_constant_energy_shift_changes_nothing(name):
    x = genzoo.load_dataset("digits", split="train", n=64)
    model = genzoo.create(name, data=x, hidden=8, depth=1, sample_steps=2)
    assert model.density == "unnormalized"
    before = evaluate(model, "digits", n=40, seed=1)
    assert before["note"] == UNNORMALIZED_NOTE
    assert not set(NLL_KEYS) & set(before)

    log_prob = model.log_prob
    model.log_prob = lambda batch: log_prob(batch) + 100.0  # E(x) - 100: the same model
    after = evaluate(model, "digits", n=40, seed=1)
    assert after == before
    with pytest.raises(DensityUnavailable, match="unknown constant"):
        negative_log_likelihood(model, genzoo.load_dataset("digits", split="test", n=8), 17)


def test_a_two_dimensional_ebm_is_normalised_by_quadrature_and_keeps_its_nll():
    x = genzoo.load_dataset("moons", split="train", n=200)
    model = genzoo.create("ebm", data=x, hidden=8, depth=1, grid_size=20, sample_steps=2)
    result = evaluate(model, "moons", n=50)
    assert result["nll_kind"] == "exact" and "note" not in result
    assert math.isfinite(result["nll"]) and "kl_gap" in result


# -- dequantisation -----------------------------------------------------------------------------
class _Gaussian1D(GenerativeModel):
    """An exact N(0.45, 0.2^2) density on the line: its discrete cell masses are known."""

    density = "exact"

    def __init__(self) -> None:
        super().__init__([1])

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.distributions.Normal(0.45, 0.2).log_prob(x[:, 0].double())


def test_dequantisation_bound_tightens_with_draws_towards_the_exact_discrete_nll():
    levels = 8
    x = torch.arange(levels, dtype=torch.float64).repeat(50)[:, None]  # every level, 50 times
    normal = torch.distributions.Normal(torch.tensor(0.45, dtype=torch.float64), 0.2)
    cell_mass = normal.cdf((x[:, 0] + 1) / levels) - normal.cdf(x[:, 0] / levels)
    exact = float(-cell_mass.log().mean())
    model = _Gaussian1D()
    nll = {k: negative_log_likelihood(model, x, levels, k)["nll"] for k in (1, 8, 256)}
    assert nll[1] > nll[8] > nll[256] >= exact - 1e-3
    assert nll[256] - exact < 0.1 * (nll[1] - exact)  # 256 draws close most of the gap


@pytest.fixture(scope="module")
def digits_flow():
    x = genzoo.load_dataset("digits", split="train", n=64)
    torch.manual_seed(0)
    seen = genzoo.data.dequantize(x, 17, torch.Generator().manual_seed(0))
    return genzoo.create("realnvp", data=seen, n_layers=2, hidden=16, n_levels=1)


def test_k_draws_are_a_log_mean_exp_and_one_draw_is_the_old_single_draw_bound(digits_flow):
    x = genzoo.load_dataset("digits", split="test", n=100)
    dim, levels = 64, 17
    generator = torch.Generator().manual_seed(3)
    draws = [
        per_example_log_prob(digits_flow, (x + torch.rand(x.shape, generator=generator)) / levels)
        - dim * math.log(levels)
        for _ in range(8)
    ]
    one = negative_log_likelihood(digits_flow, x, levels, n_dequantizations=1, seed=3)
    eight = negative_log_likelihood(digits_flow, x, levels, n_dequantizations=8, seed=3)
    assert one["nll"] == pytest.approx(float(-draws[0].mean()), rel=1e-12)
    log_mean_exp = torch.logsumexp(torch.stack(draws), 0) - math.log(8)
    assert eight["nll"] == pytest.approx(float(-log_mean_exp.mean()), rel=1e-12)
    torch.testing.assert_close(
        dequantized_log_prob(digits_flow, x, levels, 8, seed=3), log_mean_exp, rtol=0, atol=0
    )
    mean_of_logs = float(-torch.stack(draws).mean(0).mean())
    assert eight["nll"] <= mean_of_logs  # Jensen, draw by draw
    assert eight["nll"] <= one["nll"]  # tighter
    assert one["nll_kind"] == eight["nll_kind"] == "bound"
    assert eight["dequantization_draws"] == 8 and "k=8" in eight["nll_label"]
    assert "upper bound" in eight["nll_label"]
    assert eight["bits_per_dim"] == pytest.approx(eight["nll"] / (dim * math.log(2)))
    with pytest.raises(ValueError, match="draws"):
        negative_log_likelihood(digits_flow, x, levels, n_dequantizations=0)


def test_evaluate_passes_the_draws_through_and_labels_the_bound(digits_flow):
    one = evaluate(digits_flow, "digits", n=60)
    four = evaluate(digits_flow, "digits", n=60, dequantization_draws=4)
    assert one["dequantization_draws"] == 1 and four["dequantization_draws"] == 4
    assert four["nll_kind"] == "bound" and four["measure"] == "NLL"
    assert four["nll"] <= one["nll"]
    assert "bits per dimension" in four["bits_label"]


def test_a_discrete_model_reports_an_exact_nll_without_dequantisation():
    x = genzoo.load_dataset("digits", split="train", n=200)
    model = genzoo.create("categorical", data=x, levels=17)
    result = evaluate(model, "digits", n=50)
    assert result["nll_kind"] == "exact" and result["nll_label"] == "NLL"
    assert "dequantization_draws" not in result


# -- bits per scored token ----------------------------------------------------------------------
def test_sentence_vae_reports_bits_per_scored_token_not_per_padded_position():
    train = genzoo.load_dataset("stdlib-sentences", split="train", n=64)
    model = genzoo.create("sentence-vae", data=train, hidden=8, embed_dim=8, latent_dim=2,
                          iwae_samples=2, vocab_size=1004)  # fmt: skip
    result = evaluate(model, "stdlib-sentences", n=48)
    x = genzoo.load_dataset("stdlib-sentences", split="test", n=48)
    counts = model.scored_positions(x)
    eos = (x == 2).int().argmax(1)  # the first <eos>: every sentence has one
    torch.testing.assert_close(counts, eos + 1)
    nats = float(-model.log_prob(x).double().sum())
    assert result["scored_tokens"] == int(counts.sum()) < 48 * 24
    assert result["bits_per_token"] == pytest.approx(nats / (int(counts.sum()) * math.log(2)))
    assert result["bits_per_token"] > 1.2 * result["nll"] / (24 * math.log(2))
    assert "bits_per_dim" not in result and "scored token" in result["bits_label"]
    assert result["nll_kind"] == "estimate" and "IWAE-2" in result["nll_label"]


# -- classifier two-sample test -----------------------------------------------------------------
def test_c2st_is_at_chance_on_one_distribution_and_deterministic():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, 3, generator=g), torch.randn(2000, 3, generator=g)
    accuracy = classifier_two_sample_accuracy(a, b, seed=0)
    assert abs(accuracy - 0.5) < 0.05
    assert classifier_two_sample_accuracy(a, b, seed=0) == accuracy


def test_c2st_tells_a_shifted_gaussian_apart():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(1500, 3, generator=g), torch.randn(1000, 3, generator=g) + 1.0
    assert classifier_two_sample_accuracy(a, b, seed=0) > 0.7  # Bayes: Phi(sqrt(3)/2) = 0.81
    images = torch.randn(400, 1, 4, 4, generator=g)
    assert classifier_two_sample_accuracy(images, images + 1.0) > 0.9  # flattened


def test_c2st_rejects_bad_inputs():
    good = torch.randn(50, 3)
    with pytest.raises(DataError, match="one shape"):
        classifier_two_sample_accuracy(good, torch.randn(50, 4))
    with pytest.raises(DataError, match="NaN"):
        classifier_two_sample_accuracy(good, torch.full((50, 3), math.nan))
    with pytest.raises(DataError, match="at least 20"):
        classifier_two_sample_accuracy(good, torch.randn(10, 3))
    with pytest.raises(DataError, match="scalar"):
        classifier_two_sample_accuracy(good, torch.tensor(1.0))
    with pytest.raises(DataError, match="numbers"):
        classifier_two_sample_accuracy(good, [["a", "b", "c"]] * 30)


@pytest.fixture
def variational_glow():
    """A small untrained Glow with variational dequantisation and 16 test digits."""
    x = genzoo.load_dataset("digits", split="test", n=16)
    glow = genzoo.create("glow", data=x, n_steps=1, hidden=8, dequantization="variational",
                         levels=17, dequantizer_hidden=4, dequantizer_couplings=1)  # fmt: skip
    return glow, x


def test_a_stochastic_bound_is_the_same_on_every_evaluation_and_leaves_the_rng_alone(
    variational_glow,
):
    """Glow with variational dequantisation draws u ~ q(u | x) in log_prob: the same seed
    gives the same NLL twice, another seed another one, and the caller's random state is not
    consumed."""
    glow, x = variational_glow
    torch.manual_seed(5)
    first = negative_log_likelihood(glow, x, 17)["nll"]
    after_first = torch.rand(1)
    torch.manual_seed(6)
    second = negative_log_likelihood(glow, x, 17)["nll"]
    assert first == second
    torch.manual_seed(5)
    assert torch.equal(after_first, torch.rand(1))
    assert negative_log_likelihood(glow, x, 17, seed=1)["nll"] != first


def test_draws_of_a_model_dequantizing_itself_give_the_importance_weighted_bound(variational_glow):
    """Glow's variational dequantisation: k draws of u ~ q(u | x) averaged in probability
    (log-mean-exp) bound log P(x) at least as tightly as one, and are labelled so."""
    glow, x = variational_glow
    one, many = (negative_log_likelihood(glow, x, 17, k) for k in (1, 16))
    assert one["nll"] == negative_log_likelihood(glow, x, 17)["nll"]
    assert many["nll"] < one["nll"] and many["nll_kind"] == one["nll_kind"] == "bound"
    assert many["dequantization_draws"] == 16 and "k=16" in many["nll_label"]
