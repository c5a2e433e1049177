"""Discrete and autoregressive models: normalisation by enumeration, causality, sampling."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import genzoo
from genzoo.data import text
from genzoo.errors import DataError
from genzoo.models.autoregressive import (
    LSTMLM,
    MADE,
    Categorical,
    ConditionalCategorical,
    PixelCNN,
    TransformerLM,
    bits_per_token,
    filter_logits,
    perplexity,
    sample_logits,
)
from genzoo.models.autoregressive.common import RasterModel


def _randomise(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights (zero-initialised layers would make every model uniform)."""
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.7)
    return model


TINY = {
    "lstm": lambda: LSTMLM([3], 3, embedding=4, hidden=8),
    "transformer-learned": lambda: TransformerLM([3], 3, width=8, heads=2, n_layers=2),
    "transformer-sinusoidal": lambda: TransformerLM(
        [3], 3, width=8, heads=2, positions="sinusoidal"
    ),
    "made": lambda: MADE([3], 3, hidden=[16, 16]),
    "pixelcnn": lambda: PixelCNN([1, 1, 3], 3, channels=4, n_layers=1, kernel=3),
    "categorical": lambda: Categorical([3], 3),
    "categorical-joint": lambda: Categorical([3], 3, joint=True),
}


@pytest.mark.parametrize("name", TINY)
def test_probabilities_of_all_sequences_sum_to_one(name):
    model = _randomise(TINY[name]())
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))  # all 27 sequences
    every = every.view(27, *model.data_shape)
    with torch.no_grad():
        log_p = model.log_prob(every).double()
    assert log_p.std() > 0.05  # a non-trivial distribution
    assert math.isclose(float(torch.logsumexp(log_p, 0).exp()), 1.0, rel_tol=1e-5)


CAUSAL = {
    "lstm": lambda: LSTMLM([8], 5, embedding=4, hidden=8),
    "transformer": lambda: TransformerLM([8], 5, width=8, heads=2),
    "made": lambda: MADE([1, 2, 4], 5, hidden=[32]),
    "pixelcnn": lambda: PixelCNN([1, 3, 3], 5, channels=4, n_layers=2, kernel=3),
}


@pytest.mark.parametrize("name", CAUSAL)
@pytest.mark.parametrize("position", [0, 3, 6])
def test_changing_a_later_token_never_changes_earlier_conditionals(name, position):
    model = _randomise(CAUSAL[name]())
    x = torch.randint(0, 5, (16, *model.data_shape))
    y = x.clone().view(16, -1)
    y[:, position] = (y[:, position] + 1) % 5
    before = model.log_prob_terms(x)
    after = model.log_prob_terms(y.view_as(x))
    assert torch.allclose(before[:, :position], after[:, :position], atol=1e-6)
    assert not torch.allclose(before[:, position + 1 :], after[:, position + 1 :])


def test_lstm_learns_the_synthetic_language_to_its_entropy_rate():
    """Margin: within 0.06 nats/token of the exact cross-entropy floor after 150 steps."""
    x = genzoo.load_dataset("grammar", split="train", n=2000)[:, :16]
    test = genzoo.load_dataset("grammar", split="test", n=2000)[:, :16]
    model = genzoo.create("lstm-lm", data=x, embedding=8, hidden=32)
    genzoo.Trainer(steps=150, batch_size=64, lr=2e-2, progress=False).fit(model, x)
    with torch.no_grad():
        ce = float(-model.log_prob(test).mean()) / 16  # nats per token
    floor = text.GRAMMAR.sequence_entropy(16) / 16
    assert floor - 0.01 < ce < floor + 0.06, (ce, floor)


def test_filters_keep_exactly_the_allowed_tokens():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0, 3.0]])
    assert torch.isfinite(filter_logits(logits, top_k=2)).nonzero()[:, 1].tolist() == [0, 5]
    probs = logits.softmax(-1)[0]  # sorted: 5 (.52), 0 (.19), 1 (.07) ...
    nucleus = filter_logits(logits, top_p=0.7)
    assert torch.isfinite(nucleus).nonzero()[:, 1].tolist() == [0, 5]
    assert probs[5] < 0.7 <= probs[5] + probs[0]
    assert torch.isfinite(filter_logits(logits, top_p=0.6)).nonzero()[:, 1].tolist() == [5]
    many = logits.expand(4000, -1)
    g = torch.Generator().manual_seed(0)
    drawn = set(sample_logits(many, g, temperature=5.0, top_k=3).tolist())
    assert drawn == {0, 1, 5}
    drawn = set(sample_logits(many, g, temperature=5.0, top_p=0.3).tolist())
    assert drawn <= {5, 0} and len(drawn) == 2  # hot enough that p(5) < 0.3


def test_generation_is_seeded_keeps_the_prompt_and_respects_top_k():
    model = _randomise(TransformerLM([10], 6, width=8, heads=2))
    prompt = torch.tensor([[1, 2, 3], [4, 5, 0]])
    a = model.generate(prompt, generator=torch.Generator().manual_seed(1), top_k=2)
    b = model.generate(prompt, generator=torch.Generator().manual_seed(1), top_k=2)
    assert a.shape == (2, 10) and torch.equal(a, b) and torch.equal(a[:, :3], prompt)
    # with top_k=1 generation is greedy: each new token is the argmax of its conditional
    greedy = model.generate(prompt, top_k=1)
    with torch.no_grad():
        terms = model.log_prob_terms(greedy)
        start = torch.full((2, 1), model.start)
        best = model.logits(torch.cat([start, greedy[:, :-1]], 1)).log_softmax(-1).amax(-1)
    assert torch.allclose(terms[:, 3:], best[:, 3:], atol=1e-6)
    lstm = _randomise(LSTMLM([10], 6, embedding=4, hidden=8))
    longer = lstm.generate(prompt, length=20, generator=torch.Generator().manual_seed(0))
    assert longer.shape == (2, 20) and int(longer.max()) < 6


def test_made_beats_the_independent_categorical_on_binary_digits():
    x = genzoo.load_dataset("digits-binary", split="train")
    test = genzoo.load_dataset("digits-binary", split="test")
    nll = {}
    for name, hp, lr in (("categorical", {}, 5e-2), ("made", {"hidden": [64]}, 3e-3)):
        model = genzoo.create(name, data=x, **hp)
        genzoo.Trainer(steps=200, batch_size=128, lr=lr, progress=False).fit(model, x)
        with torch.no_grad():
            nll[name] = float(-model.log_prob(test).mean())
        assert model.sample(3, torch.Generator().manual_seed(0)).shape == (3, 1, 8, 8)
    assert nll["made"] < nll["categorical"] - 4.0, nll
    # the independent categorical's cross-entropy minimiser is the pixel frequencies
    model = genzoo.create("categorical", data=x)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(300):  # full batch
        opt.zero_grad()
        model.loss(x)["cross_entropy"].backward()
        opt.step()
    freq = x.flatten(1).mean(0)
    inside = (freq > 0.05) & (freq < 0.95)  # frequencies 0 and 1 sit at logit -inf/+inf
    error = (model.logits.detach().softmax(-1)[:, 1] - freq).abs()
    assert error[inside].max() < 0.005 and error.max() < 0.05


def test_conditional_categorical_fits_a_known_conditional():
    table = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]])
    g = torch.Generator().manual_seed(0)
    c = torch.randint(0, 3, (3000,), generator=g)
    y = torch.multinomial(table[c], 1, generator=g).squeeze(1)
    x = torch.nn.functional.one_hot(c, 3).float()
    q = ConditionalCategorical(3, 3, hidden=())
    opt = torch.optim.Adam(q.parameters(), lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        q.loss(x, y).backward()
        opt.step()
    with torch.no_grad():
        fitted = q.logits(torch.eye(3)).softmax(-1)
    assert torch.allclose(fitted, table, atol=0.05)
    assert set(q.sample(x[:500], g, top_k=1).tolist()) <= {0, 2}  # greedy: modes only


def test_units_and_input_checks():
    log_p = torch.tensor([-8 * math.log(2), -8 * math.log(2)])
    assert bits_per_token(log_p, 4) == pytest.approx(2.0)
    assert perplexity(log_p, 4) == pytest.approx(4.0)
    model = LSTMLM([4], 5, embedding=4, hidden=4)
    with pytest.raises(DataError, match="values 0..4"):
        model.log_prob(torch.tensor([[0, 1, 2, 5]]))
    with pytest.raises(DataError, match="shape"):
        model.log_prob(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(DataError, match="discrete"):
        genzoo.create("made", data=torch.randn(10, 2))
    with pytest.raises(ValueError, match="single-channel"):
        PixelCNN([3, 8, 8], 2)
    with pytest.raises(ValueError, match="positions"):
        TransformerLM([4], 5, positions="rotary")
    with pytest.raises(ValueError, match="top_p"):
        LSTMLM([4], 5, top_p=0.0)
    with pytest.raises(ValueError, match="too large"):
        Categorical([1, 8, 8], 2, joint=True)


def test_figures_are_written(tmp_path):
    from genzoo.figures.autoregressive import plot_image_samples, plot_surprisal, surprisal

    image_model = PixelCNN([1, 4, 4], 2, channels=4, n_layers=1, kernel=3)
    images = torch.randint(0, 2, (3, 1, 4, 4))
    bits = surprisal(image_model, images)
    assert torch.allclose(bits.sum(1), -image_model.log_prob(images).double() / math.log(2))
    assert plot_surprisal(image_model, images, tmp_path / "img.png").stat().st_size > 0
    assert plot_image_samples(image_model, images, tmp_path / "s.png", n=3).stat().st_size > 0
    tok = text.tokenizer_for("grammar")
    lm = LSTMLM([6], tok.vocab_size, embedding=4, hidden=4)
    seqs = genzoo.load_dataset("grammar", n=2)[:, :6]
    assert plot_surprisal(lm, seqs, tmp_path / "t.png", tokenizer=tok).stat().st_size > 0


# -- sampling one scalar at a time -------------------------------------------------------------
RASTER_CASES = {
    "made-binary-image": lambda: MADE([1, 6, 5], 2, hidden=[24, 24]),
    "made-levels-vector": lambda: MADE([9], 4, hidden=[16, 16, 16], activation="tanh"),
    "pixelcnn-window-smaller-than-image": lambda: PixelCNN(
        [1, 11, 12], 3, channels=8, n_layers=2, kernel=5
    ),
    "pixelcnn-no-blocks": lambda: PixelCNN([1, 7, 9], 2, channels=6, n_layers=0, kernel=3),
}


@pytest.mark.parametrize("case", RASTER_CASES)
def test_the_samplers_conditionals_equal_a_whole_pass(case):
    """MADE's incremental steps and PixelCNN's windows give each scalar's logits of a whole
    pass (float64), and their samples are the whole-pass sampler's, draw for draw."""
    torch.manual_seed(0)
    model = _randomise(RASTER_CASES[case]()).double()
    x = torch.randint(0, model.levels, (5, *model.data_shape))
    with torch.no_grad():
        whole, conditional = model._logits(x), model._conditional(x)
        for d in range(model.data_dim):
            assert torch.allclose(conditional(d), whole[:, d], rtol=0, atol=1e-12), d
        fast = model.sample(30, torch.Generator().manual_seed(1))
        plain = RasterModel._conditional.__get__(model)
        model._conditional = plain  # the base class's: a whole pass per scalar
        reference = model.sample(30, torch.Generator().manual_seed(1))
    assert torch.equal(fast, reference)


def test_the_pixelcnn_window_is_no_smaller_than_what_reaches_a_pixel():
    """With a reach one row/column short, the windowed logits differ from a whole pass: the
    window test above can fail."""
    torch.manual_seed(0)
    model = _randomise(PixelCNN([1, 11, 12], 3, channels=8, n_layers=2, kernel=5)).double()
    x = torch.randint(0, 3, (4, 1, 11, 12))
    model.n_layers = 1  # reach 3 instead of 4; the network is unchanged
    with torch.no_grad():
        whole, conditional = model._logits(x), model._conditional(x)
        error = max((conditional(d) - whole[:, d]).abs().max() for d in range(model.data_dim))
    assert error > 1e-6


@pytest.mark.parametrize("name", ["made", "pixelcnn"])
def test_no_draws_is_an_empty_batch(name):
    """``sample(0)`` is an empty batch, as for the other families (it was a reshape error)."""
    x = torch.randint(0, 2, (20, 1, 8, 8)).float()
    assert genzoo.create(name, data=x).sample(0).shape == (0, 1, 8, 8)
