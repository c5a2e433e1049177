"""The sprites factor classifier, its Fréchet distance and factor accuracy (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genzoo.errors import DataError
from genzoo.metrics import sprites_classifier as sc
from genzoo.metrics.sprites_classifier import (
    FACTOR_SIZES,
    RECIPE,
    frechet_sprites_distance,
    held_out_accuracy,
    sprites_cache_path,
    sprites_classifier,
    sprites_factor_accuracy,
)

#: A reduced recipe (3,000 images, 2 epochs: about 3 s) so that the test trains quickly.
SMALL = dict(RECIPE, n_train=3000, epochs=2)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sprites-classifier")
    sprites_classifier(folder, SMALL)
    return folder


@pytest.fixture(scope="module")
def real():
    """1,000 test-split and 1,000 (other) train-split sprites with their factor classes."""
    test, classes = sc._render(sc._split_rows("test", 1000))
    train, _ = sc._render(sc._split_rows("train", 5000)[-1000:])
    return test, classes, train


def test_cached_under_recipe_hash_and_deterministic(cache):
    path = sprites_cache_path(cache, SMALL)
    assert path.is_file() and path != sprites_cache_path(cache, RECIPE)
    first = sprites_classifier(cache, SMALL)
    assert not any(p.requires_grad for p in first.parameters()) and not first.training
    path.write_bytes(b"not safetensors")  # corrupt: retrained (deterministically) and replaced
    second = sprites_classifier(cache, SMALL)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert path.stat().st_size > 1000


def test_held_out_accuracy_beats_chance_per_factor(cache):
    acc = held_out_accuracy(500, cache, SMALL)
    exact, near = acc["exact"], acc["within_one"]
    # chance (exact): shape 1/3, scale 1/6, posX/posY 1/32; orientation within one step
    # modulo the symmetry: about 0.17 on average over the shapes
    assert exact["shape"] > 0.6
    assert exact["scale"] > 0.35 and near["scale"] > 0.9
    assert near["orientation"] > 0.35
    assert exact["posX"] > 0.6 and exact["posY"] > 0.6
    assert near["posX"] > 0.95 and near["posY"] > 0.95


def test_frechet_small_for_real_large_for_noise_and_shift(cache, real):
    test, _, train = real
    same = frechet_sprites_distance(train, test, cache, SMALL)
    noise = torch.bernoulli(
        torch.full_like(test, float(test.mean())), generator=torch.Generator().manual_seed(0)
    )
    shifted = torch.roll(test, 8, dims=3)
    assert frechet_sprites_distance(noise, test, cache, SMALL) > 30 * same
    assert frechet_sprites_distance(shifted, test, cache, SMALL) > 2 * same
    assert frechet_sprites_distance(
        test.reshape(len(test), -1), test, cache, SMALL
    ) == pytest.approx(0, abs=1e-6)


def test_factor_accuracy_matches_asked_factors(cache, real):
    test, classes, _ = real
    good = sprites_factor_accuracy(test, classes, cache_dir=cache, recipe=SMALL)
    assert set(good) == {"shape", "scale", "orientation", "posX", "posY", "all"}
    wrong = classes[np.random.default_rng(0).permutation(len(classes))]
    bad = sprites_factor_accuracy(test, wrong, cache_dir=cache, recipe=SMALL)
    for name in ("shape", "scale", "posX", "posY"):
        assert good[name] > bad[name] + 0.3, name
    assert bad["all"] < 0.05 < good["all"]
    # float factor values (the dataset's condition) give the same as their classes
    from genzoo.data.sprites import FULL_GRID

    values = FULL_GRID.values(FULL_GRID.index(classes))
    assert sprites_factor_accuracy(test, values, cache_dir=cache, recipe=SMALL) == good


def test_orientation_compared_modulo_symmetry():
    asked = np.array([[0, 0, 0, 5, 5], [1, 0, 3, 5, 5], [2, 0, 39, 5, 5]])
    pred = np.array([[0, 0, 0, 6, 4], [1, 1, 2, 5, 5], [2, 0, 0, 5, 5]])
    assert sc._matches(
        pred, asked[[0, 1, 2]] + [[0, 0, 10, 0, 0], [0, 0, 20, 0, 0], [0] * 5], 1
    ).all()
    assert not sc._matches(pred, asked, 0)[:, 3].all()


def test_bad_input_is_a_clear_error(cache):
    with pytest.raises(DataError, match="64x64"):
        frechet_sprites_distance(torch.zeros(10, 1, 8, 8), torch.zeros(10, 1, 8, 8), cache, SMALL)
    with pytest.raises(DataError, match="finite"):
        frechet_sprites_distance(
            torch.full((4, 4096), float("nan")), torch.zeros(4, 4096), cache, SMALL
        )
    with pytest.raises(DataError, match="one each"):
        sprites_factor_accuracy(
            torch.zeros(3, 4096), np.zeros((2, 5), dtype=np.int64), cache_dir=cache, recipe=SMALL
        )
    with pytest.raises(DataError, match="0..size-1"):
        sprites_factor_accuracy(
            torch.zeros(1, 4096), np.array([[3, 0, 0, 0, 0]]), cache_dir=cache, recipe=SMALL
        )
    assert len(FACTOR_SIZES) == 5


def test_sample_quality_of_an_oracle_and_a_broken_model(cache, real):
    """``sprites_sample_quality`` (what ``genzoo eval`` reports): a conditional "model" that
    renders exactly the factors asked for scores high factor accuracy; one that ignores them
    scores low."""
    from genzoo.data.sprites import FULL_GRID

    test, classes, train = real
    values = torch.as_tensor(FULL_GRID.values(FULL_GRID.index(classes)))

    class Oracle:
        data_kind = "discrete"  # samples are the binary levels themselves

        def sample(self, n, generator=None, c=None):
            return sc._render(FULL_GRID.index(sc._factor_classes(c)))[0]

    class Ignores:
        data_kind = "discrete"

        def sample(self, n, generator=None, c=None):
            return train[:n]

    small = {"cache_dir": cache, "recipe": SMALL}
    good = sc.sprites_sample_quality(Oracle(), test, values, n=500, **small)
    bad = sc.sprites_sample_quality(Ignores(), test, values, n=500, **small)

    class Dequantized:  # a continuous model's (x + u) / 2: scored on its levels x
        data_kind = "continuous"

        def sample(self, n, generator=None, c=None):
            return (train[:n].float() + 0.9 * torch.rand(train[:n].shape, generator=generator)) / 2

    levels = sc.sprites_sample_quality(Dequantized(), test, values, n=500, **small)
    assert good["frechet_sprites"] < 1e-6 < bad["frechet_sprites"]
    assert levels["frechet_sprites"] == pytest.approx(bad["frechet_sprites"], rel=1e-6)
    assert good["factor_accuracy"]["posX"] > 0.95 > 0.2 > bad["factor_accuracy"]["posX"]
    assert good["factor_accuracy"]["all"] > bad["factor_accuracy"]["all"] + 0.2
