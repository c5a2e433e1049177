"""Metrics: likelihoods, sample quality, mode coverage, speed."""

from genzoo.metrics.likelihood import DENSITY_LABELS, kl_gap, negative_log_likelihood

__all__ = ["DENSITY_LABELS", "kl_gap", "negative_log_likelihood"]
