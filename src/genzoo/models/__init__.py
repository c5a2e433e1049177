"""Model families; importing this package registers every model."""

from genzoo.models import (  # noqa: F401
    autoregressive,
    energy,
    flows,
    gans,
    mixtures,
    score,
    vae,
)
