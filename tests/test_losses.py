"""Softmax cross-entropy: gradient check, a value by hand, errors."""
import numpy as np
import pytest
from hypothesis import given

import tinycnn as tc
from tinycnn.backend import to_numpy
from tinycnn.gradcheck import numeric_grad

from .conftest import on_device
from .strategies import seeds


@pytest.mark.gradcheck
@given(seeds)
def test_softmax_cross_entropy_gradient(seed):
    rng = np.random.default_rng(seed)
    N, K = rng.integers(1, 6), rng.integers(2, 8)
    scores = on_device(rng.standard_normal((N, K)) * 3)
    y = on_device(rng.integers(0, K, N))
    loss, dscores = tc.softmax_cross_entropy(scores, y)
    numeric = numeric_grad(
        lambda: tc.softmax_cross_entropy(scores, y)[0], scores, on_device(np.ones(()))
    )
    # relative to at least 1e-3: a confident prediction has gradients near 5e-7, where centred
    # differences' round-off (eps |loss| / h, about 1e-10) is already 1e-4 of them (seed 235172804)
    a, n = to_numpy(dscores), to_numpy(numeric)
    assert np.abs(a - n).max() / max(np.abs(a).max(), np.abs(n).max(), 1e-3) < 1e-6


def test_softmax_cross_entropy_by_hand():
    # uniform scores over K classes: loss log K; huge scores must not overflow
    loss, _ = tc.softmax_cross_entropy(
        on_device(np.zeros((3, 10))), on_device(np.array([0, 4, 9]))
    )
    assert np.isclose(float(loss), np.log(10))
    loss, d = tc.softmax_cross_entropy(
        on_device(np.array([[1000.0, 0.0]])), on_device(np.array([1]))
    )
    assert np.isclose(float(loss), 1000.0) and np.all(np.isfinite(to_numpy(d)))


def test_softmax_cross_entropy_errors():
    s = on_device(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"labels must have shape \(2,\)"):
        tc.softmax_cross_entropy(s, on_device(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match=r"integers in \[0, 3\).*range \[0, 3\]"):
        # host labels: range checked before the copy
        tc.softmax_cross_entropy(s, np.array([0, 3]))
    with pytest.raises(ValueError, match="integers"):
        tc.softmax_cross_entropy(s, on_device(np.array([0.0, 1.0])))
