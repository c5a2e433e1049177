"""Shared fixtures: small seeded data so the suite stays fast on two cores."""

from __future__ import annotations

import pytest
import torch

import genzoo

# The tests train tiny networks, for which one thread is fastest and immune to a busy machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def moons() -> torch.Tensor:
    return genzoo.load_dataset("moons", split="train", n=2000, seed=0)


@pytest.fixture(scope="session")
def moons_test() -> torch.Tensor:
    return genzoo.load_dataset("moons", split="test", n=2000, seed=0)
