"""Datasets, all offline: 2-D toys with true densities, digits, MNIST, tables, text, user files.

``load_dataset(name_or_path, split, n, seed)`` returns a float tensor (torch's default dtype),
except text datasets: int64 token ids.
Splits are ``"train"``, ``"val"`` and ``"test"`` everywhere. All randomness goes through a
``numpy.random.Generator`` seeded from ``seed``, the dataset and (for the toys) the split, so the
same arguments always give the same tensor and no global random state is touched.

- Toys (:mod:`genzoo.data.toy2d`): every split is a fresh, independent draw of ``n`` points
  (default 10,000), with the true log density in ``true_log_prob`` and the entropy in
  ``true_entropy``.
- ``digits`` / ``digits-binary`` (:mod:`genzoo.data.images`): fixed 1000/350/447 split.
- ``mnist``, ``fashion-mnist`` and their ``-binary`` variants (:mod:`genzoo.data.idx`): read
  from the user's local IDX files in ``$GENZOO_DATA`` or ``~/.genzoo/data`` (never downloaded);
  fixed 50k/10k/10k split, grey levels 0..255 (levels 256) or {0, 1} thresholded at 128.
- ``wine``, ``iris``, ``breast-cancer`` (:mod:`genzoo.data.tabular`): seeded 70/10/20 split,
  standardised with the training split's statistics.
- Text (:mod:`genzoo.data.text`): ``stdlib-chars``, ``stdlib-words``, ``stdlib-sentences`` and
  the synthetic ``grammar``, as int64 token ids ``(n, seq_len)``; ``text.tokenizer_for(name)``
  decodes them. ``grammar`` has an exact ``true_log_prob`` and ``true_entropy``.
- ``sprites`` (:mod:`genzoo.data.sprites`): 64x64 binary sprites re-rendered in the design of
  dSprites (Matthey et al. 2017; not the original file), 737,280 images over five factors,
  rendered once into the cache folder and streamed from it; the condition ``factors`` is the
  five factor values. In memory (``load_dataset``) a split gives its first ``n`` (default
  :data:`SPRITES_IN_MEMORY`) images; :func:`open_dataset` streams a whole split. The original
  ``dsprites_ndarray_*.npz``, given by path, is read the same way.
- A path to a ``.npy``, ``.npz``, ``.csv`` or IDX (``…-ubyte[.gz]``) file
  (:mod:`genzoo.data.files`): seeded 80/10/10. A ``.npy`` larger than
  :func:`genzoo.data.files.stream_threshold` (512 MiB) is read by row, never whole
  (:func:`open_dataset`; ``load_dataset`` reads only the first ``n`` rows of a split, by
  default :data:`SPRITES_IN_MEMORY`).
- A path to a folder of PNG/JPEG images (:func:`genzoo.data.images.read_image_folder`, needs
  ``genzoo[images]``): 8-bit levels (256), resized and centre-cropped to the option
  ``image_size`` (``load_dataset(folder, image_size=32)`` or ``"folder?image_size=32"``);
  seeded 80/10/10.
- A path to a UTF-8 text file, with or without ``.txt`` (:func:`genzoo.data.text.open_text_file`):
  int64 token ids; data options as keywords (``load_dataset(path, tokens="words")``) or in the
  name (``"notes.txt?tokens=words&seq_len=32"``); ``text.tokenizer_for(path)`` decodes them.
  Which files are text is decided by :func:`genzoo.data.files.file_kind`.
- ``sentiment-synthetic`` (:mod:`genzoo.data.synthetic`): labels ``Y`` drawn from a known
  ``P(Y | X)`` given features ``X`` (the condition), for the survey's ``Q(Y | X)``.
- ``synthetic-pairs`` and ``stdlib-pairs`` (:mod:`genzoo.data.pairs`): text outputs, int64
  ids, each given an input of token ids (the condition ``"input"``, kind ``"tokens"``), for
  the language models of ``P(output | input)``; ``synthetic-pairs`` knows it exactly.

Conditions. Many datasets carry a condition ``c`` beside each example, described by
``DatasetInfo.condition`` (a :class:`ConditionInfo`: its name, ``"discrete"`` with
``n_classes`` or ``"continuous"`` with ``condition_dim``): the digit of ``digits``,
``digits-binary`` and MNIST, the class of the tables, the component or arm of the 2-D toys
(drawn by the same draws, so the points do not change), the features of
``sentiment-synthetic``, a ``.npz``'s array ``c`` or a CSV column (the option
``condition_column``). ``load_dataset(..., condition=True)`` returns ``(x, c)``: ``c`` int64
``(n,)`` classes, float ``(n, C)`` vectors or int64 ``(n, M)`` input token ids.

For the fixed-size datasets ``n`` takes the first ``min(n, size of the split)`` examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
import torch

from genzoo.data import (
    domains,
    files,
    idx,
    images,
    pairs,
    sprites,
    synthetic,
    tabular,
    text,
    toy2d,
)
from genzoo.data._common import SPLITS, check_n, check_split
from genzoo.errors import DataError, DensityUnavailable, unknown_name
from genzoo.validation import check_finite, check_shape

__all__ = [
    "SPLITS",
    "ConditionInfo",
    "DatasetInfo",
    "condition_info",
    "dataset_info",
    "dequantize",
    "has_factors",
    "image_folder_spec",
    "is_streamed",
    "is_text_file",
    "is_user_file",
    "list_datasets",
    "load_dataset",
    "open_dataset",
    "true_conditional_log_prob",
    "true_conditional_probs",
    "true_entropy",
    "true_log_prob",
]


@dataclass(frozen=True)
class ConditionInfo:
    """What a dataset carries beside each example, for conditional models.

    ``name`` is what ``--condition`` names (``"label"``, ``"features"``, a CSV column);
    ``kind`` is ``"discrete"`` (a class ``0..size-1``), ``"continuous"`` (a vector of
    ``size`` numbers) or ``"tokens"`` (an input of ``size`` token ids, for the language models
    of ``P(output | input)``); ``has_true_conditional``: the exact ``log P(x | c)`` is known
    (:func:`true_conditional_log_prob`).
    """

    name: str
    kind: str
    size: int
    description: str
    has_true_conditional: bool = False

    @property
    def n_classes(self) -> int:
        """Classes of a discrete condition (0 for a continuous one)."""
        return self.size if self.kind == "discrete" else 0

    @property
    def condition_dim(self) -> int:
        """Numbers of a continuous condition (0 for a discrete one)."""
        return self.size if self.kind == "continuous" else 0

    @property
    def condition_len(self) -> int:
        """Token ids of a ``"tokens"`` condition (0 for the others)."""
        return self.size if self.kind == "tokens" else 0

    def hyperparameters(self) -> dict[str, int]:
        """The config a conditional model takes for it: ``n_classes``, ``condition_dim`` or
        ``condition_len``."""
        key = {"discrete": "n_classes", "tokens": "condition_len"}.get(self.kind, "condition_dim")
        return {key: self.size}


@dataclass(frozen=True)
class DatasetInfo:
    """One row of ``genzoo.list_datasets()``."""

    name: str
    kind: str  # points | image | text | tabular | pair (| array: a user file of other shapes)
    shape: tuple[int, ...]
    levels: int | None  # number of discrete values per scalar (17 for digits), None if continuous
    has_true_density: bool
    description: str
    #: The Gaussian-mixture toys, whose mode centres are known
    #: (``genzoo.metrics.mode_centres``): mode coverage is measured and drawn on them.
    has_known_modes: bool = False
    #: 8x8 digits on 17 grey levels, what genzoo's digits feature classifier was trained on:
    #: the Fréchet digits distance (``genzoo.metrics.frechet``) applies.
    digits_features: bool = False
    #: The condition each example carries (``load_dataset(..., condition=True)``), if any.
    condition: ConditionInfo | None = None


def _label(size: int, what: str) -> ConditionInfo:
    return ConditionInfo("label", "discrete", size, what)


#: The paired text sets (:mod:`genzoo.data.pairs`): output length, input length, description.
PAIRED_TEXT: dict[str, tuple[int, int, str]] = {
    "synthetic-pairs": (
        pairs.PAIR_OUTPUT_LEN,
        pairs.PAIR_INPUT_LEN,
        "outputs given inputs (the condition): a word of 3..5 letters a..f reversed with "
        "probability 0.75, copied otherwise; known P(output | input); fresh draws per split",
    ),
    "stdlib-pairs": (
        pairs.STDLIB_OUTPUT_LEN,
        pairs.STDLIB_INPUT_LEN,
        "Python stdlib module names (characters) given a docstring's first line (the "
        "condition, 48 characters); split 80/10/10",
    ),
}


def _load_pairs(name: str, split: str, n: int | None, seed: int) -> tuple[torch.Tensor, ...]:
    """``(y, x)`` of a paired text set: outputs and inputs, int64 ids, the first ``n``."""
    if name == "synthetic-pairs":
        return pairs.synthetic_pairs(split, n or 2000, seed)
    y, x = pairs.stdlib_pairs(split, seed)
    return y[:n], x[:n]


#: The condition of sprites (and of the original dSprites file): the five factor values.
SPRITES_CONDITION = ConditionInfo(
    "factors",
    "continuous",
    len(sprites.FACTOR_NAMES),
    "the 5 factor values: shape id 0..2, scale 0.5..1, orientation (rad), posX, posY 0..1",
)
#: Images of sprites a split gives in memory when ``n`` is not given (``open_dataset``
#: streams the whole split).
SPRITES_IN_MEMORY = 10_000
#: Data options of a folder of images.
FOLDER_OPTIONS = ("image_size",)


#: Sentiment labels given a short text (:func:`genzoo.data.pairs.sentiment_text`).
SENTIMENT_TEXT = "sentiment-text"


def _build_infos() -> dict[str, DatasetInfo]:
    infos = {
        name: DatasetInfo(
            name,
            "points",
            (2,),
            None,
            True,
            toy2d.TOY_DESCRIPTIONS[name],
            has_known_modes=name in ("8gaussians", "25gaussians"),
            condition=_label(toy2d.TOY_CONDITIONS[name][1], toy2d.TOY_CONDITIONS[name][0])
            if name in toy2d.TOY_CONDITIONS
            else None,
        )  # fmt: skip
        for name in toy2d.TOY_NAMES
    }
    infos["digits"] = DatasetInfo(
        "digits",
        "image",
        (1, 8, 8),
        images.DIGITS_LEVELS,
        False,
        "sklearn 8x8 handwritten digits, 17 grey levels 0..16 (split 1000/350/447)",
        digits_features=True,
        condition=_label(10, "the digit 0..9"),
    )
    infos["digits-binary"] = DatasetInfo(
        "digits-binary",
        "image",
        (1, 8, 8),
        2,
        False,
        "sklearn 8x8 handwritten digits thresholded at 8 to {0, 1} (split 1000/350/447)",
        condition=_label(10, "the digit 0..9"),
    )
    for name in idx.IDX_DATASETS:
        infos[name] = DatasetInfo(
            name,
            "image",
            (1, *idx.IMAGE_SIZE),
            2 if name.endswith("-binary") else idx.IDX_LEVELS,
            False,
            idx.IDX_DESCRIPTIONS[name] + idx.NEEDS_FILES_NOTE,
            condition=_label(10, "the class 0..9 (needs the labels' IDX files too)"),
        )
    tabular_cols = {"wine": 13, "iris": 4, "breast-cancer": 30}
    for name, (_, about) in tabular.TABULAR_SOURCES.items():
        infos[name] = DatasetInfo(
            name,
            "tabular",
            (tabular_cols[name],),
            None,
            False,
            about + "; standardised, split 70/10/20",
            condition=_label(tabular.TABULAR_CLASSES[name][1], tabular.TABULAR_CLASSES[name][0]),
        )
    infos[synthetic.NAME] = DatasetInfo(
        synthetic.NAME,
        "tabular",
        (1,),
        len(synthetic.LABELS),
        False,
        "sentiment labels 0..2 drawn from a known P(Y | X) given 4 features X (the "
        "condition), for Q(Y | X); fresh draws per split",
        condition=ConditionInfo(
            "features",
            "continuous",
            synthetic.N_FEATURES,
            "the 4 features X of an example, X ~ N(0, I)",
            has_true_conditional=True,
        ),
    )
    infos[SENTIMENT_TEXT] = DatasetInfo(
        SENTIMENT_TEXT,
        "tabular",
        (1,),
        len(pairs.SENTIMENT_LABELS),
        False,
        "sentiment labels 0..2 drawn from a known P(Y | X) given a text X of 3..8 words (the "
        "condition), for Q(Y | X) of a text; fresh draws per split",
        condition=ConditionInfo(
            "input",
            "tokens",
            pairs.SENTIMENT_INPUT_LEN,
            f"the input: {pairs.SENTIMENT_INPUT_LEN} word ids (padded) the label is drawn for",
            has_true_conditional=True,
        ),
    )
    for name, spec in text.TEXT_DATASETS.items():
        infos[name] = DatasetInfo(
            name,
            "text",
            (spec.seq_len,),
            text.text_vocab_size(name),
            spec.source == "grammar",
            spec.description,
        )
    for name, (length, m, about) in PAIRED_TEXT.items():  # input -> output (issue 17)
        infos[name] = DatasetInfo(
            name,
            "text",
            (length,),
            text.text_vocab_size(name),
            False,
            about,
            condition=ConditionInfo(
                "input",
                "tokens",
                m,
                f"the input: {m} token ids (padded) the output is generated for",
                has_true_conditional=name == "synthetic-pairs",
            ),
        )
    infos[sprites.NAME] = DatasetInfo(
        sprites.NAME,
        "image",
        (1, sprites.IMAGE_SIZE, sprites.IMAGE_SIZE),
        2,
        False,
        sprites.DESCRIPTION,
        condition=SPRITES_CONDITION,
    )
    for pair in domains.list_domain_pairs():  # unpaired pairs (CycleGAN) of the ones above
        infos[pair.name] = DatasetInfo(
            pair.name, "pair", pair.shape, pair.levels, False, pair.description
        )
    return infos


_INFOS: dict[str, DatasetInfo] = _build_infos()


def list_datasets() -> list[DatasetInfo]:
    """Every shipped dataset (user files are loaded by path and not listed)."""
    return list(_INFOS.values())


def is_user_file(name_or_path: str | Path) -> bool:
    """True when ``name_or_path`` names a user's file (a path, or ``PATH?options`` for text),
    not a shipped dataset; the file need not exist."""
    return files.is_user_file(name_or_path, _INFOS)


def is_text_file(name_or_path: str | Path) -> bool:
    """True when ``name_or_path`` is a user's text file (``DataError`` if it does not exist or
    is neither text nor an array file)."""
    if not is_user_file(name_or_path):
        return False
    path = files.split_options(name_or_path)[0]
    return not path.is_dir() and files.file_kind(path) == "text"


def _user_source(name_or_path: str | Path) -> tuple[str, Path, dict[str, str]]:
    """What a user's path holds: ``"folder"`` (images), ``"dsprites"`` (the original
    dSprites ``.npz``), ``"text"`` or ``"array"``; its path and the options in its name."""
    path, in_name = files.split_options(name_or_path)
    if path.is_dir():
        return "folder", path, in_name
    if sprites.is_dsprites_npz(path):
        return "dsprites", path, in_name
    return files.file_kind(path), path, in_name


def image_folder_spec(folder: str | Path, image_size: int) -> str:
    """The dataset name of a folder of images at ``image_size`` (``--image-size``):
    ``/abs/folder?image_size=N``, what ``run.json`` records so evaluation rebuilds it."""
    path = Path(folder)
    if not path.is_dir():
        raise DataError(f"--image-size applies to a folder of PNG/JPEG images; {folder} is "
                        "not a folder")  # fmt: skip
    return f"{path.resolve()}?image_size={images.check_image_size(image_size)}"


def is_streamed(name_or_path: str | Path) -> bool:
    """True for data read from disk as it is used (:func:`open_dataset` gives a streamed
    ``Dataset``): ``sprites``, the original dSprites file and ``.npy`` files above the
    streaming threshold."""
    if name_or_path == sprites.NAME:
        return True
    if not is_user_file(name_or_path):
        return False
    path = files.split_options(name_or_path)[0]
    return sprites.is_dsprites_npz(path) or files.is_large_npy(path)


def has_factors(name_or_path: str | Path) -> bool:
    """True for data whose generative factors are known (``sprites``, the original dSprites
    ``.npz``): what disentanglement metrics need."""
    if name_or_path == sprites.NAME:
        return True
    return is_user_file(name_or_path) and sprites.is_dsprites_npz(
        files.split_options(name_or_path)[0]
    )


def _folder_options(path: Path, options: dict[str, Any]) -> int | None:
    """The ``image_size`` of a folder's options; other options refused."""
    others = [k for k in options if k not in FOLDER_OPTIONS]
    if others:
        raise DataError(f"{path} is a folder of images; the options {', '.join(others)} do not "
                        f"apply (a folder takes {', '.join(FOLDER_OPTIONS)})")  # fmt: skip
    return images.check_image_size(options.get("image_size"))


def dataset_info(name: str | Path, **options: Any) -> DatasetInfo:
    """The ``DatasetInfo`` of a shipped dataset (unknown names suggest the closest one) or of
    a user's file, read from its content (cached by path, size and modification time).

    For a file, ``name`` is the path as given; ``kind`` is ``"text"`` for a text file,
    ``"image"`` for (n, C, H, W) arrays and IDX images, ``"points"`` for 2-column arrays,
    ``"tabular"`` for other flat vectors (and ``"array"`` for other shapes); ``shape`` is one
    example's; ``has_true_density`` is false. ``levels``: a text file's vocabulary size (with
    the data ``options`` of :func:`genzoo.data.text.open_text_file`, default
    ``tokens="chars"``); for arrays whose values are all integers in ``0..L-1`` with
    ``L = max + 1 <= 256``, ``L`` (at least 2: binary 0/1 data give 2, 8-bit images 256); else
    ``None`` (continuous values). ``condition``: a ``.npz``'s array ``c``, or the CSV column
    named by the option ``condition_column`` (then left out of the examples' shape).
    """
    if not is_user_file(name):
        if options:
            raise DataError(f"{name} is a shipped dataset; the options {', '.join(options)} "
                            "apply to files given by path")  # fmt: skip
        if name not in _INFOS:
            raise unknown_name("dataset", str(name), _INFOS)
        return _INFOS[name]
    source, path, in_name = _user_source(name)
    if source == "folder":
        size = _folder_options(path, {**in_name, **options})
        x = images.read_image_folder(path, size)
        about = (f"folder {path}: {len(x)} images, {x.shape[1]} channel(s) {x.shape[2]}x"
                 f"{x.shape[3]}, levels 0..255; seeded 80/10/10 split")  # fmt: skip
        return DatasetInfo(str(name), "image", x.shape[1:], images.IMAGE_LEVELS, False, about)
    if source == "dsprites":
        about = f"the original dSprites file {path} (Matthey et al. 2017); split 80/10/10"
        shape = (1, sprites.IMAGE_SIZE, sprites.IMAGE_SIZE)
        return DatasetInfo(str(name), "image", shape, 2, False, about, condition=SPRITES_CONDITION)
    if source == "text":
        made = text.open_text_file(name, **options)
        return DatasetInfo(
            str(name), "text", (made.seq_len,), made.tokenizer.vocab_size, False, made.describe()
        )
    column = _array_options(path, {**in_name, **options})
    count, shape, levels, kind, condition = files.array_summary(path, column)
    values = f"integer levels 0..{levels - 1}" if levels else "real values"
    about = f"file {path}: {count} examples of shape {shape}, {values}; seeded 80/10/10 split"
    info = None
    if condition is not None:
        c_kind, size = condition
        c_name = column or files.NPZ_CONDITION
        what = f"classes 0..{size - 1}" if c_kind == "discrete" else f"{size} numbers"
        info = ConditionInfo(c_name, c_kind, size, f"{c_name} of the file: {what} per example")
    return DatasetInfo(str(name), kind, shape, levels, False, about, condition=info)


def _array_options(path: Path, options: dict[str, Any]) -> str | None:
    """The condition column an array file's options name (CSV only); other options refused."""
    others = [k for k in options if k not in files.ARRAY_OPTIONS]
    if others:
        raise DataError(
            f"{path} holds arrays, not text; the options {', '.join(others)} apply to text "
            f"files only (array files take {', '.join(files.ARRAY_OPTIONS)}): remove them"
        )
    column = options.get("condition_column")
    return None if column is None else str(column)


def _to_tensor(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.get_default_dtype())


@overload
def load_dataset(
    name_or_path: str | Path,
    split: str = ...,
    n: int | None = ...,
    seed: int = ...,
    condition: Literal[False] = ...,
    **options: Any,
) -> torch.Tensor: ...


@overload
def load_dataset(
    name_or_path: str | Path,
    split: str = ...,
    n: int | None = ...,
    seed: int = ...,
    *,
    condition: Literal[True],
    **options: Any,
) -> tuple[torch.Tensor, torch.Tensor]: ...


def load_dataset(
    name_or_path: str | Path,
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    condition: bool = False,
    **options: Any,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Examples of a shipped dataset or of the user's file, as a float tensor (text: int64 ids).

    Args:
        name_or_path: a name from ``list_datasets()``, the path of a .npy/.npz/.csv/IDX file,
            or the path of a UTF-8 text file (optionally ``PATH?key=value&...``).
        split: ``"train"``, ``"val"`` or ``"test"``.
        n: toys draw ``n`` points (default 10,000); other datasets keep the first ``n``.
        seed: a non-negative integer; the same arguments always give the same tensor.
        condition: also return each example's condition, ``(x, c)``: int64 ``(n,)`` classes
            or float ``(n, C)`` vectors (``DatasetInfo.condition`` says which); a dataset
            without one is a ``DataError``.
        options: text files: ``tokens``, ``layout``, ``seq_len``, ``max_vocab``,
            ``lowercase`` (see :func:`genzoo.data.text.open_text_file`); CSV files:
            ``condition_column``, the column holding the condition (left out of ``x``).
    """
    check_split(split)
    n = check_n(n)
    if condition:
        return _load_with_condition(name_or_path, split, n, seed, **options)
    if is_user_file(name_or_path):
        source, path, in_name = _user_source(name_or_path)
        if source == "text":
            return text.load_text_file_split(name_or_path, split, n, seed, **options)
        if source == "folder":
            size = _folder_options(path, {**in_name, **options})
            x = files.split_rows(images.read_image_folder(path, size), split, seed, path)
            return _to_tensor(x[:n])
        if source == "dsprites" or files.is_large_npy(path):
            streamed = open_dataset(name_or_path, split, n or SPRITES_IN_MEMORY, seed)
            return _dataset_tensors(streamed)[0]
        column = _array_options(path, {**in_name, **options})
        x = files.load_file_split(path, split, seed, column)
        return _to_tensor(x[:n])
    name = name_or_path
    if name == sprites.NAME:
        dataset_info(name, **options)
        return sprites.open_sprites(split, n or SPRITES_IN_MEMORY, seed).tensors()[0]
    info = dataset_info(name, **options)
    if info.kind == "points":
        return toy2d.load_toy(name, split, n, seed)
    if name in PAIRED_TEXT:
        return _load_pairs(str(name), split, n, seed)[0]
    if info.kind == "text":
        return text.load_text_dataset(name, split, n, seed)
    if info.kind == "pair":
        return domains.load_domain_pair(name, split, n, seed)
    if name == synthetic.NAME:
        return synthetic.load_sentiment(split, n, seed)[0]
    if name == SENTIMENT_TEXT:
        return pairs.sentiment_text(split, n or 10_000, seed)[0]
    if info.kind == "image" and name in idx.IDX_DATASETS:
        x = idx.load_idx_split(name, split)  # uint8: converted after taking the first n
    elif info.kind == "image":
        x = images.load_digits_split(split, binary=name == "digits-binary")
    else:
        x = tabular.load_table_split(name, split, seed)
    return _to_tensor(x[:n])


def _load_with_condition(
    name_or_path: str | Path, split: str, n: int | None, seed: int, **options: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, c)`` of a dataset that carries a condition (see ``load_dataset``)."""
    info = dataset_info(name_or_path, **options)
    if info.condition is None:
        raise DataError(f"{name_or_path} carries no condition; {_with_conditions()}")
    if name_or_path == sprites.NAME or (
        is_user_file(name_or_path) and _user_source(name_or_path)[0] == "dsprites"
    ):
        streamed = open_dataset(name_or_path, split, n or SPRITES_IN_MEMORY, seed, condition=True)
        return _dataset_tensors(streamed)
    x = load_dataset(name_or_path, split, n, seed, **options)
    if is_user_file(name_or_path):
        path, in_name = files.split_options(name_or_path)
        column = _array_options(path, {**in_name, **options})
        c = files.load_condition_split(path, split, seed, column)
        assert c is not None
        labels = torch.as_tensor(c[:n])
    elif info.kind == "points":
        labels = toy2d.load_toy_labelled(str(name_or_path), split, n, seed)[1]
    elif name_or_path == synthetic.NAME:
        labels = synthetic.load_sentiment(split, n, seed)[1]
    elif name_or_path == SENTIMENT_TEXT:
        labels = pairs.sentiment_text(split, n or 10_000, seed)[1]
    elif name_or_path in PAIRED_TEXT:
        labels = _load_pairs(str(name_or_path), split, n, seed)[1]
    elif name_or_path in idx.IDX_DATASETS:
        labels = torch.as_tensor(idx.load_labels(str(name_or_path), split)[:n].astype(np.int64))
    elif info.kind == "image":
        labels = torch.as_tensor(images.load_digits_labels(split)[:n])
    else:
        labels = torch.as_tensor(tabular.load_table_labels(str(name_or_path), split, seed)[:n])
    if info.condition.kind in ("discrete", "tokens"):  # classes, or input token ids
        return x, labels.long()
    c = labels.to(torch.get_default_dtype())
    return x, c.reshape(len(c), -1)


def _dataset_tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """All the examples of a streamed dataset in memory: ``(x, c)`` (``c`` None without)."""
    if isinstance(dataset, sprites.SpritesDataset):
        x, c = dataset.tensors()
        return x, (c if dataset.condition else None)
    return dataset.rows(np.arange(len(dataset))), None


class TensorExamples(torch.utils.data.Dataset):
    """Map-style dataset over in-memory examples: ``ds[i]`` is ``x[i]``, or ``(x[i], c[i])``
    when conditions are given (what :func:`open_dataset` gives for data that fit in memory)."""

    def __init__(self, x: torch.Tensor, c: torch.Tensor | None = None) -> None:
        self.x, self.c = x, c

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Any:
        return self.x[i] if self.c is None else (self.x[i], self.c[i])


def open_dataset(
    name_or_path: str | Path,
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    condition: bool = False,
    **options: Any,
) -> torch.utils.data.Dataset:
    """The examples of ``load_dataset`` as a ``torch.utils.data.Dataset`` (map-style:
    ``len(ds)``, ``ds[i]`` a float tensor, or ``(x, c)`` with ``condition``), streamed from
    disk where the data are larger than memory: ``sprites`` and the original dSprites file
    (:class:`genzoo.data.sprites.SpritesDataset`, the whole split unless ``n``) and ``.npy``
    files above the streaming threshold (:class:`genzoo.data.files.NpyRows`). Anything else
    is loaded by ``load_dataset`` and wrapped (:class:`TensorExamples`).
    """
    check_split(split)
    n = check_n(n)
    if name_or_path == sprites.NAME:
        dataset_info(name_or_path, **options)
        return sprites.open_sprites(split, n, seed, condition=condition)
    if is_user_file(name_or_path):
        source, path, _ = _user_source(name_or_path)
        if source == "dsprites":
            return sprites.open_dsprites_npz(path, split, n, seed, condition=condition)
        if source == "array" and files.is_large_npy(path):
            if condition:
                raise DataError(f"{path} is a .npy array: it carries no condition; "
                                f"{_with_conditions()}")  # fmt: skip
            return files.open_npy_split(path, split, seed, n)
    if condition:
        x, c = load_dataset(name_or_path, split, n, seed, condition=True, **options)
        return TensorExamples(x, c)
    return TensorExamples(load_dataset(name_or_path, split, n, seed, **options))


def _with_conditions() -> str:
    names = [i.name for i in _INFOS.values() if i.condition is not None]
    return (
        f"datasets with one: {', '.join(names)}; a file carries one as a .npz array "
        f"{files.NPZ_CONDITION!r} beside 'x', or as a CSV column (condition_column=NAME)"
    )


def condition_info(
    name_or_path: str | Path, wanted: str | None = None, **options: Any
) -> ConditionInfo:
    """The condition ``name_or_path`` carries, checked against the name asked for (``wanted``,
    e.g. ``--condition label``); a one-line ``DataError`` when it has none or another."""
    info = dataset_info(name_or_path, **options)
    if info.condition is None:
        raise DataError(f"{name_or_path} carries no condition; {_with_conditions()}")
    if wanted is not None and wanted != info.condition.name:
        raise DataError(
            f"{name_or_path} carries the condition {info.condition.name!r} "
            f"({info.condition.description}), not {wanted!r}: use --condition "
            f"{info.condition.name}"
        )
    return info.condition


def true_conditional_probs(name: str, c: torch.Tensor) -> torch.Tensor:
    """The exact ``P(x = k | c)`` for each value ``k`` of a one-value discrete dataset whose
    condition has it (``ConditionInfo.has_true_conditional``: the ``P(Y | X)`` of
    ``sentiment-synthetic`` and ``sentiment-text``): ``(n, levels)`` float64."""
    info = dataset_info(name)
    if info.condition is None or not info.condition.has_true_conditional:
        known = [n for n, i in _INFOS.items() if i.condition and i.condition.has_true_conditional]
        raise DensityUnavailable(
            f"dataset {name!r} has no known conditional density; known for: {', '.join(known)}"
        )
    if name == SENTIMENT_TEXT:
        return pairs.sentiment_text_probs(c)
    return synthetic.sentiment_probs(c)


def true_conditional_log_prob(name: str, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The exact ``log P(x | c)`` per example in nats (see :func:`true_conditional_probs`;
    ``synthetic-pairs``: :func:`genzoo.data.pairs.synthetic_pairs_log_prob`)."""
    if name == "synthetic-pairs":
        log_p = pairs.synthetic_pairs_log_prob(torch.as_tensor(x).cpu(), torch.as_tensor(c).cpu())
        return log_p.to(torch.get_default_dtype())
    probs = true_conditional_probs(name, c)
    y = torch.as_tensor(x).reshape(len(probs), -1)[:, 0].long().cpu()
    log_p = probs.log().gather(1, y[:, None])[:, 0]
    return log_p.to(torch.get_default_dtype())


def _check_density(name: str) -> DatasetInfo:
    info = dataset_info(name)
    if not info.has_true_density:
        with_density = [i.name for i in _INFOS.values() if i.has_true_density]
        raise DensityUnavailable(
            f"dataset {name!r} has no known true density: it is a finite sample of real data. "
            f"True densities exist for: {', '.join(with_density)}"
        )
    return info


def true_log_prob(name: str, x: torch.Tensor) -> torch.Tensor:
    """Per-example true log density of the toy ``name`` at ``x`` (n, 2), in nats.

    Computed in float64 and returned in ``x``'s floating dtype (``-inf`` outside the support,
    e.g. off the checkerboard's squares).
    """
    info = _check_density(name)
    x = torch.as_tensor(x)
    check_shape(x, info.shape, what=f"points given to true_log_prob({name!r})")
    check_finite(x, what=f"points given to true_log_prob({name!r})")
    if info.kind == "text":
        return text.grammar_log_prob(x).to(dtype=torch.get_default_dtype(), device=x.device)
    out = toy2d.toy_log_prob(name, x)
    dtype = x.dtype if torch.is_floating_point(x) else torch.get_default_dtype()
    return out.to(dtype=dtype, device=x.device)


def true_entropy(name: str) -> float:
    """Entropy of the toy ``name`` in nats (reference values, computed by quadrature); for the
    synthetic ``grammar``, the exact entropy of one sequence."""
    info = _check_density(name)
    if info.kind == "text":
        return text.GRAMMAR.sequence_entropy(info.shape[0])
    return toy2d.TOY_ENTROPY[name]


def dequantize(
    x_levels: torch.Tensor, levels: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Uniform dequantisation: (x + u) / levels with u ~ U[0, 1), values in [0, 1).

    ``x_levels`` holds integer levels 0..levels-1 (e.g. digits, levels=17). A density p on
    [0, 1)^D of the result gives the discrete levels a log probability of at least
    E_u[log p((x + u) / levels)] - D log(levels) (Theis et al. 2016; Ho et al. 2019).
    """
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or levels < 2:
        raise DataError(f"levels must be an integer >= 2, got {levels!r}")
    if x_levels.numel() and (x_levels.min() < 0 or x_levels.max() > levels - 1):
        raise DataError(
            f"dequantize expects integer levels in 0..{levels - 1}, got values in "
            f"[{float(x_levels.min())}, {float(x_levels.max())}]; pass the raw levels"
        )
    dtype = x_levels.dtype if torch.is_floating_point(x_levels) else torch.get_default_dtype()
    device = generator.device if generator is not None else x_levels.device
    u = torch.rand(x_levels.shape, generator=generator, dtype=dtype, device=device)
    return (x_levels.to(dtype) + u.to(x_levels.device)) / levels
