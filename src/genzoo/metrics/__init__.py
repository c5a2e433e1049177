"""Metrics: likelihoods, sample quality, mode coverage, disentanglement, speed."""

from genzoo.metrics.disentanglement import beta_vae_metric, mutual_information_gap
from genzoo.metrics.frechet import frechet_digits_distance, frechet_distance
from genzoo.metrics.likelihood import (
    DENSITY_LABELS,
    UNNORMALIZED_NOTE,
    bayes_accuracy,
    conditional_kl,
    density_label,
    dequantized_log_prob,
    kl_gap,
    negative_log_likelihood,
)
from genzoo.metrics.modes import mode_centres, mode_coverage
from genzoo.metrics.samples import (
    classifier_two_sample_accuracy,
    energy_distance,
    median_bandwidth,
    mmd_rbf,
    precision_recall,
    sliced_wasserstein,
)
from genzoo.metrics.sprites_classifier import (
    frechet_sprites_distance,
    sprites_factor_accuracy,
)

__all__ = [
    "DENSITY_LABELS",
    "UNNORMALIZED_NOTE",
    "bayes_accuracy",
    "beta_vae_metric",
    "classifier_two_sample_accuracy",
    "conditional_kl",
    "density_label",
    "dequantized_log_prob",
    "energy_distance",
    "frechet_digits_distance",
    "frechet_distance",
    "frechet_sprites_distance",
    "kl_gap",
    "median_bandwidth",
    "mmd_rbf",
    "mode_centres",
    "mode_coverage",
    "mutual_information_gap",
    "negative_log_likelihood",
    "precision_recall",
    "sliced_wasserstein",
    "sprites_factor_accuracy",
]
