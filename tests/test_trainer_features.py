"""The training-loop features: datasets, schedules, accumulation, EMA, mixed precision,
compile, TensorBoard, and the overhead-free loop (it must train exactly as a bare loop)."""

from __future__ import annotations

import json

import pytest
import torch
from test_trainer import Exploding, _copy, _flow
from test_trainer import _trainer as trainer_of
from torch.utils.data import DataLoader, Dataset, IterableDataset

import genzoo
from genzoo.models.base import GenerativeModel
from genzoo.train.distributed import split_terms
from genzoo.train.fused_gradients import compile_per_class
from genzoo.train.schedules import lr_factor
from genzoo.train.trainer import make_optimizer


def _trainer(**kw) -> genzoo.Trainer:
    return trainer_of(**{"steps": 30, **kw})


def _assert_same(a, b, atol=0.0):
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if atol:
            assert torch.allclose(va, vb, atol=atol), k
        else:
            assert torch.equal(va, vb), k


class Rows(Dataset):
    """A map-style dataset of a tensor's rows, as numpy arrays (collated by the trainer)."""

    def __init__(self, x, c=None):
        self.x, self.c = x, c

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i].numpy() if self.c is None else (self.x[i].numpy(), self.c[i])


class Stream(IterableDataset):
    """An iterable dataset: the rows in a fixed order."""

    def __init__(self, x):
        self.x = x

    def __iter__(self):
        yield from self.x


# -- data: any Dataset, resumable ----------------------------------------------------------------
@pytest.mark.parametrize("order", ["random", "epochs"])
def test_a_dataset_trains_the_same_parameters_as_its_tensor(moons, order):
    initial = _flow(moons)
    from_tensor = _trainer(batch_order=order, seed=3).fit(_copy(initial), moons)
    from_dataset = _trainer(batch_order=order, seed=3).fit(_copy(initial), Rows(moons))
    _assert_same(from_tensor, from_dataset)


def test_a_conditional_dataset_matches_its_tensors(moons):
    c = (moons[:, 0] > 0).long()
    initial = genzoo.create("realnvp", data=moons, condition=c, n_layers=2, hidden=16)
    a = _trainer(steps=10).fit(_copy(initial), (moons, c))
    b = _trainer(steps=10).fit(_copy(initial), Rows(moons, c))
    _assert_same(a, b)


def test_resume_from_the_middle_of_an_epoch_of_a_dataset(moons, tmp_path):
    initial = _flow(moons)
    settings = dict(batch_order="epochs", batch_size=300)  # 7 batches an epoch: stop in one
    full = _trainer(steps=24, **settings).fit(_copy(initial), Rows(moons))
    _trainer(steps=10, out=tmp_path / "run", **settings).fit(_copy(initial), Rows(moons))
    resumed = _trainer(steps=24, out=tmp_path / "run", resume=True, **settings)
    _assert_same(full, resumed.fit(_flow(moons), Rows(moons)), atol=1e-6)


def test_a_dataloader_with_workers_matches_the_tensor_in_epoch_order(moons):
    initial = _flow(moons)
    settings = dict(batch_order="epochs", batch_size=250, steps=10)
    from_tensor = _trainer(**settings).fit(_copy(initial), moons)
    loader = DataLoader(Rows(moons), num_workers=2)
    _assert_same(from_tensor, _trainer(**settings).fit(_copy(initial), loader))


def test_an_iterable_dataset_resumes_mid_pass(moons, tmp_path):
    data = moons[:700]  # 3 batches of 256 a pass (the last one short)
    initial = _flow(data)
    full = _trainer(steps=8, batch_size=256).fit(_copy(initial), Stream(data))
    _trainer(steps=4, batch_size=256, out=tmp_path / "run").fit(_copy(initial), Stream(data))
    resumed = _trainer(steps=8, batch_size=256, out=tmp_path / "run", resume=True)
    _assert_same(full, resumed.fit(_flow(data), Stream(data)), atol=1e-6)


@pytest.mark.parametrize("source", ["stream", "loader"])
def test_a_model_drawing_noise_resumes_exactly_from_a_stream_or_a_loader(moons, tmp_path, source):
    # opening a DataLoader draws a seed from the global RNG: it must not shift the VAE's noise
    data = moons[:700]
    torch.manual_seed(0)
    initial = genzoo.create("vae", data=data)

    def feed():
        return Stream(data) if source == "stream" else DataLoader(Rows(data), batch_size=None)

    full = _trainer(steps=8, batch_size=256).fit(_copy(initial), feed())
    _trainer(steps=4, batch_size=256, out=tmp_path / "run").fit(_copy(initial), feed())
    resumed = _trainer(steps=8, batch_size=256, out=tmp_path / "run", resume=True)
    _assert_same(full, resumed.fit(genzoo.load(tmp_path / "run"), feed()), atol=1e-6)


def test_random_indices_drawn_in_blocks_resume_exactly_in_a_later_block(moons, tmp_path):
    initial = _flow(moons)
    settings = dict(batch_size=1024)  # 16 batches of indices drawn at once
    full = _trainer(steps=40, **settings).fit(_copy(initial), moons)
    _trainer(steps=20, out=tmp_path / "run", **settings).fit(_copy(initial), moons)
    resumed = _trainer(steps=40, out=tmp_path / "run", resume=True, **settings)
    _assert_same(full, resumed.fit(_flow(moons), moons), atol=1e-6)


def test_a_dataset_of_the_wrong_shape_is_a_clear_error(moons):
    with pytest.raises(genzoo.DataError, match="shape"):
        _trainer(steps=2).fit(_flow(moons), Rows(torch.zeros(100, 3)))


def test_an_em_model_reads_a_dataset_whole(moons):
    a = genzoo.create("gmm", data=moons, n_components=3)
    b = _copy(a)
    _trainer(steps=3).fit(a, moons)
    _trainer(steps=3).fit(b, Rows(moons))
    _assert_same(a, b)
    with pytest.raises(ValueError, match="ema do not apply"):
        _trainer(steps=3, ema=0.9).fit(b, moons)


# -- the loop is a bare loop: same batches, same optimiser, same parameters -----------------------
@pytest.mark.parametrize("name", ["vae", "rbm", "realnvp"])
def test_trainer_and_a_bare_loop_give_identical_parameters(name, moons):
    digits = genzoo.load_dataset("digits-binary", split="train")
    if name == "vae":
        x = digits
        model = genzoo.create("vae", data=x, latent_dim=4, hidden=32, network="mlp")
    elif name == "rbm":
        x = digits
        model = genzoo.create("rbm", data=x, n_hidden=16, persistent=True, n_chains=32,
                              optimizer="sgd")  # fmt: skip
    else:
        x, model = moons, _flow(moons)
    steps, batch_size, lr, seed = 15, 32, 0.01, 4
    trained = _trainer(steps=steps, batch_size=batch_size, lr=lr, seed=seed).fit(_copy(model), x)
    bare = _copy(model)
    optimizer = make_optimizer(bare.player_parameters("model"), lr,
                               bare.optimizer_settings("model"))  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    for step in range(steps):
        batch = x[torch.randint(x.shape[0], (batch_size,), generator=generator)]
        total, _ = split_terms(bare.loss(batch))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        bare.after_step("model", step)  # the model's own bookkeeping (a step counter)
    _assert_same(trained, bare)


def test_a_nan_between_two_loss_read_backs_is_named_at_its_own_step(moons):
    # the loss turns NaN at step 10; losses are read back at step 50 only
    with pytest.raises(genzoo.TrainingDiverged, match="'blow_up'.* at step 10;"):
        _trainer(log_every=50, steps=100).fit(Exploding([2]), moons)


class TwoPlayers(GenerativeModel):
    """Two players, one stepping twice a step: each loss is the count of loss calls."""

    name = "two-players-test"
    density = "none"
    players = ("d", "g")

    def __init__(self):
        super().__init__([2])
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("calls", torch.zeros(()))

    def schedule(self, step):
        return ("d", "d", "g")

    def loss(self, batch, player="model"):
        self.calls += 1
        return {"value": self.calls + 0 * self.w.sum()}


def test_a_player_stepping_twice_logs_its_last_value_of_each_step(moons):
    trainer = _trainer(steps=4, log_every=2)
    trainer.fit(TwoPlayers(), moons)
    # calls 1, 2 (d) and 3 (g) in step 1; 4, 5, 6 in step 2: d logs 2 and 5, g 3 and 6
    assert [(r["d/value"], r["g/value"]) for r in trainer.history] == [(3.5, 4.5), (9.5, 10.5)]


# -- schedules and accumulation --------------------------------------------------------------------
def test_schedules_warm_up_then_decay_to_zero():
    assert [lr_factor("constant", s, 10, 2) for s in (0, 1, 5)] == [0.5, 1.0, 1.0]
    assert lr_factor("linear", 2, 10, 2) == 1.0 and lr_factor("linear", 9, 10, 2) == 0.125
    assert lr_factor("cosine", 6, 10, 2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="lr_schedule"):
        genzoo.Trainer(lr_schedule="step")


def test_a_cosine_schedule_is_logged_and_resumes_exactly(moons, tmp_path):
    initial = _flow(moons)
    settings = dict(lr_schedule="cosine", warmup_steps=5)
    trainer = _trainer(**settings)
    full = trainer.fit(_copy(initial), moons)
    lrs = [row["lr"] for row in trainer.history]
    assert lrs[0] == pytest.approx(1e-3 * lr_factor("cosine", 9, 30, 5)) and lrs[-1] < 1e-5

    def interrupt(model):  # a run killed at step 14, after its checkpoint of step 12
        raise KeyboardInterrupt

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _trainer(out=run, checkpoint_every=6, evaluate=interrupt, evaluate_every=14,
                 **settings).fit(_copy(initial), moons)  # fmt: skip
    resumed = _trainer(out=run, resume=True, **settings).fit(_flow(moons), moons)
    _assert_same(full, resumed, atol=1e-6)
    with pytest.raises(genzoo.ResumeMismatchError, match="steps"):  # the schedule's horizon
        _trainer(steps=40, out=run, resume=True, **settings).fit(_flow(moons), moons)
    with pytest.raises(genzoo.ResumeMismatchError, match="accumulate"):
        _trainer(out=run, resume=True, accumulate=2, **settings).fit(_flow(moons), moons)


class Linear(GenerativeModel):
    """Least squares of the third coordinate on the first two: a loss linear in the data."""

    name = "linear-test"
    density = "none"

    def __init__(self, data_shape=(3,)):
        super().__init__(data_shape)
        self.w = torch.nn.Parameter(torch.tensor([0.3, -0.2]))
        self.b = torch.nn.Parameter(torch.zeros(()))

    def loss(self, batch, player="model"):
        return (batch[:, :2] @ self.w + self.b - batch[:, 2]).pow(2).mean()

    def optimizer_settings(self, player):
        return {"optimizer": "sgd"}


def test_k_accumulated_batches_equal_one_batch_k_times_larger():
    x = torch.randn(480, 3)
    x[:, 2] = x[:, 0] * 2 - x[:, 1] + 0.1 * x[:, 2]
    settings = dict(steps=12, lr=0.1, batch_order="epochs")
    big = _trainer(batch_size=120, **settings).fit(Linear(), x)
    accumulated = _trainer(batch_size=30, accumulate=4, **settings).fit(Linear(), x)
    _assert_same(big, accumulated, atol=1e-6)
    assert not torch.allclose(big.w, Linear().w)  # it did train


def test_accumulation_resumes_exactly(moons, tmp_path):
    initial = _flow(moons)
    full = _trainer(steps=20, accumulate=2).fit(_copy(initial), moons)
    _trainer(steps=10, accumulate=2, out=tmp_path / "run").fit(_copy(initial), moons)
    resumed = _trainer(steps=20, accumulate=2, out=tmp_path / "run", resume=True)
    _assert_same(full, resumed.fit(_flow(moons), moons), atol=1e-6)


# -- EMA ------------------------------------------------------------------------------------------
def test_the_ema_is_what_is_saved_sampled_and_resumed(moons, tmp_path):
    initial = _flow(moons)
    raw = _trainer(steps=20).fit(_copy(initial), moons)
    run = tmp_path / "run"
    averaged = _trainer(steps=20, ema=0.9, out=run).fit(_copy(initial), moons)
    # the raw weights (in the checkpoint) are those of training without an average
    state = genzoo.io.read_tensors(run / "checkpoint.safetensors")
    for k, v in raw.state_dict().items():
        assert torch.equal(state[f"model/{k}"], v), k
    name = next(k for k, p in raw.named_parameters() if p.ndim == 2)
    assert not torch.equal(state[f"ema/{name}"], state[f"model/{name}"])
    _assert_same(averaged, genzoo.load(run))  # load (sample, eval) gets the average
    for k, v in averaged.named_parameters():
        assert torch.equal(state[f"ema/{k}"], v.detach()), k
    # resume: 10 + 10 steps end on the same average as 20
    half = tmp_path / "half"
    _trainer(steps=10, ema=0.9, out=half).fit(_copy(initial), moons)
    resumed = _trainer(steps=20, ema=0.9, out=half, resume=True).fit(genzoo.load(half), moons)
    _assert_same(averaged, resumed, atol=1e-6)
    with pytest.raises(genzoo.ResumeMismatchError, match="ema"):
        _trainer(steps=30, ema=0.99, out=half, resume=True).fit(_flow(moons), moons)
    with pytest.raises(ValueError, match="ema decay"):
        genzoo.Trainer(ema=1.5)


def test_a_gan_trains_with_an_ema_and_bf16(moons):
    model = genzoo.create("gan", data=moons, ema_decay=0.0)  # the trainer's average instead
    _trainer(steps=6, ema=0.9, precision="bf16-mixed").fit(model, moons)
    assert torch.isfinite(model.sample(10)).all()


@pytest.mark.parametrize("name, own", [("ddpm", "ema"), ("gan", "ema_decay")])
def test_a_model_keeping_its_own_average_refuses_a_second_one(moons, name, own):
    model = genzoo.create(name, data=moons, **{own: 0.99})
    with pytest.raises(ValueError, match=f"its own moving average .*{own}=0"):
        _trainer(steps=2, ema=0.9).fit(model, moons)


# -- mixed precision and compile -------------------------------------------------------------------
def test_bf16_autocast_trains_and_resumes_exactly(moons, tmp_path):
    initial = _flow(moons)
    trainer = _trainer(steps=20, precision="bf16-mixed")
    full = trainer.fit(_copy(initial), moons)
    assert all(torch.isfinite(torch.tensor(r["nll"])) for r in trainer.history)
    plain = _trainer(steps=20).fit(_copy(initial), moons)
    differs = [
        not torch.equal(a, b) for a, b in zip(full.parameters(), plain.parameters(), strict=True)
    ]
    assert any(differs)  # bfloat16 products are not float32's
    _trainer(steps=10, precision="bf16-mixed", out=tmp_path / "run").fit(_copy(initial), moons)
    resumed = _trainer(steps=20, precision="bf16-mixed", out=tmp_path / "run", resume=True)
    _assert_same(full, resumed.fit(_flow(moons), moons), atol=1e-6)
    with pytest.raises(genzoo.ResumeMismatchError, match="precision"):
        _trainer(steps=30, out=tmp_path / "run", resume=True).fit(_flow(moons), moons)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fp16_needs_cuda_and_mixed_precision_needs_float32():
    with pytest.raises(ValueError, match="needs a CUDA device.*bf16-mixed"):
        genzoo.Trainer(precision="fp16-mixed")
    with pytest.raises(ValueError, match="float32"):
        genzoo.Trainer(precision="bf16-mixed", dtype="float64")


def test_a_model_that_cannot_be_compiled_is_a_clear_error(moons, monkeypatch):
    class Unsupported(Exception):
        pass

    Unsupported.__module__ = "torch._dynamo.exc"

    def refuse(*args, **kwargs):
        raise Unsupported("data-dependent control flow\nmore lines")

    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: refuse)
    with pytest.raises(RuntimeError, match="realnvp cannot be compiled.*without --compile"):
        _trainer(steps=2, compile=True).fit(_flow(moons), moons)


def test_a_tiny_model_compiles_and_trains_as_without_compile(moons):
    initial = Linear()
    x = torch.randn(256, 3)
    plain = _trainer(steps=5, lr=0.1).fit(_copy(initial), x)
    compiled = _trainer(steps=5, lr=0.1, compile=True).fit(_copy(initial), x)
    _assert_same(plain, compiled, atol=1e-5)


def test_compiled_losses_of_in_memory_data_get_one_static_graph_per_batch_size(monkeypatch):
    """An in-memory tensor's batches have two sizes at most (the epoch's short last one):
    a static graph for each, not a recompile with symbolic sizes, which would cost small
    models every step; a dataset's batches may vary, so torch decides for them. Either way
    the compiled steps train as the plain ones, the short batch included."""
    asked = []
    compile_ = torch.compile

    def recording(module, **kwargs):
        asked.append(kwargs.get("dynamic"))
        return compile_(module, **kwargs)

    monkeypatch.setattr(torch, "compile", recording)
    initial, x = Linear(), torch.randn(100, 3)  # batches of 64 and 36
    settings = {"steps": 4, "lr": 0.1, "batch_size": 64, "batch_order": "epochs"}
    plain = _trainer(**settings).fit(_copy(initial), x)
    compiled = _trainer(**settings, compile=True).fit(_copy(initial), x)
    _assert_same(plain, compiled, atol=1e-5)
    _trainer(**settings, compile=True).fit(_copy(initial), torch.utils.data.TensorDataset(x))
    assert asked == [False, False, None, None]  # the one-graph step's and the loss's, each run


def test_a_compiled_vae_trains_as_its_eager_steps_with_loss_and_gradients_in_one_graph():
    """The loss and its gradients traced as one graph (the VAE's reparameterised-KL node, a
    custom autograd Function, followed through) reach the parameters the eager steps reach,
    the compiled code drawing eager's random numbers; the epoch's short batch included."""
    from torch._inductor import config

    torch._dynamo.reset()  # no graph of an earlier test, compiled with torch's own draws
    digits = genzoo.load_dataset("digits-binary", split="train")[:100]
    initial = genzoo.create("vae", data=digits, latent_dim=4, hidden=32, network="mlp")
    settings = {"steps": 6, "lr": 1e-2, "batch_size": 64, "batch_order": "epochs"}
    eager = _trainer(**settings).fit(_copy(initial), digits)
    compiled_trainer = _trainer(**settings, compile=True)
    with config.patch(fallback_random=True):
        compiled = compiled_trainer.fit(_copy(initial), digits)
    assert compiled_trainer._fused.failed == {}  # the one-graph path ran
    _assert_same(eager, compiled, atol=1e-5)
    assert not torch.allclose(eager.decoder.net[0].weight, initial.decoder.net[0].weight)


def test_one_graph_gradients_follow_a_double_backward_as_autograd_does(moons):
    """wgan-gp's gradient penalty differentiates a gradient: traced into the one graph, its
    critic's gradients are autograd's (the compiled code drawing eager's random numbers)."""
    from torch._inductor import config

    from genzoo.train.distributed import PlayerLoss
    from genzoo.train.fused_gradients import FusedGradients

    torch._dynamo.reset()
    model = genzoo.create("wgan-gp", data=moons, hidden=16)
    player, batch = "discriminator", moons[:64]
    params = list(model.player_parameters(player))
    torch.manual_seed(0)
    total, _ = PlayerLoss(model)(batch, player, None)
    expected = torch.autograd.grad(total, params)
    torch.manual_seed(0)
    with config.patch(fallback_random=True):
        graph = FusedGradients(PlayerLoss(model), {player: params}, False, type(model))
        assert graph.step(batch, player, None) is not None, graph.failed
    for param, gradient in zip(params, expected, strict=True):
        torch.testing.assert_close(param.grad, gradient, rtol=1e-4, atol=1e-6)


class Breaking(Linear):
    """A loss whose graph breaks: its gradients cannot be traced as one graph."""

    def loss(self, batch, player="model"):
        torch._dynamo.graph_break()
        return super().loss(batch, player)


def test_a_loss_whose_graph_breaks_trains_compiled_by_backward_instead():
    initial, x = Breaking(), torch.randn(256, 3)
    plain = _trainer(steps=5, lr=0.1).fit(_copy(initial), x)
    trainer = _trainer(steps=5, lr=0.1, compile=True)
    compiled = trainer.fit(_copy(initial), x)
    assert list(trainer._fused.failed) == ["model"]
    _assert_same(plain, compiled, atol=1e-5)


class Quadratic(Linear):
    """Another model, whose loss compiles to another graph."""

    name = "quadratic-test"

    def loss(self, batch, player="model"):
        return super().loss(batch, player).square()


def test_each_model_class_has_compiled_graphs_of_its_own():
    """torch.compile's recompilation limit counts per code object: runs of different models
    in one process must not use up each other's (with a code object for all, the second
    model's run would find the limit of one reached and fall back), and a later run of the
    same model reuses its graphs."""
    x = torch.randn(128, 3)
    with torch._dynamo.config.patch(recompile_limit=1):
        for model in (Linear(), Quadratic(), Linear()):
            trainer = _trainer(steps=2, lr=0.1, batch_size=64, compile=True)
            trainer.fit(model, x)
            assert trainer._fused.failed == {}
    with pytest.raises(TypeError, match="a function or a method"):
        compile_per_class(torch.nn.Linear(2, 2), Linear)


def test_fused_gradients_come_back_in_their_parameters_layout():
    """torch's fused Adam reads a gradient and its parameter as flat arrays: a transposed
    gradient would update the wrong entries."""
    from genzoo.train.fused_gradients import _in_layout

    gradient = torch.randn(3, 4).t()
    dense = _in_layout(gradient, torch.zeros(4, 3))
    assert dense.is_contiguous() and torch.equal(dense, gradient)
    transposed = torch.zeros(3, 4).t()
    assert _in_layout(gradient.contiguous(), transposed).stride() == transposed.stride()
    assert _in_layout(None, transposed) is None


@pytest.mark.parametrize(
    ("name", "hparams", "refusal"),
    [
        ("made", {"hidden": [32]}, "built for values 0..1"),
        ("dbn", {"hidden": [16, 8], "steps_per_layer": 2}, "needs 0/1 data"),
    ],
)
def test_a_compiled_discrete_model_trains_in_one_graph_and_its_data_is_still_checked(
    name, hparams, refusal
):
    """The model's checks of the values (integer levels in range, 0/1 units) would break the
    compiled graph every step: under compile they run once in the Trainer instead, as clear
    errors, and each step's loss and gradients are one graph."""
    from torch._dynamo.utils import counters

    digits = genzoo.load_dataset("digits-binary", split="train")[:256]
    model = genzoo.create(name, data=digits, **hparams)
    counters.clear()
    trainer = _trainer(steps=3, compile=True)
    trainer.fit(model, digits)
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert trainer._fused.failed == {}
    bad = digits.clone()
    bad[5, 0, 0, 0] = 2  # a level the model was not built for
    for data in (bad, torch.utils.data.TensorDataset(bad)):
        with pytest.raises(genzoo.DataError, match=refusal):
            _trainer(steps=1, compile=True, batch_size=256, batch_order="epochs").fit(model, data)


# -- TensorBoard ------------------------------------------------------------------------------
def test_tensorboard_event_files_hold_losses_lr_and_sample_grids(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    digits = genzoo.load_dataset("digits-binary", split="train")
    model = genzoo.create("vae", data=digits, latent_dim=4, hidden=32, network="mlp")
    run = tmp_path / "run"
    trainer = _trainer(steps=20, out=run, tensorboard=True, lr_schedule="linear",
                       evaluate=lambda m: {"mean": float(m.sample(8).mean())},
                       evaluate_every=10)  # fmt: skip
    trainer.fit(model, digits)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    loss_terms = [k for k in trainer.history[-1] if k not in ("step", "time", "lr")]
    assert set(loss_terms) | {"lr", "eval/mean"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("lr")] == [10, 20]
    assert [e.step for e in events.Images("samples")] == [10, 20]
    assert (run / "metrics.jsonl").exists()  # always, beside the event files


def test_genzoo_train_takes_the_loop_flags(tmp_path):
    from genzoo.cli import main

    out = tmp_path / "run"
    args = ["train", "realnvp", "--data", "moons", "--n", "500", "--steps", "6",
            "--batch-size", "64", "--lr", "1e-3", "--set", "n_layers=2", "--set", "hidden=8",
            "--lr-schedule", "cosine", "--warmup-steps", "2", "--accumulate", "2",
            "--ema", "0.9", "--precision", "bf16-mixed", "--out", str(out)]  # fmt: skip
    assert main([*args, "--no-tensorboard"]) == 0
    saved = json.loads((out / "trainer.json").read_text())
    expected = {"lr_schedule": "cosine", "warmup_steps": 2, "accumulate": 2, "ema": 0.9,
                "precision": "bf16-mixed", "compile": False, "tensorboard": False}  # fmt: skip
    assert {k: saved[k] for k in expected} == expected
    assert not (out / "tensorboard").exists()
    assert main(["train", "gmm", "--data", "moons", "--steps", "2", "--ema", "0.9",
                 "--out", str(tmp_path / "gmm")]) == 2  # fmt: skip


def test_an_rbm_taking_its_own_sgd_step_trains_as_through_autograd(monkeypatch):
    # a persistent Bernoulli rbm with plain SGD: the Trainer calls its closed-form sgd_step
    x = genzoo.load_dataset("digits-binary", n=300)
    torch.manual_seed(0)
    initial = genzoo.create("rbm", data=x, n_hidden=16, momentum=0.0, persistent=True)
    assert initial.can_sgd_step
    model, calls = _copy(initial), []
    step = model.sgd_step
    model.sgd_step = lambda batch, lr: calls.append(lr) or step(batch, lr)
    own = _trainer(steps=25, batch_size=50, lr=0.05, seed=1).fit(model, x)
    assert calls == [0.05] * 25  # the closed-form path was taken
    monkeypatch.setattr("genzoo.train.trainer._plain_sgd", lambda optimizer: False)
    autograd = _trainer(steps=25, batch_size=50, lr=0.05, seed=1).fit(_copy(initial), x)
    _assert_same(own, autograd, atol=1e-5)


def test_em_reads_a_dataset_chunk_by_chunk_and_fits_as_on_the_tensor(monkeypatch):
    """A gmm given a Dataset never holds more than a chunk of it (its memory does not grow
    with the data's size) and reaches the fit of the same examples as one tensor."""
    from genzoo.train import batches as batches_module

    monkeypatch.setattr(batches_module, "DATASET_CHUNK_ROWS", 500)
    x = genzoo.load_dataset("8gaussians", n=3000, seed=0)
    requested: list[int] = []

    class Rows(Dataset):
        def __len__(self) -> int:
            return len(x)

        def __getitem__(self, i: int) -> torch.Tensor:
            return x[i]

        def __getitems__(self, rows: list[int]) -> list[torch.Tensor]:
            requested.append(len(rows))
            return [x[i] for i in rows]

    fits = {}
    for name, data in (("tensor", x), ("dataset", Rows())):
        model = genzoo.create("gmm", data=x, n_components=8)
        genzoo.Trainer(steps=5, progress=False, seed=0).fit(model, data)
        fits[name] = model.state_dict()
    assert requested and max(requested) == 500
    for key, value in fits["tensor"].items():
        assert torch.allclose(fits["dataset"][key].double(), value.double(), atol=1e-4), key
