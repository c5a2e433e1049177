"""One trainer for every family: the model brings its losses and players, the trainer the loop.

It knows no family. A model with players gets one Adam optimiser per player and is stepped
on mini-batches; a model with no players (EM, say) is handed the whole training set through
``fit_step`` (under torchrun, each process its share of the rows when the model offers
sharded EM). Either way the trainer seeds, logs, checkpoints atomically, resumes, and stops
with a clear message when a loss turns NaN or infinite.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from genzoo.errors import (
    CheckpointError,
    DataError,
    ResumeMismatchError,
    RunExistsError,
    TrainingDiverged,
)
from genzoo.io import RUN_INFO_FILE, atomic_write, read_json, write_json
from genzoo.models import em_shards
from genzoo.models.base import GenerativeModel
from genzoo.train import distributed, precision
from genzoo.train.batches import (
    DATASET_CHUNK_ROWS,
    EM_INIT_ROWS,
    chunked_rows,
    dataset_length,
    is_dataset,
    make_source,
    materialize,
    streams_em,
)
from genzoo.train.checkpoint import CHECKPOINT_FILE, load_checkpoint, save_checkpoint
from genzoo.train.distributed import DIAGNOSTIC_PREFIX, RANK_STRIDE, Context  # noqa: F401 (re-export)
from genzoo.train.ema import EMA
from genzoo.train.fused_gradients import FusedGradients, compile_per_class
from genzoo.train.lean_adam import lean_stepper
from genzoo.train.runfolder import (
    folder_lock,
    replacing,
    restore_interrupted_replacement,
    setting_differences,
)
from genzoo.train.schedules import check_schedule, lr_factor
from genzoo.validation import as_tensor, check_finite, check_shape

METRICS_FILE = "metrics.jsonl"
#: Folder of the TensorBoard event files inside a run folder.
TENSORBOARD_DIR = "tensorboard"
DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Files a run folder holds; ``force`` removes exactly these, nothing else.
RUN_FILES = (
    CHECKPOINT_FILE,
    METRICS_FILE,
    RUN_INFO_FILE,
    "config.json",
    "model.safetensors",
    "trainer.json",
    TENSORBOARD_DIR,
)

#: ``transform(batch, generator)`` applied to every batch, e.g. uniform dequantisation.
BatchTransform = Callable[[Tensor, torch.Generator], Tensor]
#: ``evaluate(model)`` run during training, e.g. a sample-quality metric; logged as ``eval/...``.
Evaluator = Callable[[GenerativeModel], Mapping[str, float]]
#: Prefix of the evaluation values in the metrics log.
EVAL_PREFIX = "eval/"


BATCH_ORDERS = ("random", "epochs")
#: Settings a resumed run must share with the run it continues: any other value would make
#: the resumed run a different experiment under the old one's name. The others may change:
#: steps, the logging and checkpoint intervals, device, progress, evaluation, time limit, and
#: the learning rate and gradient clipping (the way to go on after a divergence).
#: Accumulation, precision, the EMA and the schedule change the maths, so they are fixed too
#: (and ``steps`` under a decaying schedule, whose horizon it is); ``compile`` may change.
RESUME_FIXED = ("batch_size", "batch_order", "seed", "dtype", "transform", "accumulate",
                "precision", "ema", "lr_schedule", "warmup_steps")  # fmt: skip


def _require_int(name: str, value: Any, minimum: int) -> None:
    """Refuse a non-integer (``2.5``, ``"10"``, ``True``) or a value below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _require_positive(name: str, value: Any) -> None:
    """Refuse anything but a finite number above zero."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}


def _plain_sgd(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` is plain SGD: one learning rate, no momentum, weight decay,
    Nesterov or maximisation (what a model's own ``sgd_step`` reproduces)."""
    groups = optimizer.param_groups
    return (isinstance(optimizer, torch.optim.SGD) and len({g["lr"] for g in groups}) == 1
            and all(g["momentum"] == 0 and g["weight_decay"] == 0 and not g["nesterov"]
                    and not g["maximize"] for g in groups))  # fmt: skip


def make_optimizer(params, lr: float, settings: Mapping[str, Any]) -> torch.optim.Optimizer:
    """The optimiser a model asks for in ``optimizer_settings``: Adam unless it names
    ``"optimizer": "sgd" | "rmsprop"``; ``"lr_scale"`` multiplies the trainer's learning rate
    (two time-scale GAN updates); every other key goes to the optimiser (betas, momentum,
    weight_decay)."""
    settings = dict(settings)
    name = settings.pop("optimizer", "adam")
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {sorted(OPTIMIZERS)}")
    lr = lr * settings.pop("lr_scale", 1.0)
    params = list(params)
    if name == "adam" and not ({"fused", "foreach"} & set(settings)) and _fusable(params):
        settings["fused"] = True  # one kernel for every tensor instead of a loop over them
    return OPTIMIZERS[name](params, lr=lr, **settings)


def _parameters(optimizer: torch.optim.Optimizer) -> list[Tensor]:
    """Every parameter ``optimizer`` steps, group after group."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def _calling(module: nn.Module) -> Callable[..., Any]:
    """A function calling ``module`` (its hooks, DDP's included), to compile per class."""

    def call(batch: Tensor | None, player: str, c: Tensor | None) -> Any:
        return module(batch, player, c)

    return call


def _fusable(params: list) -> bool:
    """Whether torch's fused Adam takes these parameters (floating, dense, CPU or CUDA)."""
    tensors = [p["params"] if isinstance(p, dict) else [p] for p in params]
    flat = [t for group in tensors for t in group]
    return bool(flat) and all(
        t.is_floating_point() and not t.is_sparse and t.device.type in ("cpu", "cuda") for t in flat
    )


@dataclass
class Trainer:
    """Fit any genzoo model: ``Trainer(steps=2000, out="runs/x").fit(model, data)``.

    Arguments:
        steps: optimiser steps (or ``fit_step`` calls for self-fitting models).
        batch_size: examples per mini-batch, per process when data-parallel (as in
            torch's DDP): 4 processes with ``batch_size=512`` average gradients over 2,048
            examples a step.
        batch_order: ``"random"`` draws each batch uniformly with replacement from a seeded
            generator; ``"epochs"`` sweeps the data in a fresh seeded permutation each epoch
            (every example once per epoch, the last batch of an epoch possibly smaller).
        lr: Adam learning rate (a model may add its own settings per player).
        out: run folder for checkpoints and ``metrics.jsonl``; ``None`` keeps nothing on disk.
        seed: seeds parameters' initial noise, batches and the model's sampling during training.
        device: ``"cpu"`` or ``"cuda"`` (``cuda:LOCAL_RANK`` under ``torchrun``).
        dtype: ``"float32"`` or ``"float64"`` (for debugging numerics).
        clip_grad: clip the gradient norm of each player to this value; ``None`` for no clipping.
        checkpoint_every: steps between checkpoints (a final one is always written).
        log_every: steps between lines of the metrics log.
        progress: show a progress bar; ``None`` shows it only when stderr is a terminal.
        resume: continue from ``out``'s checkpoint with its optimiser and RNG state.
        force: overwrite a run already in ``out`` (only genzoo's own files are removed).
        transform: applied to every batch, e.g. ``genzoo.data.dequantize`` for discrete data.
        evaluate: called with the model (in eval mode, without gradients) every
            ``evaluate_every`` steps and after the last; its values are logged as
            ``eval/NAME`` rows of the metrics log and kept in ``evaluations``. Its time is
            left out of the logged ``time``, which is training time only, so quality can be
            read against training seconds. Under ``torchrun`` only rank 0 evaluates while
            the others wait at the next collective: keep one evaluation well under the
            process group's timeout (torch's default: 10 minutes for NCCL, 30 for gloo).
        evaluate_every: steps between evaluations (needed when ``evaluate`` is given, unless
            ``evaluate_every_seconds`` is).
        max_seconds: stop once the training time (evaluation excluded, as in the log) reaches
            this many seconds, even before ``steps``: equal-compute comparisons give every
            model the same wall-clock budget. ``None``: no time limit.
        evaluate_every_seconds: evaluate whenever another this-many seconds of training time
            have passed (with ``max_seconds``, evaluations evenly spread over the budget).
        lr_schedule: ``"constant"``, ``"linear"`` or ``"cosine"`` decay of the learning rate
            to zero at ``steps`` (see ``genzoo.train.schedules``), after ``warmup_steps`` of
            linear warm-up. A function of the step alone, so it resumes exactly.
        warmup_steps: steps of linear warm-up from ``lr / warmup_steps`` to ``lr``.
        accumulate: micro-batches of ``batch_size`` whose gradients are summed (each loss
            weighted by its share of the step's examples) into one optimiser step: a step on
            ``accumulate * batch_size`` examples with the activations of one batch.
        ema: decay of an exponential moving average of the weights (e.g. ``0.999``; ``None``
            for none). The average is used for evaluation and sampling: ``model.safetensors``
            of the run folder holds it (so ``genzoo.load``, ``sample`` and ``eval`` use it),
            the checkpoint holds it beside the raw weights, and ``fit`` returns the model
            holding it.
        precision: ``"32"``; ``"bf16-mixed"`` (autocast to bfloat16, CPU and CUDA) or
            ``"fp16-mixed"`` (float16 with a gradient scaler, CUDA only) for the losses.
        compile: run the losses through ``torch.compile`` (a clear error where a model cannot
            be compiled; the first steps are slow while it compiles). A float32 step on one
            process traces each loss and its gradients as one graph
            (``genzoo.train.fused_gradients``); where that graph cannot be built (an LSTM, a
            data-dependent shape), the loss alone is compiled and ``backward()`` runs.
        tensorboard: also write TensorBoard event files into ``out/tensorboard`` (losses,
            learning rate, evaluations, and sample grids of image models at the evaluation
            steps and the end); needs ``pip install genzoo[tensorboard]``. ``genzoo train``
            turns it on when tensorboard is installed.

    ``data`` may be a tensor (the fast path), a map-style ``torch.utils.data.Dataset``
    returning ``x`` or ``(x, c)``, an ``IterableDataset``, or a ``DataLoader`` (whose workers
    then read the batches the trainer asks for): see ``genzoo.train.batches`` for how each is
    seeded and resumed. A dataset is indexed exactly as the tensor holding its examples, so
    the two train the same parameters.

    Losses are read back from the device only at logging, checkpoint and evaluation steps
    (no per-step host synchronisation); a NaN or infinite loss is still reported with the
    step, the term and the player where it first appeared, before any checkpoint is written
    after it.

    Under ``torchrun`` (``WORLD_SIZE > 1``) ``fit`` joins the process group (gloo on CPU,
    NCCL on CUDA) unless the caller or an earlier ``fit`` did, and trains data-parallel:
    each rank draws its own batches (seeded by ``seed`` and its rank) and
    DistributedDataParallel averages the gradients, so a step equals one on the union of
    the ranks' batches. Logged losses are the mean over ranks. Rank 0 alone writes the run
    files, shows the progress bar and runs ``evaluate`` (``evaluations`` stays empty on the
    other ranks); a resume reads the checkpoint on every rank, each rank's RNG state
    included.

    A model with no players (EM's ``fit_step``) that offers ``sharded`` EM (``gmm`` with
    batch EM, ``deep-gmm`` with ``fit="sem"``) is data-parallel too: each rank hands
    ``fit_step`` its contiguous share of the rows (rows ``[a, b)`` of
    ``genzoo.models.em_shards.shard_bounds``, after the transform, which every rank applies
    to the whole set with the same seed) and the model sums its sufficient statistics over
    the ranks each iteration, so the ranks fit one model on the union of their shares: the
    single-process fit, up to the rounding of the sums (for ``deep-gmm``, up to the
    stochastic EM draws too, which each rank makes for its own rows). A model not yet
    initialised is initialised on rank 0 on the whole (transformed) data, as a single
    process would, and every rank starts from rank 0's state. Another model with no
    players runs the same seeded fit on every rank. Either way rank 0 writes, and its
    parameters and buffers are broadcast at the end.
    """

    steps: int = 2000
    batch_size: int = 512
    batch_order: str = "random"
    lr: float = 1e-3
    out: str | Path | None = None
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    clip_grad: float | None = None
    checkpoint_every: int = 500
    log_every: int = 50
    progress: bool | None = None
    resume: bool = False
    force: bool = False
    transform: BatchTransform | None = None
    evaluate: Evaluator | None = None
    evaluate_every: int = 0
    max_seconds: float | None = None
    evaluate_every_seconds: float = 0.0
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    accumulate: int = 1
    ema: float | None = None
    precision: str = "32"
    compile: bool = False
    tensorboard: bool = False
    history: list[dict[str, float]] = field(default_factory=list, init=False, repr=False)
    _source: Any = field(default=None, init=False, repr=False)
    _ema: EMA | None = field(default=None, init=False, repr=False)
    _time_offset: float = field(default=0.0, init=False, repr=False)
    _shard: tuple[int, int] | None = field(default=None, init=False, repr=False)
    evaluations: list[dict[str, float]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        _require_int("steps", self.steps, 0)
        _require_int("batch_size", self.batch_size, 1)
        _require_int("checkpoint_every", self.checkpoint_every, 1)
        _require_int("log_every", self.log_every, 1)
        _require_int("evaluate_every", self.evaluate_every, 0)
        _require_int("seed", self.seed, 0)
        _require_positive("lr", self.lr)
        if self.clip_grad is not None:  # 0 would freeze training, < 0 turn it into ascent
            _require_positive("clip_grad", self.clip_grad)
        if self.batch_order not in BATCH_ORDERS:
            raise ValueError(
                f"batch_order must be one of {list(BATCH_ORDERS)}, not {self.batch_order!r}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, not {self.dtype!r}")
        try:
            device_type = torch.device(self.device).type
        except (RuntimeError, TypeError):
            device_type = None
        if device_type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if device_type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no CUDA device")
        check_schedule(self.lr_schedule, self.warmup_steps)
        _require_int("accumulate", self.accumulate, 1)
        if self.ema is not None:
            EMA(torch.nn.Linear(1, 1), self.ema)  # the decay's check
        precision.check_precision(self.precision, self.device, self.dtype)
        if self.resume and self.force:
            raise ValueError("resume and force exclude each other: pick one")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be > 0 (or None), got {self.max_seconds}")
        if self.evaluate_every_seconds < 0:
            raise ValueError("evaluate_every_seconds must be >= 0")
        if (
            self.evaluate is not None
            and self.evaluate_every < 1
            and not self.evaluate_every_seconds > 0
        ):
            raise ValueError(
                "evaluate needs evaluate_every >= 1 (steps between evaluations) or "
                "evaluate_every_seconds > 0"
            )

    # -- public ------------------------------------------------------------------------------
    def fit(
        self,
        model: GenerativeModel,
        data: Tensor | tuple[Tensor, Tensor] | Dataset | DataLoader | None,
        run_info: dict[str, Any] | None = None,
        *,
        condition: Tensor | None = None,
    ) -> GenerativeModel:
        """Train ``model`` on ``data`` (shaped ``(n, *model.data_shape)``); return it.

        ``data=None`` trains a model that needs no data (one fitted to an unnormalised
        target density by reverse KL): its ``loss`` then receives ``batch=None`` and draws
        its own Monte-Carlo samples. ``run_info`` (JSON-ready, e.g. the dataset's name)
        is kept as ``out/run.json``.

        A conditional model (``model.condition_kind``) trains on ``condition``, one per
        example (``(n,)`` classes or ``(n, C)`` vectors), or on ``data=(x, c)``: every batch
        takes the same rows of both, and ``loss(batch, player, c=...)`` (``fit_step(data,
        c=...)``) sees them. A condition for an unconditional model, or none for a
        conditional one, is a ``DataError``.

        ``data`` may also be a ``torch.utils.data.Dataset`` (items ``x`` or ``(x, c)``), an
        ``IterableDataset`` or a ``DataLoader``; a model fitted on the whole set (EM) reads
        all of it into memory.
        """
        if isinstance(data, tuple):
            if condition is not None or len(data) != 2:
                raise ValueError("give the condition once: fit(model, (x, c)) or "
                                 "fit(model, x, condition=c)")  # fmt: skip
            data, condition = data
        if data is None and model.needs_data:
            raise DataError(
                f"{model.name} needs training data: fit(model, data) with data shaped "
                f"(n_examples, {', '.join(map(str, model.data_shape))})"
            )
        if not model.players:
            self._refuse_gradient_settings(model)
        if is_dataset(data):
            if condition is not None:
                raise ValueError("a Dataset brings its conditions: let it return (x, c) items "
                                 "instead of passing condition=")  # fmt: skip
            if not model.players and not streams_em(model, data):  # fitted on the whole set
                data, condition = materialize(data)
        n = None
        if isinstance(data, Tensor) or (data is not None and not is_dataset(data)):
            data = self._check_data(model, data)
            n = data.shape[0]
        elif data is not None:
            n = dataset_length(data)
            if n == 0:
                raise DataError("the training Dataset holds no examples")
        if n is not None and self.batch_size > n:
            warnings.warn(
                f"batch_size {self.batch_size} is larger than the {n} training "
                f"examples: using batches of {n}",
                stacklevel=2,
            )
            self.batch_size = int(n)
        if not is_dataset(data):
            condition = self._check_condition(model, data, condition)
        self._fit(model, data, run_info, distributed.setup(self.device), condition)
        return model

    def _refuse_gradient_settings(self, model: GenerativeModel) -> None:
        """A model fitted by its own procedure (EM) takes no gradient-step settings."""
        asked = [name for name, value, default in (
            ("accumulate", self.accumulate, 1), ("ema", self.ema, None),
            ("precision", self.precision, "32"), ("compile", self.compile, False),
        ) if value != default]  # fmt: skip
        if asked:
            raise ValueError(
                f"{model.name} is fitted by its own procedure (fit_step, e.g. EM), not by "
                f"gradient steps: {', '.join(asked)} do not apply to it; leave them out"
            )

    @staticmethod
    def _check_condition(model: GenerativeModel, data: Tensor | None, condition: Any):
        """The conditions checked against the model (classes in range, one per example)."""
        if data is None:
            model.check_condition(condition)  # a model fitted to a target takes none
            return None
        return model.check_condition(condition, data.shape[0])

    def _fit(self, model, data, run_info, context: Context, condition=None) -> None:
        # gradient-trained models are data-parallel through DDP, EM models through sharded
        # statistics (``parallel`` stays False for them: no DDP, one seed on every rank)
        parallel = context.parallel and bool(model.players)
        sharded = context.parallel and not model.players and getattr(model, "shardable", False)
        self._shard = None
        if sharded and data is not None:
            self._shard = em_shards.shard_bounds(data.shape[0], context.rank, context.world)
        if context.parallel and self.max_seconds is not None:
            raise ValueError(
                "max_seconds is not supported under torchrun: each rank's clock would stop it "
                "at a different step; give a step count instead"
            )
        self._source, self._writer = None, None
        with contextlib.ExitStack() as guards:
            if self.out is not None and context.main:  # one writer per run folder
                guards.enter_context(folder_lock(self.out))
                restore_interrupted_replacement(Path(self.out), RUN_FILES)
            try:
                self._fit_guarded(model, data, run_info, context, parallel, guards, condition)
            finally:
                if self._source is not None:
                    self._source.close()
                self._source = None
                if self._writer is not None:
                    self._writer.close()
                self._writer = None

    def _fit_guarded(self, model, data, run_info, context, parallel, guards, condition) -> None:
        rank = context.rank if parallel else 0
        self.evaluations = []  # a reused Trainer must not time this run by an earlier one
        self._time_offset = 0.0
        out = self._prepare_out(context)
        if out is not None and self.force and context.main:  # the old run back on failure
            guards.enter_context(replacing(out, RUN_FILES))
        if out is not None and self.resume:
            self._check_resumable(out, run_info)
        torch.manual_seed(self.seed + RANK_STRIDE * rank)
        model.to(device=context.device, dtype=DTYPES[self.dtype])
        self._device, self._float = torch.device(context.device), DTYPES[self.dtype]
        if isinstance(data, Tensor):  # integer data (token ids) keep their dtype
            dtype = DTYPES[self.dtype] if data.is_floating_point() else data.dtype
            data = data.to(device=context.device, dtype=dtype)
        if condition is not None:  # classes stay int64, vectors take the training dtype
            dtype = DTYPES[self.dtype] if condition.is_floating_point() else condition.dtype
            condition = condition.to(device=context.device, dtype=dtype)
        optimizers = {
            player: make_optimizer(
                model.player_parameters(player), self.lr, model.optimizer_settings(player)
            )
            for player in model.players
        }
        self._base_lr = {
            player: self.lr * model.optimizer_settings(player).get("lr_scale", 1.0)
            for player in model.players
        }
        self._scalers = precision.make_scalers(self.precision, model.players)
        # each optimiser's step and zero_grad, fused Adam's without torch.optim's Python
        self._steppers = {player: lean_stepper(o) for player, o in optimizers.items()}
        own = model.own_weight_average() if self.ema is not None else None
        if own is not None:
            raise ValueError(
                f"{model.name or type(model).__name__} keeps its own moving average of its "
                f"weights (its hyper-parameter {own}) and samples with it: drop --ema, or set "
                f"{own}=0 to use the trainer's"
            )
        self._ema = EMA(model, self.ema) if self.ema is not None and model.players else None
        batches = torch.Generator(device="cpu").manual_seed(self.seed + RANK_STRIDE * rank)
        start, position = 0, {}
        if self.resume and out is not None and (out / CHECKPOINT_FILE).exists():
            start, rng, extra, saved = load_checkpoint(out / CHECKPOINT_FILE, model, optimizers)
            suffix = f"@{rank}" if rank else ""
            if "batches" + suffix in rng:
                batches.set_state(rng["batches" + suffix])
                torch.set_rng_state(rng["torch" + suffix])
                if "cuda" + suffix in rng and torch.device(context.device).type == "cuda":
                    torch.cuda.set_rng_state(rng["cuda" + suffix], context.device)
            else:  # a checkpoint from fewer ranks: fresh streams, distinct per rank and step
                batches.manual_seed(self.seed + RANK_STRIDE * rank + start)
                torch.manual_seed(self.seed + RANK_STRIDE * rank + start)
            position = extra.get("data_position", {})
            if "batches_drawn" in extra:  # checkpoints written before data positions
                position = {"batches_drawn": int(extra["batches_drawn"])}
            for player, optimizer in optimizers.items():  # the learning rate asked for now
                for group in optimizer.param_groups:
                    group["lr"] = self._base_lr[player]
            for player, state in extra.get("scalers", {}).items():
                if player in self._scalers:
                    self._scalers[player].load_state_dict(state)
            ema_state = {k[4:]: v.to(model.device) for k, v in saved.items()
                         if k.startswith("ema/")}  # fmt: skip
            if self._ema is not None and ema_state:
                self._ema.load(ema_state, int(extra.get("ema_updates", 0)))
            elif self._ema is not None:  # a run without an average: it starts here
                self._ema = EMA(model, self.ema)
        self._source = None
        if data is not None and model.players:
            world = context.world if parallel else 1
            self._source = make_source(data, condition, self.batch_size, self.batch_order,
                                       self.seed, batches, position, rank, world,
                                       blocked=self.transform is None)  # fmt: skip
        self._checked = isinstance(data, Tensor)  # dataset batches are checked as they come
        self._finite_checked = False
        if out is not None and context.main:
            write_json(out / "trainer.json", self._settings())
            if run_info is not None:
                write_json(out / RUN_INFO_FILE, run_info)
            self._time_offset = self._truncate_log(out, start)
        self._writer = None
        if self.tensorboard and out is not None and context.main:
            from genzoo.train.tensorboard import open_writer

            self._writer = open_writer(out / TENSORBOARD_DIR, start)
        self._context = context if parallel else Context(device=context.device)
        self._loss = distributed.wrap(model, self._context)
        # the plain step: one batch, float32, no DDP (the loss compiled or called directly)
        self._plain = (self.accumulate == 1 and self.precision == "32"
                       and not self._context.parallel)  # fmt: skip
        self._fused = None
        if self.compile:
            # An in-memory tensor's batches come in two sizes at most (an epoch's last one
            # may be short): one static graph for each. Torch's automatic dynamic shapes
            # would recompile for the second size into a graph with symbolic sizes, whose
            # guards and kernels cost a small model ~10% more every step (issue 19).
            dynamic = False if self._checked else None
            if self._plain:  # the loss and its gradients as one graph where it can be built
                params = {player: _parameters(o) for player, o in optimizers.items()}
                self._fused = FusedGradients(self._loss, params, dynamic, type(model))
            self._loss = compile_per_class(_calling(self._loss), type(model), dynamic=dynamic)
        self._autocast = precision.autocast(self.precision, self._device)
        self._scheduled = self.lr_schedule != "constant" or self.warmup_steps > 0
        # a model with a closed-form gradient (a persistent Bernoulli rbm) applies its own
        # plain-SGD step: the same update as loss + backward + torch.optim.SGD, less autograd
        self._sgd_step = (self._plain and not self.compile and self.clip_grad is None
                          and getattr(model, "can_sgd_step", False)
                          and all(_plain_sgd(o) for o in optimizers.values()))  # fmt: skip
        self._pending = []
        self._loop(model, (data, condition), optimizers, batches, start, out, context.main)
        if self._ema is not None:  # the model handed back is the one evaluated and saved
            self._ema.copy_to_model()
        if context.parallel and not parallel:
            distributed.broadcast_state(model, context)

    # -- the loop ----------------------------------------------------------------------------
    def _loop(self, model, data, optimizers, batches, start, out, main: bool = True) -> None:
        """The training loop; ``data`` is the pair ``(examples, conditions or None)``."""
        show = (sys.stderr.isatty() if self.progress is None else self.progress) and main
        files = out if main else None  # only rank 0 writes
        bar = tqdm(total=self.steps, initial=start, disable=not show, desc=model.name, leave=False)
        sums: dict[str, float] = {}
        # a resumed run's clock goes on from the logged training time of its checkpoint
        count, last_good = 0, None
        tic = time.perf_counter() - (self._time_offset if start > 0 else 0.0)
        if out is not None and start > 0:
            last_good = (out / CHECKPOINT_FILE, start)
        step = start
        next_eval = self.evaluate_every_seconds  # training seconds of the next timed evaluation
        guards, sharding = contextlib.ExitStack(), False
        prefixed = len(model.players) > 1
        # the per-step work of small models is a few hundred microseconds: keep the loop lean
        steps, max_seconds, log_every = self.steps, self.max_seconds, self.log_every
        evaluator = self.evaluate is not None and main
        plain = self._plain and not self._scheduled and bool(model.players)
        try:
            while step < steps:
                if plain:
                    self._plain_step(model, optimizers, batches, step)
                    if self._ema is not None:
                        self._ema.update()
                elif model.players:
                    self._gradient_step(model, optimizers, batches, step)
                    if self._ema is not None:
                        self._ema.update()
                elif is_dataset(data[0]):  # EM read chunk by chunk (streams_em)
                    terms = self._streamed_em_step(model, data[0], batches)
                    self._check_terms(terms, step, "model", last_good)
                    for key, value in terms.items():
                        sums[key] = sums.get(key, 0.0) + float(value)
                else:
                    whole, condition = self._apply_transform(data[0], batches), data[1]
                    if self._shard is not None:  # EM across the ranks: this rank's rows
                        if not sharding:  # rank 0 initialises (if need be), all take its state
                            guards.enter_context(model.sharded(whole, condition))
                            sharding = True
                        rows = slice(*self._shard)
                        whole = whole[rows]
                        condition = None if condition is None else condition[rows]
                    if condition is None:
                        terms = model.fit_step(whole)
                    else:
                        terms = model.fit_step(whole, c=condition)
                    self._check_terms(terms, step, "model", last_good)
                    for key, value in terms.items():
                        sums[key] = sums.get(key, 0.0) + float(value)
                count += 1
                step += 1
                bar.update(1)
                elapsed = time.perf_counter() - tic
                out_of_time = max_seconds is not None and elapsed >= max_seconds
                converged = model.converged
                done = step == steps or converged or out_of_time
                logging = step % log_every == 0 or done
                evaluating = evaluator and (
                    (self.evaluate_every > 0 and step % self.evaluate_every == 0)
                    or 0 < next_eval <= elapsed
                    or done
                )
                saving = out is not None and (step % self.checkpoint_every == 0 or done)
                if self._pending and (logging or evaluating or saving):
                    self._flush(sums, last_good, prefixed)  # the NaN guard, before any write
                logged: dict[str, float] = {}
                if logging:
                    logged = {"step": step, "time": round(time.perf_counter() - tic, 3)}
                    logged.update({k: v / count for k, v in sums.items()})
                    if self._scheduled and model.players:
                        logged["lr"] = self._current_lr(step - 1)
                    self._log(files, logged)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in list(logged.items())[2:]})
                    sums, count = {}, 0
                if evaluating:
                    while 0 < next_eval <= elapsed:
                        next_eval += self.evaluate_every_seconds
                    seconds = time.perf_counter() - tic
                    row = {"step": step, "time": round(seconds, 3)} | self._eval(model)
                    self.evaluations.append(row)
                    self._write_log(files, row)
                    tic = time.perf_counter() - seconds  # evaluation is not training time
                if self._writer is not None and (logging or evaluating or done):
                    seconds = time.perf_counter() - tic
                    self._write_tensorboard(model, step, logged, images=evaluating or done)
                    tic = time.perf_counter() - seconds  # nor is writing the event files
                if saving:
                    self._checkpoint(out, model, optimizers, step, batches, main)
                    last_good = (out / CHECKPOINT_FILE, step)
                if converged or out_of_time:
                    break
            if out is not None and step == start == 0:  # steps=0: the untrained model is saved
                self._checkpoint(out, model, optimizers, step, batches, main)
        except Exception as err:
            if self._pending:  # a NaN earlier in the window explains the failure
                self._flush({}, last_good, prefixed, cause=err)
            raise
        finally:
            guards.close()
            bar.close()

    def _current_lr(self, step: int) -> float:
        """The learning rate of the step ``step`` (0-based), before any player's scale."""
        return self.lr * lr_factor(self.lr_schedule, step, self.steps, self.warmup_steps)

    def _flush(self, sums: dict[str, float], last_good, prefixed: bool, cause=None) -> None:
        """Read the loss terms of the steps since the last read back from the device in one
        transfer, stop at the first non-finite one (naming its step), and add them to
        ``sums``."""
        pending, self._pending = self._pending, []
        flat = [value for _, _, terms in pending for value in terms.values()]
        try:
            stacked = torch.stack(flat)
        except RuntimeError:  # mixed dtypes or shapes
            stacked = torch.stack([v.reshape(()).to(torch.float64) for v in flat])
        stacked = stacked.to(torch.float64)
        if cause is None:  # after a failure the other ranks may never join a collective
            stacked = distributed.mean_tensor_over_ranks(stacked, self._context)
        values = iter(stacked.tolist())
        rows: dict[int, dict[str, float]] = {}  # per step, a player's last update (n_critic)
        for step, player, terms in pending:
            read = {name: next(values) for name in terms}
            try:
                self._check_terms(read, step, player, last_good)
            except TrainingDiverged as diverged:
                raise diverged from cause
            prefix = f"{player}/" if prefixed else ""
            rows.setdefault(step, {}).update({prefix + k: v for k, v in read.items()})
        for row in rows.values():
            for key, value in row.items():
                sums[key] = sums.get(key, 0.0) + value

    def _eval(self, model: GenerativeModel) -> dict[str, float]:
        """The evaluator's values, computed in eval mode without gradients (with the EMA
        weights when there are), the global random state forked so that tracking quality
        never changes the training."""
        with self._evaluated(model):
            values = self.evaluate(model)
        return {EVAL_PREFIX + k: float(v) for k, v in values.items()}

    @contextlib.contextmanager
    def _evaluated(self, model: GenerativeModel):
        """Eval mode, no gradients, a forked random state and the EMA weights."""
        was_training = model.training
        model.eval()
        devices = [model.device] if model.device.type == "cuda" else []
        averaged = self._ema.applied() if self._ema is not None else contextlib.nullcontext()
        try:
            with torch.random.fork_rng(devices=devices), torch.no_grad(), averaged:
                yield
        finally:
            model.train(was_training)

    def _write_tensorboard(self, model, step: int, row: dict[str, float], images: bool) -> None:
        from genzoo.train.tensorboard import write_samples, write_scalars

        scalars = {k: v for k, v in row.items() if k not in ("step", "time")}
        if model.players and row:
            scalars["lr"] = self._current_lr(step - 1)
        if self.evaluations and self.evaluations[-1]["step"] == step:
            scalars.update({k: v for k, v in self.evaluations[-1].items()
                            if k.startswith(EVAL_PREFIX)})  # fmt: skip
        write_scalars(self._writer, scalars, step)
        if images:
            with self._evaluated(model):
                write_samples(self._writer, model, step)

    def _gradient_step(self, model, optimizers, batches, step) -> None:
        """One optimiser step for each player the model schedules at ``step``, each on
        ``accumulate`` micro-batches; the loss terms stay on the device in ``_pending``."""
        if self._scheduled:
            factor = lr_factor(self.lr_schedule, step, self.steps, self.warmup_steps)
            for player, optimizer in optimizers.items():
                for group in optimizer.param_groups:
                    group["lr"] = self._base_lr[player] * factor
        if self._plain:
            self._plain_step(model, optimizers, batches, step)
            return
        k = self.accumulate
        for player in model.schedule(step):
            optimizer, stepper = optimizers[player], self._steppers[player]
            scaler = self._scalers.get(player)
            micro = []
            drawn = [self._batch(model, batches) for _ in range(k)]
            sizes = [1 if batch is None else len(batch) for batch, _ in drawn]
            for i, (batch, c) in enumerate(drawn):
                with self._autocast:
                    total, terms = self._compute_loss(model, batch, player, c)
                if k > 1:  # the mean over the k micro-batches' examples (an epoch's last
                    total = total * (sizes[i] / sum(sizes))  # batch may be short)
                if i == 0:
                    stepper.zero_grad()
                with precision.explained(model.name or type(model).__name__, self.precision,
                                         self.compile):  # fmt: skip
                    (total if scaler is None else scaler.scale(total)).backward()
                micro.append(terms)
            if self.clip_grad is not None:
                if scaler is not None:
                    scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(_parameters(optimizer), self.clip_grad)
            if scaler is None:
                stepper.step()
            else:
                scaler.step(optimizer)
                scaler.update()
            model.after_step(player, step)
            if k > 1:
                terms = {name: torch.stack([m[name] for m in micro]).mean() for name in terms}
            self._pending.append((step, player, terms))

    def _plain_step(self, model, optimizers, batches, step) -> None:
        """``_gradient_step`` without accumulation, scaler, autocast or DDP wrapper: the loop
        of small models, where every microsecond of Python shows (issue 19)."""
        source, transform, pending = self._source, self.transform, self._pending
        for player in model.schedule(step):
            if source is None:
                batch = c = None
            elif self._checked:
                batch, c = source.next()
                if transform is not None:
                    batch = transform(batch, batches)
            else:
                batch, c = self._batch(model, batches)
            if self._sgd_step:
                lr = optimizers[player].param_groups[0]["lr"]  # the schedule's, if any
                pending.append((step, player, model.sgd_step(batch, lr)))
                model.after_step(player, step)
                continue
            stepper = self._steppers[player]
            fused = None if self._fused is None else self._fused.step(batch, player, c)
            if fused is not None:  # the gradients are set
                terms = fused
            elif self.compile:  # the compiled loss module; a failure to compile is explained
                total, terms = self._compute_loss(model, batch, player, c)
                stepper.zero_grad()
                with precision.explained(model.name or type(model).__name__, "32", True):
                    total.backward()  # its backward graph is compiled on the first call
            else:
                output = model.loss(batch, player) if c is None else model.loss(batch, player, c=c)
                total, terms = distributed.split_terms(output)
                stepper.zero_grad()
                total.backward()
            if self.clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(_parameters(optimizers[player]), self.clip_grad)
            stepper.step()
            model.after_step(player, step)
            pending.append((step, player, terms))

    def _compute_loss(self, model, batch, player, c):
        """The loss module's output; a failure to compile or to run under mixed precision is
        explained in one line naming the model (``precision.explained``)."""
        with precision.explained(model.name or type(model).__name__, self.precision, self.compile):
            return self._loss(batch, player, c)

    def _batch(self, model, batches: torch.Generator) -> tuple[Tensor | None, Tensor | None]:
        """The next mini-batch of examples and the same rows of the conditions (or None)."""
        if self._source is None:
            return None, None
        x, c = self._source.next()
        if not self._checked:  # from a dataset: its device, dtype and shape checked here
            x, c = self._place(model, x, c)
        return self._apply_transform(x, batches), c

    def _place(self, model, x: Tensor, c: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """A dataset's batch checked against the model and moved to its device and dtype."""
        check_shape(x, model.data_shape, "a training batch from the Dataset")
        if not self._finite_checked:  # the first batch (a full scan would need the data)
            check_finite(x, "a training batch from the Dataset")
            self._finite_checked = True
        self._check_values(model, x)
        dtype = self._float if x.is_floating_point() else x.dtype
        x = x.to(device=self._device, dtype=dtype, non_blocking=True)
        if c is not None or model.condition_kind is not None:
            c = model.check_condition(c, x.shape[0])
        return x, c

    def _streamed_em_step(self, model, dataset: Dataset, batches: torch.Generator) -> dict:
        """One EM step over a Dataset read ``DATASET_CHUNK_ROWS`` rows at a time (``streams_em``):
        memory holds one chunk and the model's statistics, whatever the data's size. A model
        not yet initialised starts from ``EM_INIT_ROWS`` rows drawn by the seeded batch
        generator (k-means++ on a sample, as ``fit_gmm_memmap`` does for files)."""

        def prepared(x: Tensor) -> Tensor:
            check_finite(x, "a training chunk from the Dataset")
            dtype = self._float if x.is_floating_point() else x.dtype
            return self._apply_transform(x.to(device=self._device, dtype=dtype), batches)

        if not model.initialized:
            n = len(dataset)  # type: ignore[arg-type]
            rows = torch.randperm(n, generator=batches)[:EM_INIT_ROWS].sort().values
            model.initialize(torch.cat([prepared(x) for x, _ in chunked_rows(dataset, rows)]))
        return model.fit_step_chunks(prepared(x) for x, _ in chunked_rows(dataset))

    def _apply_transform(self, batch: Tensor | None, batches: torch.Generator) -> Tensor | None:
        if batch is None or self.transform is None:
            return batch
        return self.transform(batch, batches)

    @staticmethod
    def _check_terms(terms: Mapping[str, Any], step: int, player: str, last_good) -> None:
        """Stop with a message naming the step, the term and the last good checkpoint."""
        for name, value in terms.items():
            value = float(value.detach()) if isinstance(value, Tensor) else float(value)
            if not math.isfinite(value):
                where = (
                    f"the last good checkpoint is {last_good[0]} (step {last_good[1]}); "
                    "resume from it with a lower learning rate or gradient clipping"
                    if last_good
                    else "no checkpoint was written before it (checkpoints need out=... and "
                    "come every checkpoint_every steps)"
                )
                raise TrainingDiverged(
                    f"loss term {name!r} of player {player!r} became {value} at step {step + 1}; "
                    f"training stopped, {where}"
                )

    # -- files -------------------------------------------------------------------------------
    def _check_values(self, model: GenerativeModel, x: Tensor) -> None:
        """Under ``compile``, the model's own checks of the values (finite, levels, binary),
        which its compiled loss skips since each read would break the graph every step."""
        if self.compile and self.transform is None:
            for rows in x.split(DATASET_CHUNK_ROWS):
                model.check_input(rows)

    def _check_data(self, model: GenerativeModel, data: Tensor) -> Tensor:
        data = as_tensor(data, "training data")
        check_shape(data, model.data_shape, "training data")
        data = check_finite(data, "training data")
        self._check_values(model, data)  # once, on the whole data
        continuous = model.data_kind == "continuous" and self.transform is None
        if continuous and data.is_floating_point() and data.shape[0] > 1:
            flat = data.reshape(data.shape[0], -1)
            constant = int((flat.amax(0) == flat.amin(0)).sum())
            if constant and model.density != "none":
                warnings.warn(
                    f"{constant} of the {flat.shape[1]} data dimensions are constant: the data "
                    "has no density in those directions, so a continuous model's NLL can fall "
                    "without bound; drop them or add noise",
                    stacklevel=3,
                )
        return data

    def _prepare_out(self, context: Context | None = None) -> Path | None:
        """Check the run folder on every rank; rank 0 alone clears and creates it."""
        context = context or Context()
        if self.out is None:
            return None
        out = Path(self.out)
        present = [name for name in RUN_FILES if (out / name).exists()]
        if present and not (self.resume or self.force):
            raise RunExistsError(
                f"{out} already holds a run ({', '.join(present)}): pass resume=True "
                "(--resume) to continue it, force=True (--force) to overwrite it, "
                "or choose another folder"
            )
        context.barrier()  # every rank has looked before rank 0 changes anything
        if context.main:
            out.mkdir(parents=True, exist_ok=True)
        return out

    def _check_resumable(self, out: Path, run_info: dict[str, Any] | None) -> None:
        """Refuse to resume a run with other settings or data than its own, naming each
        difference (steps, logging, device and evaluation may change)."""
        differences = []
        if (out / "trainer.json").exists():
            saved = read_json(out / "trainer.json")
            now = self._settings()
            fixed = {key: now[key] for key in RESUME_FIXED if key in saved}
            if saved.get("lr_schedule", "constant") != "constant":  # its horizon is the steps
                fixed["steps"] = now["steps"]
            differences += setting_differences(saved, fixed)
        if run_info is not None and (out / RUN_INFO_FILE).exists():
            differences += setting_differences(read_json(out / RUN_INFO_FILE), run_info)
        if differences:
            raise ResumeMismatchError(
                f"cannot resume {out} with different settings ({'; '.join(differences)}): "
                "resume with the run's own, or start a new run folder (only steps (under a "
                "constant lr_schedule), logging, checkpoint interval, device, evaluation, "
                "learning rate, gradient clipping, compile and tensorboard may change on resume)"
            )

    def _checkpoint(self, out: Path, model, optimizers, step: int, batches, main=True) -> None:
        held = self._source.generator_state() if self._source is not None else None
        rng = {"batches": batches.get_state() if held is None else held,
               "torch": torch.get_rng_state()}  # fmt: skip
        if model.device.type == "cuda":  # noise drawn on the GPU has its own stream
            rng["cuda"] = torch.cuda.get_rng_state(model.device)
        rng = distributed.gather_rng(rng, self._context)  # every rank's streams, for resume
        if not main:
            return
        extra: dict[str, Any] = {}
        if self._source is not None:
            extra["data_position"] = self._source.position()
        tensors = {}
        if self._ema is not None:
            extra["ema_updates"] = self._ema.updates
            tensors = {f"ema/{k}": v for k, v in self._ema.state().items()}
        if self._scalers:
            extra["scalers"] = {p: s.state_dict() for p, s in self._scalers.items()}
        save_checkpoint(out / CHECKPOINT_FILE, model, optimizers, step, rng, extra, tensors)
        with self._ema.applied() if self._ema is not None else contextlib.nullcontext():
            model.save(out)  # the weights to use: the average when there is one

    @staticmethod
    def _truncate_log(out: Path, step: int) -> float:
        """Drop log lines written after the checkpoint a resumed run restarts from, and a
        torn last line (a crash mid-write); return the training time logged at ``step``."""
        path = out / METRICS_FILE
        if not path.exists():
            return 0.0
        lines = path.read_text(encoding="utf-8").splitlines()
        rows = []
        for number, line in enumerate(lines, 1):
            try:
                rows.append((line, json.loads(line)))
            except json.JSONDecodeError as err:
                if number < len(lines):
                    raise CheckpointError(
                        f"{path} line {number} is not JSON ({err}): repair or delete that "
                        "line to resume"
                    ) from err
                warnings.warn(f"{path}: dropped a torn last line (a crash mid-write)",
                              stacklevel=4)  # fmt: skip
        kept = [(line, row) for line, row in rows if row.get("step", 0) <= step]
        atomic_write(path, lambda tmp: Path(tmp).write_text("".join(k + "\n" for k, _ in kept)))
        times = [row["time"] for _, row in kept if row.get("step") == step and "time" in row]
        return float(times[0]) if times else 0.0

    def _log(self, out: Path | None, row: dict[str, float]) -> None:
        self.history.append(row)
        self._write_log(out, row)

    @staticmethod
    def _write_log(out: Path | None, row: dict[str, float]) -> None:
        if out is not None:
            with open(out / METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")

    def _settings(self) -> dict[str, Any]:
        settings = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        settings["out"] = str(self.out)
        settings["transform"] = getattr(self.transform, "__name__", repr(self.transform))
        settings["evaluate"] = getattr(self.evaluate, "__name__", repr(self.evaluate))
        return settings
