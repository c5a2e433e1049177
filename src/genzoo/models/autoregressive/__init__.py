"""Discrete and autoregressive models: exact likelihood by a chain of conditionals.

``categorical`` (the baseline), ``lstm-lm`` and ``transformer-lm`` for token sequences, ``made``
and ``pixelcnn`` for discrete images; all fitted by cross-entropy, all with ``density="exact"``.
"""

from genzoo.models.autoregressive.categorical import Categorical, ConditionalCategorical
from genzoo.models.autoregressive.common import (
    DiscreteModel,
    bits_per_token,
    filter_logits,
    perplexity,
    sample_logits,
)
from genzoo.models.autoregressive.lm import LSTMLM, SequenceLM
from genzoo.models.autoregressive.made import MADE
from genzoo.models.autoregressive.pixelcnn import MaskedConv2d, PixelCNN
from genzoo.models.autoregressive.transformer import TransformerLM

__all__ = [
    "LSTMLM",
    "MADE",
    "Categorical",
    "ConditionalCategorical",
    "DiscreteModel",
    "MaskedConv2d",
    "PixelCNN",
    "SequenceLM",
    "TransformerLM",
    "bits_per_token",
    "filter_logits",
    "perplexity",
    "sample_logits",
]
