"""genzoo: every type of generative model, one API, measured side by side."""

from genzoo.data import list_datasets, load_dataset
from genzoo.errors import (
    CheckpointError,
    DataError,
    DensityUnavailable,
    GenzooError,
    ResumeMismatchError,
    RunExistsError,
    RunLockedError,
    TrainingDiverged,
    UnknownNameError,
)
from genzoo.estimator import Estimator
from genzoo.io import load_model as load
from genzoo.registry import create, list_models, register_model
from genzoo.target_fitting import evaluate_target, fit_target
from genzoo.train import Trainer

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DataError",
    "DensityUnavailable",
    "Estimator",
    "GenzooError",
    "ResumeMismatchError",
    "RunExistsError",
    "RunLockedError",
    "Trainer",
    "TrainingDiverged",
    "UnknownNameError",
    "create",
    "evaluate_target",
    "fit_target",
    "list_datasets",
    "list_models",
    "load",
    "load_dataset",
    "register_model",
]
