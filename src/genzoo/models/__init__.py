"""Model families; importing this package registers every model."""

from genzoo.models import flows, mixtures  # noqa: F401
