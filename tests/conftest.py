"""Shared fixtures: small seeded data so the suite stays fast on two cores."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest
import torch

import genzoo

# The tests train tiny networks, for which one thread is fastest and immune to a busy machine.
torch.set_num_threads(1)

# What genzoo computes once (the digits classifier, the rendered sprites) goes to a cache folder
# that starts empty, as on a new user's machine, and never into the user's own ~/.cache. Set
# before any test runs, so the CLI subprocesses inherit it.
if "GENZOO_TEST_KEEP_CACHE" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="genzoo-test-cache-")
    os.environ["GENZOO_CACHE"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def moons() -> torch.Tensor:
    return genzoo.load_dataset("moons", split="train", n=2000, seed=0)


@pytest.fixture(scope="session")
def moons_test() -> torch.Tensor:
    return genzoo.load_dataset("moons", split="test", n=2000, seed=0)
