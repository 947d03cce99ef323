"""NumPy and CuPy give the same SqueezeNet forward and backward pass: same seed, same
weights, outputs and gradients within 1e-5 relative in float32, 1e-12 in float64.

Runs wherever CuPy can be used: on a GPU (make gpu-check) it compares two
implementations of every kernel (cuBLAS against the CPU's BLAS, CUDA elementwise
code against NumPy's); under the strict stand-in it checks the code path only."""
import importlib.util

import numpy as np
import pytest

from tinycnn import backend
from tinycnn.models import squeezenet1_1


def _cupy_usable():
    if importlib.util.find_spec("cupy") is None:
        return False
    previous = backend.name()
    try:
        backend.use("cupy")
        return True
    except backend.BackendError:
        return False
    finally:
        backend.use(previous)


def squeezenet_on(name, dtype, size):
    """Forward to the scores and backward to the input and every parameter, on backend ``name``."""
    previous = backend.name()
    backend.use(name)
    try:
        net = squeezenet1_1(weights=False, seed=0).astype(dtype)
        x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(dtype)
        scores, cache = net.forward(backend.asarray(x))
        dout = np.random.default_rng(2).standard_normal(scores.shape).astype(dtype)
        dx, grads = net.backward(backend.asarray(dout), cache)
        return {"scores": backend.to_numpy(scores), "dx": backend.to_numpy(dx),
                **{k: backend.to_numpy(v) for k, v in grads.items()}}
    finally:
        backend.use(previous)


def max_relative_error(a, b):
    """max over arrays of max |a - b| / max |b|."""
    return max(float(np.abs(a[k] - b[k]).max() / max(np.abs(b[k]).max(), 1e-30)) for k in b)


def compare_squeezenet(dtype, size=64):
    return max_relative_error(
        squeezenet_on("cupy", dtype, size), squeezenet_on("numpy", dtype, size)
    )


@pytest.mark.skipif(not _cupy_usable(), reason="CuPy is not installed or sees no GPU")
@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_numpy_and_cupy_agree_on_squeezenet(dtype, tol):
    assert compare_squeezenet(dtype) < tol
