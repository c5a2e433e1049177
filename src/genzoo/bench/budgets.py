"""The per-model budgets: trainer settings and hyper-parameters, per dataset.

One place for both the benchmark and ``genzoo train``: :func:`recommended_budget` is what
``genzoo bench`` trains a cell with and what ``genzoo train MODEL --data DATASET`` uses for
every setting not given on the command line (the full, non-quick step count). A model missing
from ``BUDGETS`` gets ``DEFAULT_BUDGET``; a new model adds its row here. Which cells the
benchmark runs is :mod:`genzoo.bench.grid`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from genzoo.data import dataset_info, list_datasets


@dataclass(frozen=True)
class Budget:
    """Trainer settings and hyper-parameters of one model in the benchmark.

    ``datasets`` names the datasets a preset trains the model on instead of the preset's own
    (the language models' text, say); ``None`` means the preset's. Which datasets a model
    *can* take is the model's own declaration (``accepts``), never this list.
    """

    quick_steps: int = 500
    full_steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    #: The learning-rate schedule over the run (``constant``, ``linear``, ``cosine``).
    lr_schedule: str = "constant"
    hparams: dict[str, Any] = field(default_factory=dict)
    datasets: tuple[str, ...] | None = None
    #: Smaller sampler step counts to score besides the configured one (models whose
    #: ``sample`` takes ``steps=``): the report's quality-against-sampling-steps curve.
    sampling_steps: tuple[int, ...] = ()
    #: Training examples to draw from a shipped dataset when none are asked for (``None``:
    #: the dataset's own default). The 2-D toys are generated, so a large draw is honest: it
    #: takes the finite training set out of the measured gap to the true density.
    n_train: int | None = None
    #: Per-dataset changes of the fields above (``hparams`` are merged, not replaced).
    on: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Per-dataset changes, as ``on``, for a run under a condition (``Q(x | c)``), applied
    #: after ``on``: a class-conditional model sees a tenth of the data per class on digits.
    on_condition: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Datasets a preset trains the model on under a condition, by the condition's name
    #: (``{"input": ("synthetic-pairs",)}``): ``genzoo bench --condition input``.
    conditioned: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def steps(self, quick: bool) -> int:
        return self.quick_steps if quick else self.full_steps

    def for_dataset(self, dataset: str, conditioned: bool = False) -> Budget:
        """This budget with the changes for ``dataset`` applied (and, ``conditioned``, those
        for a run under a condition after them)."""
        budget = self
        for table in (self.on, self.on_condition if conditioned else {}):
            changes = dict(table.get(dataset, {}))
            if changes:
                changes["hparams"] = {**budget.hparams, **changes.get("hparams", {})}
                budget = replace(budget, **changes)
        return replace(budget, on={}, on_condition={}) if budget is not self else self


DEFAULT_BUDGET = Budget()
#: The 2-D toy datasets (budgets that differ between toys and images use it).
TOYS_2D = tuple(d.name for d in list_datasets() if d.shape == (2,))
#: ``ddpm`` and ``score-sde`` on digits: a small U-Net, 50 sampling steps, scored at 5, 10, 25.
DIFFUSION_ON_DIGITS: dict[str, Any] = {
    "quick_steps": 200,
    "batch_size": 64,
    "hparams": {"channels": 16, "sampling_steps": 50},
    "sampling_steps": (5, 10, 25),
}
BUDGETS: dict[str, Budget] = {
    # reg_covar 1e-3: full covariances on 1,000 digits overfit badly at 1e-6 (4.2 vs 2.9 bits/dim)
    "gmm": Budget(
        100,
        300,
        hparams={"n_components": 8, "reg_covar": 1e-3},
        # ~100 digits a class: 8 full covariances each overfit (conditional test NLL 356
        # nats, quick bench); 2 with a larger ridge: 138, class accuracy of samples 0.993
        on_condition={"digits": {"hparams": {"n_components": 2, "reg_covar": 3.5e-3}}},
    ),
    # stochastic EM sweeps (batch_size and lr matter only with fit="gradient")
    "deep-gmm": Budget(
        50,
        200,
        lr=1e-2,
        hparams={"n_components": [4, 2], "latent_dims": [1, 1], "strict_dims": False},
        on={"digits": {"quick_steps": 100, "full_steps": 300, "hparams": {"latent_dims": [5, 1]}}},
    ),
    # flows
    "realnvp": Budget(
        800,
        6000,
        lr=3e-3,
        hparams={"n_layers": 6, "hidden": 32},
        on={"digits": {"quick_steps": 150, "batch_size": 64}},
    ),
    "glow": Budget(
        800,
        6000,
        lr=3e-3,
        hparams={"n_steps": 2, "hidden": 32},
        on={
            # variational dequantisation (its bound is reported), 4 x 64 with dropout 0.3,
            # cosine decay: test bits/dim 1.957 +- 0.022 over 3 seeds at 2000 steps against
            # 2.17 for 2 x 32 with uniform dequantisation at 6000
            # (benchmarks/digits_bits_per_dim.py)
            "digits": {
                "quick_steps": 300,
                "full_steps": 2000,
                "batch_size": 64,
                "lr_schedule": "cosine",
                "hparams": {
                    "n_steps": 4,
                    "hidden": 64,
                    "dropout": 0.3,
                    "dequantization": "variational",
                },
            }
        },
    ),
    "nsf": Budget(
        600,
        4000,
        lr=3e-3,
        hparams={"n_layers": 4, "hidden": 32, "bins": 8},
        on={
            "digits": {"quick_steps": 150, "batch_size": 64},
            # 2-D: the setting that reaches the density floor (benchmarks/density_floor.py,
            # 3 seeds): 8 layers of 32 bins, 12000 steps with cosine decay on a fresh draw of
            # 1,000,000 points (the toys are generated; their own 10,000 overfit: rings 0.055).
            # 6 layers of 24 bins at 4000 steps left rings at 0.016 and checkerboard at 0.020
            # nats of paired KL; the sharp edges of both need the finer, longer fit
            **{
                ds: {
                    "full_steps": 12_000,
                    "batch_size": 512,
                    "lr_schedule": "cosine",
                    "n_train": 1_000_000,
                    "hparams": {"n_layers": 8, "hidden": 64, "bins": 32, "tail_bound": 4.0},
                }
                for ds in TOYS_2D
            },
        },
    ),
    "planar": Budget(
        300, 3000, lr=1e-2, hparams={"n_layers": 16}, on={"digits": {"quick_steps": 200}}
    ),
    "radial": Budget(500, 3000, lr=1e-2, hparams={"n_layers": 16}),
    # autoregressive models: exact likelihoods on discrete data
    # Q(Y | X) of a label given a text (sentiment-text, known P(Y | X)): KL 0.004 nats at
    # 300 steps, rising with more (10,000 examples overfit); of outputs given inputs
    # trained on an agent's trajectories (genzoo.world, examples/world_discovery.py): no
    # preset cells (named datasets still reach it)
    "world-model": Budget(datasets=()),
    "categorical": Budget(
        300,
        1000,
        batch_size=128,
        lr=5e-2,
        datasets=("digits-binary",),
        conditioned={"input": ("sentiment-text",)},
        on={
            "sentiment-text": {
                "quick_steps": 300,
                "full_steps": 300,
                "batch_size": 256,
                "lr": 1e-2,
                "hparams": {"hidden": [32], "embed_dim": 8},
            },
            "synthetic-pairs": {"lr": 1e-2, "hparams": {"hidden": [64]}},
            # Q(Y | X) of a feature vector: exact KL 0.011 nats (tests/test_conditional.py)
            "sentiment-synthetic": {
                "full_steps": 1500,
                "batch_size": 256,
                "lr": 1e-2,
                "hparams": {"hidden": [64]},
            },
        },
    ),
    # 1,000 training digits overfit: test NLL 18.90 nats at 900 steps (the validation
    # minimum, 20.33), 19.12 at 600, 23.39 at 3000 (hidden [256, 256], batch 128, lr 1e-3)
    "made": Budget(
        600, 900, batch_size=128, hparams={"hidden": [256, 256]}, datasets=("digits-binary",)
    ),
    "pixelcnn": Budget(
        400,
        3000,
        batch_size=64,
        hparams={"channels": 32, "n_layers": 3, "kernel": 5},
        datasets=("digits-binary",),
    ),
    "lstm-lm": Budget(
        400,
        3000,
        batch_size=64,
        lr=3e-3,
        hparams={"embedding": 16, "hidden": 64},
        datasets=("grammar",),
        conditioned={"input": ("synthetic-pairs",)},
        # P(output | input): conditional NLL 1.45 nats at 300 steps (truth 0.49)
        on={"synthetic-pairs": {"quick_steps": 300, "lr": 1e-2}},
    ),
    "transformer-lm": Budget(
        300,
        3000,
        batch_size=64,
        lr=3e-3,
        hparams={"width": 64, "n_layers": 2, "heads": 4},
        datasets=("grammar",),
        conditioned={"input": ("synthetic-pairs",)},
    ),
    # VAEs: log_prob is IWAE-k
    # 2-D toys: a 2-D code and a higher rate (8gaussians IWAE NLL 3.20 at 2000 steps vs 3.56
    # with the digits settings; entropy 2.83); the default KL warm-up prevents collapse
    "vae": Budget(
        2000,
        6000,
        batch_size=128,
        lr=1e-3,
        hparams={"latent_dim": 8, "hidden": 128, "iwae_samples": 200},
        on={ds: {"lr": 3e-3, "hparams": {"latent_dim": 2}} for ds in TOYS_2D},
    ),
    "beta-vae": Budget(
        2000,
        6000,
        batch_size=128,
        lr=1e-3,
        hparams={"latent_dim": 8, "hidden": 128, "iwae_samples": 200, "beta": 4.0},
    ),
    "sentence-vae": Budget(
        250,
        2000,
        batch_size=32,
        lr=3e-3,
        hparams={
            "hidden": 64,
            "embed_dim": 32,
            "latent_dim": 8,
            "kl_warmup_steps": 200,
            "free_bits": 0.25,
            "iwae_samples": 20,
        },
        datasets=("stdlib-sentences",),
    ),
    # energy-based models (Boltzmann machines take 0/1 data; SGD with momentum)
    "rbm": Budget(
        1000, 5000, batch_size=100, lr=0.05, hparams={"n_hidden": 64}, datasets=("digits-binary",)
    ),
    "dbn": Budget(
        1000,
        5000,
        batch_size=100,
        lr=0.05,
        hparams={"hidden": [64, 64], "steps_per_layer": 500},
        datasets=("digits-binary",),
    ),
    "dbm": Budget(
        1000,
        5000,
        batch_size=100,
        lr=0.02,
        hparams={"hidden": [64, 32], "steps_per_layer": 300, "momentum": 0.5, "n_chains": 300},
        datasets=("digits-binary",),
    ),
    "gb-rbm": Budget(1000, 5000, lr=0.05, hparams={"n_hidden": 16}, datasets=("8gaussians",)),
    "ebm": Budget(
        500,
        5000,
        batch_size=128,
        lr=3e-3,
        hparams={"hidden": 32, "depth": 2, "grid_size": 100},
        on={"digits": {"quick_steps": 300}},
    ),
    "mdsm-ebm": Budget(
        1000, 5000, batch_size=128, lr=3e-3, hparams={"hidden": 32, "depth": 2, "grid_size": 100}
    ),
    # score models: sampling cost set by the step counts
    "ncsn": Budget(
        1000,
        5000,
        lr=2e-3,
        hparams={"hidden": 64, "depth": 3, "ema": 0.99, "n_steps_each": 20, "step_lr": 1e-4},
        sampling_steps=(1, 3, 10),
        on={
            "digits": {
                "quick_steps": 200,
                "batch_size": 64,
                "hparams": {"channels": 16, "n_steps_each": 5},
                "sampling_steps": (1, 2),
            }
        },
    ),
    "ddpm": Budget(
        1000,
        5000,
        lr=2e-3,
        hparams={"hidden": 64, "depth": 3, "ema": 0.99, "sampling_steps": 200},
        sampling_steps=(10, 30, 100),
        on={"digits": DIFFUSION_ON_DIGITS},
    ),
    "score-sde": Budget(
        1000,
        5000,
        lr=2e-3,
        hparams={
            "hidden": 64,
            "depth": 3,
            "ema": 0.99,
            "sde": "vp",
            "sampling_steps": 100,
            "n_corrector_steps": 0,
        },
        sampling_steps=(10, 30),
        on={"digits": DIFFUSION_ON_DIGITS},
    ),
    # GANs (quick budgets measured at 5-20 s on 8gaussians, 2 cores)
    "gan": Budget(
        1000,
        5000,
        hparams={"hidden": 64, "penalty": "r1", "penalty_weight": 1.0},
        on={
            # Fréchet 9.7 / 8.5 (seeds 0 / 1) vs 76 at 400 steps, lr 2e-4, no EMA
            "digits": {
                "quick_steps": 700,
                "batch_size": 64,
                "lr": 1e-3,
                "hparams": {"hidden": 16, "ema_decay": 0.99},
            },
            # 25/25 modes, 77% high quality at 4500 steps (benchmarks/bench_gan_modes.py)
            "25gaussians": {
                "full_steps": 4500,
                "batch_size": 256,
                "hparams": {
                    "hidden": 128,
                    "depth": 3,
                    "latent_dim": 4,
                    "penalty_weight": 0.1,
                    "ema_decay": 0.99,
                    "betas": [0.0, 0.99],
                },
            },  # fmt: skip
        },
    ),
    "lsgan": Budget(
        1000,
        5000,
        hparams={"hidden": 64},
        on={  # Fréchet 10.5 / 12.8 vs 105 at 400 steps, lr 2e-4, no EMA
            "digits": {
                "quick_steps": 800,
                "batch_size": 64,
                "lr": 1e-3,
                "hparams": {"hidden": 16, "ema_decay": 0.99},
            }
        },
    ),
    "wgan": Budget(
        250,
        3000,
        hparams={"hidden": 64},
        on={  # Fréchet 13.4 / 12.3 vs 101 at 150 steps, clip 0.01, 5 critic steps
            "digits": {
                "quick_steps": 600,
                "batch_size": 64,
                "lr": 2e-3,
                "hparams": {"hidden": 16, "n_critic": 2, "clip_value": 0.05, "ema_decay": 0.99},
            }
        },
    ),
    "wgan-gp": Budget(
        250,
        3000,
        hparams={"hidden": 64},
        on={"digits": {"quick_steps": 150, "batch_size": 64, "hparams": {"hidden": 16}}},
    ),
    "infogan": Budget(
        600,
        4000,
        batch_size=128,
        hparams={"hidden": 64, "n_continuous": 1, "info_weight": 2.0},
        on={
            # a small noise vector makes the class come from the categorical code: code purity
            # 0.62-0.65, 9 of 10 classes at 3000 steps (bench_gan_modes.py --infogan-digits)
            "digits": {
                "quick_steps": 300,
                "full_steps": 3000,
                "batch_size": 64,
                "lr": 1e-3,
                "hparams": {"hidden": 32, "latent_dim": 4, "info_weight": 1.0, "ema_decay": 0.99},
            }
        },
    ),
    "stylegan": Budget(
        200,
        3000,
        hparams={"channels": 16, "hidden": 32, "penalty_weight": 1.0},
        on={
            # Fréchet 14.8 / 22.1 vs 96 at 150 steps, lr 1e-3, EMA 0.999
            "digits": {
                "quick_steps": 500,
                "full_steps": 3000,
                "batch_size": 64,
                "lr": 2e-3,
                "hparams": {"channels": 8, "hidden": 16, "mapping_depth": 2, "ema_decay": 0.99},
            }
        },
    ),
    "progan": Budget(
        300,
        4000,
        batch_size=64,
        hparams={"channels": 16, "steps_per_phase": 75},
        datasets=("digits",),
        # the critic was losing (Fréchet 209, worse than noise): 2 critic steps, lighter
        # penalty, smaller batches, faster EMA give 20.4 / 24.4
        on={
            "digits": {
                "batch_size": 32,
                "lr": 2e-3,
                "hparams": {"n_critic": 2, "penalty_weight": 1.0, "ema_decay": 0.99},
            }
        },
    ),
    "cyclegan": Budget(
        300, 2000, batch_size=128, hparams={"hidden": 32}, datasets=("moons-circles",)
    ),
}

#: The shipped datasets.
SHIPPED = frozenset(d.name for d in list_datasets())


def budget_key(dataset: str) -> str:
    """The shipped dataset whose per-dataset budget changes a dataset takes: its own name,
    or for a user's file the shipped dataset of its kind (grey-level images: ``digits``;
    2-D points: ``8gaussians``); other files take the model's base budget."""
    if dataset in SHIPPED:
        return dataset
    info = dataset_info(dataset)
    if info.kind == "image" and (info.levels or 0) > 2:
        return "digits"
    return "8gaussians" if info.kind == "points" else dataset


def recommended_budget(
    model: str,
    dataset: str | None = None,
    table: Mapping[str, Budget] | None = None,
    conditioned: bool = False,
) -> Budget:
    """The budget of ``model`` (``DEFAULT_BUDGET`` when it has none of its own) with its
    changes for ``dataset`` (for a user's file: for the shipped dataset of its kind) and, for
    a run under a condition (``conditioned``), those of ``Budget.on_condition``: the steps
    (``full_steps``), batch size, learning rate and hyper-parameters that both ``genzoo
    bench`` and ``genzoo train`` (for what is not given) use. ``table``: the budgets to read
    (default :data:`BUDGETS`)."""
    budget = (BUDGETS if table is None else table).get(model, DEFAULT_BUDGET)
    if dataset is None:
        return budget
    return budget.for_dataset(budget_key(dataset), conditioned)
