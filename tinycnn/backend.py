"""Array backend: NumPy by default, CuPy on a GPU.

Every function in tinycnn that allocates starts with ``xp = get_array_module(x)``
and then writes ``xp.zeros``, ``xp.maximum`` ... so that one code path serves both
libraries. This module is the one place that knows which library is active and
the few spots where NumPy and CuPy differ (importing CuPy, checking for a GPU,
moving arrays between host and device, random generators).

Choose the backend with the environment variable ``TINYCNN_BACKEND=cupy`` or with
``tinycnn.backend.use("cupy")`` before building a network.
"""
import os

import numpy as np

_NAMES = ("numpy", "cupy")
_active = None  # the module arrays are created with; set by use()


class BackendError(RuntimeError):
    """The requested backend cannot be used on this machine."""


def _import_cupy():
    try:
        import cupy
    except ImportError as e:
        raise BackendError(
            "backend 'cupy' was requested but CuPy is not installed "
            f"({e}); install it with `pip install -e '.[gpu]'` or use the numpy backend"
        ) from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or broken
        raise BackendError(f"backend 'cupy' was requested but no GPU is visible: {e}") from None
    if n == 0:
        raise BackendError("backend 'cupy' was requested but no GPU is visible (0 CUDA devices)")
    return cupy


def use(name):
    """Make ``name`` ("numpy" or "cupy") the active backend and return its module."""
    global _active
    if name not in _NAMES:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(_NAMES)}")
    _active = np if name == "numpy" else _import_cupy()
    return _active


def active():
    """The active array module (numpy or cupy): ``backend.active().zeros(...)``."""
    if _active is None:
        use(os.environ.get("TINYCNN_BACKEND", "numpy").strip().lower() or "numpy")
    return _active


def name():
    """Name of the active backend: "numpy" or "cupy"."""
    return active().__name__


def get_array_module(*arrays):
    """numpy or cupy, whichever the arrays live in (numpy for plain Python values)."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy
            return cupy
    return np


def asarray(a, dtype=None):
    """Move ``a`` (NumPy, CuPy or nested lists) onto the active backend's device."""
    return active().asarray(a, dtype=dtype)


def to_numpy(a):
    """Bring an array back to host memory as a NumPy array (no copy if already there)."""
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def ndimage(like):
    """scipy.ndimage for NumPy arrays, cupyx.scipy.ndimage for CuPy ones.

    The two offer the same filters with the same arguments (gaussian_filter, zoom,
    ...), so an image is blurred or resized where it lives, without a trip to the host.
    """
    if get_array_module(like) is np:
        from scipy import ndimage as module
    else:
        from cupyx.scipy import ndimage as module
    return module


def to_floats(values):
    """A list of Python floats from scalars that may live on the device: one copy, not one each.

    Optimisation loops keep each step's loss on the device and convert them all at the
    end, so the GPU never waits for the host to read a number mid-run.
    """
    if not values:
        return []
    xp = get_array_module(*values)
    if xp is np:
        return [float(v) for v in values]
    return [float(v) for v in xp.stack([xp.asarray(v, dtype=xp.float64) for v in values]).get()]


def random_generator(seed, like=None):
    """A seeded random Generator of the library ``like`` lives in (default: active).

    NumPy and CuPy both offer ``default_rng``; with the same seed they draw
    different streams, so results are reproducible per backend, not across them.
    """
    mod = get_array_module(like) if like is not None else active()
    return mod.random.default_rng(seed)
