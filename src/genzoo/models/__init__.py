"""Model families; importing this package registers every model."""

from genzoo.models import autoregressive, flows, gans, mixtures, score  # noqa: F401
