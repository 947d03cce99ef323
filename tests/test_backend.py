"""Backend selection and its errors."""
import importlib.util

import numpy as np
import pytest

from tinycnn import backend


def test_numpy_default_and_round_trip():
    a = np.arange(6.0).reshape(2, 3)
    assert backend.get_array_module(a) is np
    np.testing.assert_array_equal(backend.to_numpy(backend.asarray(a)), a)


def test_unknown_backend_is_named():
    with pytest.raises(
        backend.BackendError, match="unknown backend 'torch'; choose one of numpy, cupy"
    ):
        backend.use("torch")


@pytest.mark.skipif(importlib.util.find_spec("cupy") is not None, reason="CuPy is installed here")
def test_missing_cupy_says_so():
    with pytest.raises(backend.BackendError, match="CuPy is not installed"):
        backend.use("cupy")
    assert backend.name() in ("numpy", "cupy")  # a failed switch leaves the backend usable
