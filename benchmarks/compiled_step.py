"""A compiled training step two ways: the loss compiled with ``backward()`` by autograd, and
the loss and its gradients traced as one graph (``genzoo.train.fused_gradients``, what
``Trainer(compile=True)`` runs for a float32 step on one process).

    python benchmarks/compiled_step.py [--models vae realnvp ...] [--steps 300] [--reps 5]

For each model (its defaults, on the dataset ``MODELS`` names, batch 64) both
ways train the same copy of the model from the same weights with the optimiser the Trainer
builds (``make_optimizer``, stepped by ``lean_stepper`` as the Trainer does) over the same
batches gathered beforehand, one thread. Both are compiled and run a few steps before the
clock starts; then they alternate, ``--reps`` blocks of ``--steps`` steps each, and the
median CPU time a step is reported with the ratio one graph / loss compiled. A model whose
one graph cannot be built (an LSTM) is reported as such: the Trainer compiles its loss.

``--check`` instead compares, for every player of each model, the one graph's gradients
with eager autograd's on one batch, in float64, inductor drawing eager's random numbers
(``fallback_random``): the largest difference relative to the largest gradient entry.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

import genzoo
from genzoo.train.distributed import PlayerLoss
from genzoo.train.fused_gradients import FusedGradients
from genzoo.train.lean_adam import lean_stepper
from genzoo.train.trainer import make_optimizer

#: Each model and the dataset it is trained on here (its defaults, as ``genzoo train``).
MODELS = {
    "vae": "digits-binary", "realnvp": "moons", "nsf": "moons", "made": "digits-binary",
    "ddpm": "moons", "gan": "moons", "rbm": "digits-binary", "transformer-lm": "grammar",
    "lstm-lm": "grammar", "wgan-gp": "moons",
}  # fmt: skip


def _setup(name: str, batch: int, blocks: int) -> tuple[genzoo.models.base.GenerativeModel, list]:
    """The model built as ``genzoo train NAME --data DATASET`` builds it, and batches."""
    cls, dataset = genzoo.registry.model_class(name), MODELS[name]
    data = genzoo.load_dataset(dataset, split="train")
    levels = genzoo.data.dataset_info(dataset).levels
    hparams = {}
    if levels is not None and cls.data_kind_for(data, {}) == "continuous":
        data = genzoo.data.dequantize(data, levels, torch.Generator().manual_seed(0))
    elif levels is not None:  # sized by the dataset's levels
        accepted = genzoo.registry.hyperparameters(cls)
        hparams = {k: levels for k in ("levels", "vocab_size") if k in accepted}
    torch.manual_seed(0)
    model = genzoo.create(name, data=data, **hparams)
    order = torch.randperm(len(data))
    whole = len(data) // batch
    batches = [data[order[i * batch : (i + 1) * batch]] for i in range(min(whole, blocks))]
    return model, batches


def _stepper(model: genzoo.models.base.GenerativeModel, fused: bool):
    """One training step of ``model`` (every player its schedule names), the gradients from
    the one graph or from the compiled loss's backward pass."""
    optimizers = {p: make_optimizer(model.player_parameters(p), 1e-4, model.optimizer_settings(p))
                  for p in model.players}  # fmt: skip
    steppers = {p: lean_stepper(o) for p, o in optimizers.items()}
    loss = PlayerLoss(model)
    params = {p: [q for g in o.param_groups for q in g["params"]] for p, o in optimizers.items()}
    graph = FusedGradients(loss, params, False, type(model)) if fused else None
    compiled = torch.compile(loss, dynamic=False)
    count = [0]

    def step(batch: torch.Tensor) -> None:
        for player in model.schedule(count[0]):
            if graph is None or graph.step(batch, player, None) is None:
                total, _ = compiled(batch, player, None)
                steppers[player].zero_grad()
                total.backward()
            steppers[player].step()
            model.after_step(player, count[0])
        count[0] += 1

    return step, graph


def check_gradients(name: str, batch_size: int) -> str:
    """The one graph's gradients against eager autograd's for each player of ``name``."""
    from torch._inductor import config

    model, batches = _setup(name, batch_size, 1)
    model, batch = model.double(), batches[0]
    batch = batch.double() if batch.is_floating_point() else batch
    parts = []
    for player in model.players:
        eager, traced = copy.deepcopy(model), copy.deepcopy(model)
        params = [p for p in eager.player_parameters(player) if p.requires_grad]
        torch.manual_seed(0)
        total, _ = PlayerLoss(eager)(batch, player, None)
        expected = torch.autograd.grad(total, params, allow_unused=True)
        mine = [p for p in traced.player_parameters(player) if p.requires_grad]
        torch.manual_seed(0)
        with config.patch(fallback_random=True):
            graph = FusedGradients(PlayerLoss(traced), {player: mine}, False, type(traced))
            if graph.step(batch, player, None) is None:
                parts.append(f"{player}: no one graph ({graph.failed[player].splitlines()[0]})")
                continue
        worst = max(float((a - p.grad).abs().max() / a.abs().max().clamp_min(1e-300))
                    for a, p in zip(expected, mine, strict=True) if a is not None)  # fmt: skip
        parts.append(f"{player}: {worst:.1e}")
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--steps", type=int, default=300, help="steps a timed block")
    parser.add_argument("--reps", type=int, default=5, help="timed blocks a way")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--check", action="store_true", help="compare the one graph's gradients with autograd's"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.check:
        print("| model | largest relative difference of the gradients, a player each |")
        print("|---|---|")
        for name in args.models:
            print(f"| {name} | {check_gradients(name, args.batch_size)} |", flush=True)
        return
    print("| model | loss compiled + backward (ms a step) | loss and gradients, one graph | "
          "ratio |\n|---|---|---|---|")  # fmt: skip
    for name in args.models:
        model, batches = _setup(name, args.batch_size, 32)
        ways = {}
        for fused in (False, True):
            step, graph = _stepper(copy.deepcopy(model), fused)
            try:
                for i in range(20):  # compiled, and past the first steps
                    step(batches[i % len(batches)])
            except Exception as err:  # noqa: BLE001 (reported: e.g. a double backward)
                ways[fused] = (None, f"{type(err).__name__}: {str(err).splitlines()[0][:80]}")
                continue
            ways[fused] = (step, graph)
        if ways[False][0] is None:
            print(f"| {name} | loss alone cannot be compiled ({ways[False][1]}) | | |")
            continue
        if ways[True][1].failed:
            reason = next(iter(ways[True][1].failed.values())).splitlines()[0][:80]
            print(f"| {name} | | no one graph ({reason}) | |", flush=True)
            continue
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.reps):
            for fused, (step, _) in ways.items():
                start = time.process_time()
                for i in range(args.steps):
                    step(batches[i % len(batches)])
                times[fused].append((time.process_time() - start) / args.steps * 1000)
        loss_only, one = statistics.median(times[False]), statistics.median(times[True])
        print(f"| {name} | {loss_only:.3f} | {one:.3f} | {one / loss_only:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
