"""Shared fixtures: small seeded data so the suite stays fast on two cores."""

from __future__ import annotations

import pytest
import torch

import genzoo


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def moons() -> torch.Tensor:
    return genzoo.load_dataset("moons", split="train", n=2000, seed=0)


@pytest.fixture(scope="session")
def moons_test() -> torch.Tensor:
    return genzoo.load_dataset("moons", split="test", n=2000, seed=0)
