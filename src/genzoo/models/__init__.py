"""Model families; importing this package registers every model."""

from genzoo.models import (  # noqa: F401
    autoregressive,
    deep_gmm,
    energy,
    flows,
    gans,
    mixtures,
    score,
    vae,
)
