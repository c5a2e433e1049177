"""The Trainer's ``--ema``: an exponential moving average of the model's weights, saved beside
the raw weights and used for sampling and evaluation.

It is :class:`genzoo.models.ema.EMA`, the one average genzoo keeps (score models' ``ema`` and
GANs' ``ema_decay`` use it too); it lives under ``models/`` because models do not import the
trainer. The maths, the warm-up and the checkpoint's ``ema/<parameter name>`` tensors are
described there.
"""

from genzoo.models.ema import EMA

__all__ = ["EMA"]
