"""Property-based: whatever array a user hands the Estimator (shapes, dtypes, NaN/inf in any
place, extreme magnitudes), a model of each family answers with a clear error or a finite
result, never a crash and never NaN."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import genzoo  # noqa: E402

#: One model of each family that the Estimator can fit on a table, with tiny settings.
FAMILIES = {
    "gmm": {"n_components": 2},
    "realnvp": {"n_layers": 2, "hidden": 8},
    "vae": {"latent_dim": 1, "hidden": 8},
    "gan": {"hidden": 8},
    "ebm": {"hidden": 8},
    "ncsn": {"hidden": 8},
}
CLEAR = (genzoo.GenzooError, ValueError)

magnitudes = st.sampled_from([1.0, 1e-30, 1e-6, 1e6, 1e30, 1e300])
specials = st.sampled_from([np.nan, np.inf, -np.inf, None, None, None])  # clean half the time


@st.composite
def arrays(draw) -> np.ndarray:
    """A table of random shape and dtype, scaled, maybe with a special value somewhere."""
    n = draw(st.integers(0, 40))
    d = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    elements = st.floats(-3, 3, width=32) if dtype != np.int64 else st.integers(-3, 3)
    x = draw(hnp.arrays(dtype, (n, d), elements=elements)).astype(np.float64)
    x *= draw(magnitudes)
    special = draw(specials)
    if special is not None and x.size:
        x.flat[draw(st.integers(0, x.size - 1))] = special
    if draw(st.integers(0, 3)) == 0:
        x = x.reshape(-1)  # a 1-D array: the wrong shape
    return x.astype(dtype) if dtype != np.int64 and np.isfinite(x).all() else x


def _finite_or_clear(call):
    """Run ``call``; a clear error is fine, any other result must hold no NaN."""
    try:
        result = call()
    except CLEAR:
        return None
    assert not np.isnan(np.asarray(result, dtype=np.float64)).any(), result
    return result


@pytest.mark.parametrize("model", list(FAMILIES))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(x=arrays())
def test_any_array_gets_a_clear_error_or_a_finite_answer(model, x):
    estimator = genzoo.Estimator(model, steps=5, batch_size=16, **FAMILIES[model])
    if _finite_or_clear(lambda: estimator.fit(x) and 0.0) is None:
        event("refused")
        return
    event("fitted")  # --hypothesis-show-statistics: how many examples got this far
    _finite_or_clear(lambda: estimator.score_samples(x))
    samples = _finite_or_clear(lambda: estimator.sample(4, random_state=0))
    assert samples is None or np.isfinite(samples).all()
