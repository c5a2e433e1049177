"""Exceptions of genzoo and the helper that turns an unknown name into a suggestion."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GenzooError(Exception):
    """Base class of every error genzoo raises on purpose."""


class DensityUnavailable(GenzooError, NotImplementedError):
    """The model defines no density of the requested kind (a GAN, for instance)."""


class UnknownNameError(GenzooError, KeyError):
    """A model, dataset or hyper-parameter name that does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DataError(GenzooError, ValueError):
    """Input data that cannot be used: NaN/inf, wrong shape, empty, non-numeric."""


class CheckpointError(GenzooError, ValueError):
    """A checkpoint that is corrupt, truncated, foreign or from another model."""


class TrainingDiverged(GenzooError, RuntimeError):
    """The loss became NaN or infinite; the message names the step and the term."""


class RunExistsError(GenzooError, FileExistsError):
    """The output folder already holds a run and neither resume nor force was asked."""


class RunLockedError(GenzooError, RuntimeError):
    """Another process is writing to the run (or benchmark) folder, or it cannot be written."""


class ResumeMismatchError(GenzooError, ValueError):
    """``resume`` was asked with a model, data or settings other than the run's own."""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> UnknownNameError:
    """An error for an unknown ``name`` of ``kind`` listing ``known`` and the closest match."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(known)}.")
