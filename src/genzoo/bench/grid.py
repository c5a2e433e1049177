"""What the benchmark trains: per-model budgets and the default datasets.

A model missing from the table gets ``DEFAULT_BUDGET``; a new family adds its row here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Budget:
    """Trainer settings and hyper-parameters of one model in the benchmark."""

    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    hparams: dict[str, Any] = field(default_factory=dict)

    def scaled(self, quick: bool) -> Budget:
        """A quarter of the steps (at least 50) in quick mode."""
        if not quick:
            return self
        return Budget(max(50, self.steps // 4), self.batch_size, self.lr, self.hparams)


DEFAULT_BUDGET = Budget()
BUDGETS: dict[str, Budget] = {
    "gmm": Budget(steps=200, hparams={"n_components": 10}),
    "realnvp": Budget(steps=6000, batch_size=256, lr=1e-3),
}
DEFAULT_DATASETS = ("moons", "8gaussians", "digits")


def budget_for(model: str, quick: bool) -> Budget:
    """The budget of ``model``, quartered in quick mode."""
    return BUDGETS.get(model, DEFAULT_BUDGET).scaled(quick)
