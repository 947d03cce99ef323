"""Arrays handed to tinycnn from outside, checked once where they enter.

A network's input must be a NumPy or CuPy array of floats, on the device its
parameters live on, and (on the host) finite; a parameter must be finite. These
checks give one clear error instead of a failure deep inside a product.
"""
import numpy as np

from ..backend import get_array_module


def count_not_finite(a):
    """How many of the array's values are NaN or infinite (0 for a healthy parameter)."""
    return int(a.size - get_array_module(a).isfinite(a).sum())


def expect_same_device(x, w, what):
    """Raise TypeError unless ``x`` lives where the parameter ``w`` does (host or GPU).

    Without it, a NumPy input meets CuPy weights deep inside a product and fails
    with CuPy's bare "Unsupported type".
    """
    have, want = get_array_module(x), get_array_module(w)
    if have is not want:
        raise TypeError(f"{what}: the input is a {have.__name__} array but the parameters live in "
                        f"{want.__name__}; move it with tinycnn.backend.asarray(x)")


def check_network_input(x, param=None):
    """Raise a clear error for input a network cannot take (``param``: one of its parameters).

    NaN and Inf are looked for in host (NumPy) input only: on a GPU the count
    would be a synchronisation on every forward pass of every optimisation step.
    Images reach the device through tinycnn.io.images, which checks them on the host.
    """
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"expected a NumPy or CuPy array, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"expected a floating-point array, got dtype {x.dtype}; convert it with "
                        "x.astype(np.float32) (images: tinycnn.io.images.preprocess)")
    if param is not None:
        expect_same_device(x, param, "the network")
    if get_array_module(x) is np:
        bad = count_not_finite(x)
        if bad:
            raise ValueError(
                f"the input contains {bad} NaN or Inf value(s) (shape {tuple(x.shape)})"
            )
