"""Train, evaluate and sample a run folder by name: what the CLI and the benchmark call.

A run folder holds the trainer's files, among them ``run.json`` naming the dataset it was trained
on (and the condition, for a conditional model), so that ``evaluate`` can score it on the
matching test split.
"""

from __future__ import annotations

import inspect
import math
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import torch
from torch import Tensor

from genzoo import data as datasets
from genzoo.data import text
from genzoo.errors import DataError, ResumeMismatchError
from genzoo.io import CONFIG_FILE, RUN_INFO_FILE, load_model, read_json
from genzoo.metrics import (
    UNNORMALIZED_NOTE,
    bayes_accuracy,
    conditional_kl,
    density_label,
    kl_gap,
    negative_log_likelihood,
)
from genzoo.models.base import GenerativeModel
from genzoo.registry import create, hyperparameters, list_models, model_class
from genzoo.train import Trainer
from genzoo.train.runfolder import setting_differences


def batch_transform(model_kind: str, levels: int | None):
    """Uniform dequantisation when a continuous model meets discrete levels, else ``None``."""
    if levels is None or model_kind != "continuous":
        return None

    def dequantize(batch: Tensor, generator: torch.Generator) -> Tensor:
        return datasets.dequantize(batch, levels, generator)

    return dequantize


def train(
    model_name: str,
    dataset: str,
    out: str | Path | None = None,
    hparams: dict[str, Any] | None = None,
    n: int | None = None,
    data_seed: int = 0,
    condition: str | None = None,
    condition_column: str | None = None,
    **trainer_settings: Any,
) -> tuple[GenerativeModel, Trainer]:
    """Train ``model_name`` on the train split of ``dataset``; return the model and trainer.

    ``condition`` (the name of what the dataset carries beside each example: ``"label"``,
    ``"features"``, a CSV column; see ``DatasetInfo.condition``) trains the conditional model
    ``Q(x | c)``: its ``n_classes`` or ``condition_dim`` come from the dataset and ``run.json``
    records the condition. ``condition_column`` names the CSV column of a user's file that
    holds it (left out of the examples; the condition is then that column).

    ``dataset`` is a shipped dataset's name or the path of a user's file (arrays or UTF-8
    text). For a text file the data options ``tokens`` (``chars``, the default, or ``words``),
    ``layout`` (``windows``, or ``lines``: one line per example, ``<eos>`` then ``<pad>``;
    the default is the model's ``text_layout``), ``seq_len``, ``max_vocab`` and ``lowercase`` are
    taken out of ``hparams`` (see ``genzoo.data.text.open_text_file``). ``run.json`` then records
    them with the whole vocabulary (``tokenizer``), so sampling needs only the run folder, and
    names the dataset ``PATH?options`` so that evaluation rebuilds the same examples.
    Models with a ``levels``/``vocab_size`` hyper-parameter get the dataset's ``levels`` (a text
    file's vocabulary size; see ``genzoo.data.dataset_info`` for array files).

    Defaults come from one place: ``steps``, ``batch_size`` and ``lr`` not given (or ``None``)
    and the hyper-parameters not in ``hparams`` are the model's recommended budget for the
    dataset, what ``genzoo bench`` trains it with (:func:`resolve_defaults`); the run's
    ``trainer.json`` and ``config.json`` record the values used. ``n`` not given is the
    budget's ``n_train`` for a shipped dataset (NSF on a 2-D toy: 1,000,000 points), else
    the dataset's own default; ``run.json`` records it.
    """
    cls = model_class(model_name)
    accepted = hyperparameters(cls)
    hparams = dict(hparams or {})
    if isinstance(dataset, (str, Path)) and Path(dataset).exists():
        dataset = str(Path(dataset).resolve())  # run.json must find it from any folder
    if condition_column is not None:  # a data option of CSV files, kept in the name
        if not datasets.is_user_file(dataset):
            raise DataError(f"--condition-column names a column of a CSV file; {dataset} is a "
                            "shipped dataset: use --condition NAME")  # fmt: skip
        dataset = f"{dataset}?{urlencode({'condition_column': condition_column})}"
        condition = condition or condition_column
    if n is None and not datasets.is_user_file(dataset):  # the budget's draw (2-D toys)
        from genzoo.bench.budgets import recommended_budget  # the bench imports this module

        n = recommended_budget(model_name, dataset, conditioned=condition is not None).n_train
    run_info: dict[str, Any] = {"n": n, "seed": data_seed}
    if datasets.is_text_file(dataset):
        options = {k: hparams.pop(k) for k in text.TEXT_FILE_OPTIONS if k in hparams}
        made = text.open_text_file(dataset, layout_default=cls.text_layout, **options)
        dataset = made.spec
        run_info.update(made.record())
    else:
        misplaced = [k for k in text.TEXT_FILE_OPTIONS if k in hparams and k not in accepted]
        if misplaced:
            raise DataError(
                f"{', '.join(misplaced)}: data options of text files given by path, and "
                f"{dataset} is not one; remove them"
            )
    info = datasets.dataset_info(dataset)
    # integer levels (digits, or a user's file of 0..L-1 values) are dequantised for
    # continuous models, exactly as evaluate scores them; discrete models are sized by them
    levels = info.levels
    c = None
    if condition is not None:
        wanted = datasets.condition_info(dataset, condition)
        _check_condition_kind(cls, wanted.kind)
        for key, value in wanted.hyperparameters().items():
            hparams.setdefault(key, value)  # sized by the dataset, not the training split
        if wanted.kind == "tokens" and "condition_vocab" in accepted:  # a text input's ids
            hparams.setdefault("condition_vocab", text.tokenizer_for(dataset).vocab_size)
        run_info["condition"] = wanted.name
    source = None  # a Dataset read from disk as it is used (data larger than memory)
    if datasets.is_streamed(dataset) and (n is None or n > datasets.SPRITES_IN_MEMORY):
        source = datasets.open_dataset(
            dataset, split="train", n=n, seed=data_seed, condition=condition is not None
        )
        x, c = _sizing_examples(source, data_seed)
    elif condition is not None:
        x, c = datasets.load_dataset(dataset, split="train", n=n, seed=data_seed, condition=True)
    else:
        x = datasets.load_dataset(dataset, split="train", n=n, seed=data_seed)
    n_train = x.shape[0] if source is None else len(source)
    if n is not None and n_train < n:
        warnings.warn(f"{dataset} has {n_train} training examples, fewer than n={n}: "
                      "training on all of them", stacklevel=2)  # fmt: skip
    resolve_defaults(model_name, dataset, out, hparams, trainer_settings, condition is not None)
    data_kind = cls.data_kind_for(x, hparams)
    transform = batch_transform(data_kind, levels)
    if levels is not None and data_kind == "discrete":  # sized by the dataset's levels
        for key in ("levels", "vocab_size"):
            if key in accepted and key not in hparams:
                hparams[key] = levels
    trainer = Trainer(out=out, transform=transform, **trainer_settings)
    if trainer.resume and out is not None and (Path(out) / CONFIG_FILE).exists():
        model = load_model(out)
        _check_same_model(out, model, model_name, hparams)
    else:
        seen = x if transform is None else transform(x, torch.Generator().manual_seed(data_seed))
        torch.manual_seed(trainer.seed)
        model = create(model_name, data=seen, condition=c, **hparams)
    if source is None:
        trainer.fit(model, x, run_info={"dataset": dataset, **run_info}, condition=c)
    else:  # the Dataset's items carry their conditions
        trainer.fit(model, source, run_info={"dataset": dataset, **run_info})
    return model, trainer


#: How many examples of a streamed dataset size a new model (its data statistics, the
#: shape of its data and condition).
SIZING_EXAMPLES = 2048


def _sizing_examples(source: torch.utils.data.Dataset, seed: int) -> tuple[Tensor, Tensor | None]:
    """A seeded random sample of a streamed dataset's examples (and their conditions), to
    build the model from: random, not the first ones, since files such as sprites are stored
    in the order of their factors."""
    size = len(source)
    if size == 0:
        raise DataError("the training split is empty: nothing to train on")
    order = torch.randperm(size, generator=torch.Generator().manual_seed(seed))
    items = [source[int(i)] for i in order[:SIZING_EXAMPLES].sort().values]
    if isinstance(items[0], tuple):
        return torch.stack([x for x, _ in items]), torch.stack([c for _, c in items])
    return torch.stack(items), None


#: The trainer settings ``train`` fills from the recommended budget when not given.
BUDGETED_SETTINGS = ("steps", "batch_size", "lr", "lr_schedule")


def resolve_defaults(
    model_name: str,
    dataset: str,
    out: str | Path | None,
    hparams: dict[str, Any],
    settings: dict[str, Any],
    conditioned: bool = False,
) -> None:
    """Fill, in place, what the caller left unset with the model's recommended budget for
    ``dataset`` (under a condition: ``conditioned``; :func:`genzoo.bench.budgets.
    recommended_budget`, the numbers ``genzoo bench`` trains with, full step count):
    ``steps``, ``batch_size``, ``lr`` and ``lr_schedule`` absent or ``None`` in
    ``settings``, and each budget hyper-parameter absent from ``hparams``. Given values always
    win. A resumed run (``resume`` with the run's ``trainer.json`` in ``out``) takes its own
    saved settings instead, and no hyper-parameters (the saved model is continued)."""
    saved = None if out is None else Path(out) / "trainer.json"
    if settings.get("resume") and saved is not None and saved.is_file():
        own = read_json(saved)
    else:
        from genzoo.bench.budgets import recommended_budget  # the bench imports this module

        budget = recommended_budget(model_name, dataset, conditioned=conditioned)
        own = {
            "steps": budget.full_steps,
            "batch_size": budget.batch_size,
            "lr": budget.lr,
            "lr_schedule": budget.lr_schedule,
        }
        accepted = hyperparameters(model_class(model_name))
        for key, value in budget.hparams.items():
            if key in accepted:
                hparams.setdefault(key, value)
    for key in BUDGETED_SETTINGS:
        if settings.get(key) is None and key in own:
            settings[key] = own[key]
        if settings.get(key) is None:  # e.g. a run saved before the setting existed
            settings.pop(key, None)  # the Trainer's own default


def _check_condition_kind(cls: type[GenerativeModel], kind: str) -> None:
    """Refuse a condition of a kind the model class cannot take, naming those that can."""
    if kind in cls.condition_kinds:
        return
    able = [m.name for m in list_models() if kind in model_class(m.name).condition_kinds]
    takes = f"only a {' or '.join(cls.condition_kinds)} one" if cls.condition_kinds else "none"
    raise DataError(
        f"{cls.name} cannot be conditioned on a {kind} condition (it takes {takes}); models "
        f"that can: {', '.join(able)}"
    )


def _check_same_model(
    out: str | Path, model: GenerativeModel, name: str, hparams: dict[str, Any]
) -> None:
    """Refuse to resume ``out`` as another model or with other hyper-parameters, naming
    each difference (the saved model would silently be trained instead)."""
    saved = {"model": model.name, **model.config}
    differences = setting_differences(saved, {"model": name, **hparams})
    if differences:
        raise ResumeMismatchError(
            f"cannot resume {out} as asked ({'; '.join(differences)}): resume with the run's "
            "own model and hyper-parameters (--set), or start a new run folder"
        )


def evaluate(
    run: str | Path | GenerativeModel,
    dataset: str | None = None,
    n: int | None = None,
    seed: int | None = None,
    dequantization_draws: int = 1,
    disentanglement: bool = True,
) -> dict[str, Any]:
    """Metrics of a trained model on the test split: NLL (nats), bits, KL gap, entropy, each
    labelled for what it is.

    On data with known generative factors (``sprites``, the original dSprites file) a model
    with an encoder (the VAE family: ``encode`` gives the posterior means) also gets
    ``disentanglement``: the beta-VAE metric (Higgins et al. 2017) and the mutual information
    gap (Chen et al. 2018), see ``genzoo.metrics.disentanglement.sprites_disentanglement``
    (``disentanglement=False`` skips them).

    ``measure`` names the model's ``log_prob`` (exact, a ``-ELBO`` bound, an IWAE/AIS/ODE
    estimate); ``nll_kind`` and ``nll_label`` name the reported NLL, which is an upper bound on
    the discrete NLL when a continuous model meets discrete data through uniform dequantisation
    with ``dequantization_draws`` importance-weighted draws (Theis et al. 2016; Ho et al. 2019,
    see ``genzoo.metrics.negative_log_likelihood``). A model that scores only some positions of
    an example (the sentence VAE skips ``<pad>``) gets ``bits_per_token`` instead of
    ``bits_per_dim``. A model with an unnormalised ``log_prob`` (``-E(x)``) gets no ``nll``,
    bits, ``gap_to_entropy`` or ``kl_gap``, only a ``note``: any such number would move with a
    constant shift of the energy. ``seed`` picks the test split; by default a run folder's
    own (its ``run.json``), so user files split by another seed never test on training rows.

    A conditional model is scored given each test example's condition (the dataset's, named
    in ``condition``): the conditional NLL ``-log p(x | c)``; with a class condition also
    ``bayes_accuracy``, the test accuracy of Bayes' rule (the generative classifier); on a
    dataset whose ``P(x | c)`` is known, the exact ``conditional_kl`` and the conditional
    entropy. The marginal true entropy and KL gap of the toys do not apply to it.
    """
    model = run if isinstance(run, GenerativeModel) else load_model(run)
    if dataset is None:
        if isinstance(run, GenerativeModel):
            raise ValueError("name the dataset to evaluate a model object on")
        run_info = read_json(Path(run) / RUN_INFO_FILE)
        dataset = run_info["dataset"]
        if seed is None:  # the run's own split: another seed would test on training rows
            seed = int(run_info.get("seed", 0))
    info = datasets.dataset_info(dataset)  # shipped or a user's file: its levels count
    if n is None and datasets.is_streamed(dataset):  # data larger than memory: a sample of it
        n = STREAMED_TEST_EXAMPLES
    if model.condition_kind is not None:
        return _evaluate_conditional(model, dataset, info, n, seed or 0, dequantization_draws)
    x = datasets.load_dataset(dataset, split="test", n=n, seed=seed or 0)
    result: dict[str, Any] = {
        "model": model.name,
        "dataset": dataset,
        "density": model.density,
        "measure": density_label(model),
        "n_test": int(x.shape[0]),
    }
    if datasets.has_factors(dataset):  # 64x64 sprites: genzoo's own classifier, not FID
        from genzoo.metrics.sprites_classifier import sprites_sample_quality

        result.update(sprites_sample_quality(model, x, seed=seed or 0))
    if model.density == "none":
        return result
    if model.density == "unnormalized":
        result["note"] = UNNORMALIZED_NOTE
        return result
    result.update(
        negative_log_likelihood(
            model, x, levels=info.levels, n_dequantizations=dequantization_draws
        )
    )
    if info.has_true_density:
        truth = datasets.true_log_prob(dataset, x)
        entropy = datasets.true_entropy(dataset)
        result["true_entropy"] = entropy
        result["gap_to_entropy"] = result["nll"] - entropy
        result["kl_gap"] = kl_gap(model, x, truth)
    if disentanglement and datasets.has_factors(dataset) and _has_encoder(model):
        from genzoo.metrics.disentanglement import sprites_disentanglement

        result["disentanglement"] = sprites_disentanglement(model, dataset, seed=seed or 0)
    if not math.isfinite(result["nll"]):
        result["warning"] = "the model gives zero density to some test examples"
    return result


#: Test examples ``evaluate`` scores by default on data streamed from disk (``sprites``, large
#: ``.npy`` files): an IWAE estimate over all of them would take hours on a CPU.
STREAMED_TEST_EXAMPLES = 1000


def _has_encoder(model: GenerativeModel) -> bool:
    """A model with ``encode`` to a latent vector of at least 2 numbers (the VAE family)."""
    latent = getattr(model, "latent_dim", 0)
    return callable(getattr(model, "encode", None)) and isinstance(latent, int) and latent >= 2


def _evaluate_conditional(
    model: GenerativeModel,
    dataset: str,
    info: datasets.DatasetInfo,
    n: int | None,
    seed: int,
    draws: int,
) -> dict[str, Any]:
    """``evaluate`` of a conditional model: given the test split's conditions."""
    wanted = datasets.condition_info(dataset)
    expected = {
        "n_classes": model.n_classes,
        "condition_dim": model.condition_dim,
        "condition_len": getattr(model, "condition_len", 0),  # language models of P(y | x)
    }
    if any(expected[k] != v for k, v in wanted.hyperparameters().items()):
        raise DataError(
            f"{model.name} is conditional on {model.condition_kind} conditions "
            f"({expected}), but {dataset} carries {wanted.hyperparameters()}: evaluate it "
            "on data with the condition it was trained on"
        )
    x, c = datasets.load_dataset(dataset, split="test", n=n, seed=seed, condition=True)
    result: dict[str, Any] = {
        "model": model.name,
        "dataset": dataset,
        "condition": wanted.name,
        "density": model.density,
        "measure": density_label(model),
        "n_test": int(x.shape[0]),
    }
    if datasets.has_factors(dataset):  # the conditions are the five factor values
        from genzoo.metrics.sprites_classifier import sprites_sample_quality

        result.update(sprites_sample_quality(model, x, c, seed=seed))
    if model.density in ("none", "unnormalized"):
        if model.density == "unnormalized":
            result["note"] = UNNORMALIZED_NOTE
        return result
    result.update(
        negative_log_likelihood(model, x, levels=info.levels, n_dequantizations=draws, condition=c)
    )
    if model.condition_kind == "discrete":
        result["bayes_accuracy"] = bayes_accuracy(model, x, c, info.levels)
        result["bayes_accuracy_chance"] = float(torch.bincount(c).max() / len(c))
    if wanted.has_true_conditional:
        truth = datasets.true_conditional_log_prob(dataset, x, c)
        result["true_conditional_entropy"] = float(-truth.double().mean())
        result["kl_gap"] = kl_gap(model, x, truth, condition=c)
        if info.shape == (1,) and info.levels is not None:  # one discrete value: sum over it
            probs = datasets.true_conditional_probs(dataset, c)
            result["conditional_kl"] = conditional_kl(model, c, probs)
    if not math.isfinite(result["nll"]):
        result["warning"] = "the model gives zero density to some test examples"
    return result


def parse_condition(text: str) -> int | list[float]:
    """A condition written on the command line: ``"3"`` (a class) or ``"0.5,-1,2"`` (a
    vector of numbers)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise DataError(
            f"cannot read the condition {text!r}: give a class (3) or numbers separated by "
            "commas (0.5,-1,2)"
        ) from None


def token_condition(run: str | Path, text_input: str, length: int) -> Tensor:
    """An input written on the command line (``--condition abc``) as the ``(length,)`` token
    ids a language model of ``P(output | input)`` takes: encoded with the tokenizer of the
    run's dataset, then padded with ``<pad>`` (a longer input is a one-line error)."""
    try:
        tokenizer = text.tokenizer_for(Path(run))
    except DataError as err:
        raise DataError(f"cannot encode the input {text_input!r}: {err}") from None
    ids = tokenizer.encode(text_input)
    if text.UNK in ids:
        raise DataError(
            f"the input {text_input!r} has tokens outside the run's vocabulary "
            f"({tokenizer.vocab_size} ids); write it with the dataset's symbols"
        )
    if len(ids) > length:
        raise DataError(f"the input {text_input!r} is {len(ids)} tokens; the model reads "
                        f"inputs of at most {length}")  # fmt: skip
    return torch.tensor(ids + [text.PAD] * (length - len(ids)), dtype=torch.long)


def sample(
    run: str | Path,
    n: int,
    seed: int = 0,
    condition: Any = None,
    guidance: float | None = None,
    sampler: str | None = None,
    steps: int | None = None,
    eta: float | None = None,
    order: int | None = None,
) -> Tensor:
    """Draw ``n`` seeded samples from the model saved in ``run`` (given ``condition``, for a
    conditional model: a class, or a vector of numbers, for every sample; for a language model
    of ``P(output | input)``, the input as text, e.g. ``"abc"``, or its token ids; a string
    of a class or numbers, as written on the command line, is read). ``guidance``: the
    classifier-free guidance scale of a class-conditional score model (``ddpm``,
    ``score-sde``, ``ncsn``; 0 unconditional, 1 conditional, > 1 guided; Ho & Salimans'
    ``w`` is this ``w - 1``); None keeps the run's own. ``sampler``, ``steps``, ``eta``,
    ``order``: a score model's sampler for this draw (``ddim``, ``dpm-solver``...; see its
    ``sample``); None keeps the run's own."""
    model = load_model(run)
    if isinstance(condition, str):
        if model.condition_kind == "tokens":
            condition = token_condition(run, condition, model.condition_len)
        else:
            condition = parse_condition(condition)
    elif condition is None and model.condition_kind == "tokens":
        raise DataError(f"{run} holds a model of P(output | input): give the input, "
                        "sample(..., condition='abc') or --condition abc")  # fmt: skip
    if model.condition_kind == "continuous" and isinstance(condition, (int, float)):
        condition = [float(condition)]
    options = {}
    if guidance is not None:
        if "guidance" not in inspect.signature(model.sample).parameters:
            raise DataError(f"{model.name} takes no guidance: --guidance is the classifier-free "
                            "guidance of score models (ddpm, score-sde, ncsn) trained with "
                            "--condition")  # fmt: skip
        options["guidance"] = guidance
    chosen = {"sampler": sampler, "steps": steps, "eta": eta, "order": order}
    for key, value in chosen.items():
        if value is None:
            continue
        if key not in inspect.signature(model.sample).parameters:
            raise DataError(f"{model.name} takes no --{key}: --sampler, --steps, --eta and "
                            "--order choose the sampler of score models (ncsn, ddpm, "
                            "score-sde)")  # fmt: skip
        options[key] = value
    generator = torch.Generator(device=model.device).manual_seed(seed)
    with torch.no_grad():
        return model.sample(n, generator=generator, c=condition, **options).cpu()


def generate_text(
    run: str | Path,
    n: int = 5,
    prompt: str | None = None,
    seed: int = 0,
    **sampling: Any,
) -> list[str]:
    """Decoded samples of a language model trained on a text dataset, optionally continuing
    ``prompt``; ``sampling`` takes ``temperature``, ``top_k``, ``top_p`` and ``length``.

    The tokenizer comes from the run folder (``genzoo.data.text.tokenizer_for(run)``): for a
    text file, the vocabulary recorded at training, so the file need not exist any more.
    """
    from genzoo.models.autoregressive.lm import SequenceLM

    model = load_model(run)
    read_json(Path(run) / RUN_INFO_FILE)  # a clear error for a folder that is no run
    if not isinstance(model, SequenceLM):
        raise ValueError(
            f"{run} holds a {model.name}, not a language model (lstm-lm, transformer-lm): "
            "draw its samples with genzoo sample RUN -n N and decode them with "
            "genzoo.data.text.tokenizer_for(RUN)"
        )
    try:
        tokenizer = text.tokenizer_for(Path(run))
    except DataError as err:
        raise ValueError(f"{run} is not a language model trained on a text dataset") from err
    generator = torch.Generator(device=model.device).manual_seed(seed)
    # no <bos>: the model starts every sequence from its own start symbol, and its training
    # examples (windows of text, or lines) hold no <bos>
    ids = tokenizer.encode(prompt or "")
    prompts = torch.tensor([ids] * n, dtype=torch.long, device=model.device)
    with torch.no_grad():
        out = model.generate(prompts, generator=generator, **sampling)
    return tokenizer.decode_batch(out.cpu())
