"""Check hand-written backward passes against centred finite differences.

For a function f with upstream gradient ``dout``, the analytic backward pass must
return d<f(x), dout>/dx. Centred differences estimate each entry:

    d<f, dout>/dx_i  ~  (<f(x + h e_i), dout> - <f(x - h e_i), dout>) / (2h)

with error O(h^2) from truncation and O(eps / h) from round-off, so checks run in
float64 (eps = 2e-16, h = 1e-6: errors near 1e-10). Use it on your own layers:

    from tinycnn.gradcheck import check_layer
    check_layer(MyLayer(...), np.random.default_rng(0).standard_normal((2, 3, 5, 5)))
"""
import numpy as np

from .backend import get_array_module


def numeric_grad(f, x, dout, h=1e-6):
    """d<f(), dout>/dx by centred differences, one element of ``x`` at a time.

    f:    a function of no arguments that reads ``x`` (changed in place, then restored)
    x:    float64 array;  dout: array shaped like f()'s output
    """
    xp = get_array_module(x)
    grad = xp.zeros_like(x)
    if not x.flags.c_contiguous:
        raise ValueError("x must be C-contiguous so that it can be perturbed in place")
    flat, gflat = x.reshape(-1), grad.reshape(-1)  # views of x and grad
    for i in range(x.size):
        old = flat[i].copy()
        flat[i] = old + h
        plus = float((f() * dout).sum())
        flat[i] = old - h
        minus = float((f() * dout).sum())
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * h)
    return grad


def rel_error(analytic, numeric, floor=1e-12):
    """max |a - n| / max(max |a|, max |n|, floor): 0 when equal, about 1 when unrelated."""
    xp = get_array_module(analytic, numeric)
    if analytic.size == 0:
        return 0.0

    def largest(a):  # CuPy's max takes no ``initial``, hence the empty case above
        return float(xp.abs(a).max())
    return largest(analytic - numeric) / max(largest(analytic), largest(numeric), floor)


def check_layer(layer, x, *, seed=0, h=1e-6, tol=1e-6, **backward_args):
    """Compare ``layer.backward`` with finite differences for the input and every parameter.

    Works for a single layer or a whole Network. ``x`` and the parameters must be
    float64. A random upstream gradient (from ``seed``) contracts the output.
    Returns {"x": error, "<param>": error, ...}; raises AssertionError if any > tol.
    """
    params = dict(layer.named_params()) if hasattr(layer, "named_params") else layer.params
    if params:  # a NumPy x for a layer on the GPU: move it where the parameters are
        x = get_array_module(next(iter(params.values()))).asarray(x)
    for name, a in [("x", x)] + list(params.items()):
        if a.dtype != np.float64:
            raise ValueError(
                f"gradient checks need float64, but {name} is {a.dtype}: float32 "
                "round-off swamps the finite differences (use net.astype(np.float64))"
            )
    xp = get_array_module(x)
    out, cache = layer.forward(x)
    dout = xp.asarray(np.random.default_rng(seed).standard_normal(out.shape))
    dx, grads = layer.backward(dout, cache, **backward_args)

    def f():
        return layer.forward(x)[0]

    # Each <f, dout> is rounded by about eps * sum |f * dout|, and the differences divide that
    # by h: a gradient smaller than this round-off / tol (a bias's sum of dout that nearly
    # cancels, which some random douts draw) is compared on that scale instead
    roundoff = max(float(xp.abs(out * dout).sum()) * np.finfo(np.float64).eps / h, 1e-12 * tol)
    errors = {"x": rel_error(dx, numeric_grad(f, x, dout, h), roundoff / tol)}
    for name, p in params.items():
        errors[name] = rel_error(grads[name], numeric_grad(f, p, dout, h), roundoff / tol)
    bad = {k: v for k, v in errors.items() if v > tol}
    if bad:
        raise AssertionError(f"{layer!r}: gradient mismatch (relative error > {tol}): {bad}")
    return errors
