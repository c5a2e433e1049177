"""Training: one ``Trainer`` for every family, and its checkpoints."""

from genzoo.train.trainer import Trainer

__all__ = ["Trainer"]
