"""The CUDA kernels of ``kernels.cu``, launched on CuPy arrays.

On a GPU every array operation is a kernel launch, and the sliding-window code of the
clear path is many small ones (an im2col copies K*K slices). Each kernel in
``kernels.cu`` does one whole operation in one launch; this module loads them once per
process and launches them.

CuPy's ``RawKernel`` checks nothing about its arguments: a Python ``float`` goes in as a
double and a Python ``int`` as 64 bits whatever the parameter's type, and a view's strides
are ignored. So every launch function here makes its arrays C-contiguous and casts every
scalar to the parameter's exact NumPy type (``np.int32`` for ``int``, ``np.int64`` for
``long long``). The strict CuPy stand-in of the tests refuses anything else.

``active(*arrays)`` says whether the kernels take an operation: CuPy arrays of float32 or
float64, a CuPy with ``RawModule``, and the switch on. The switch: ``TINYCNN_KERNELS=0`` in
the environment (read at each call), or ``kernels.use(False)``; with it off the GPU runs
the engine's array code, so the two GPU paths can be compared in one run.
"""
import os
from pathlib import Path

import numpy as np

from ..backend import get_array_module

SOURCE = Path(__file__).with_name("kernels.cu")

# Threads per block: a multiple of the 32-thread warp; 256 is the usual choice for kernels
# that use no shared memory (CUDA C++ Best Practices Guide, "Thread and Block Heuristics").
THREADS = 256

SUFFIX = {np.dtype(np.float32): "_f32", np.dtype(np.float64): "_f64"}
RULES = {"backprop": 0, "deconvnet": 1, "guided": 2}

# NVRTC's options: no fused multiply-add, so that a*b + c rounds twice as the array code's
# two launches do (the Adam kernel matches the array code to the bit, total variation for beta 2)
OPTIONS = ("--std=c++14", "--fmad=false")

_switch = None          # None: the environment decides; True or False: use() decided
_modules = {}           # the loaded module, per CuPy module (loaded once per process)


def use(on):
    """Switch the kernels on (True), off (False), or back to ``TINYCNN_KERNELS`` (None)."""
    global _switch
    _switch = None if on is None else bool(on)


def enabled():
    """True unless ``use(False)`` or ``TINYCNN_KERNELS=0`` turned the kernels off."""
    if _switch is not None:
        return _switch
    setting = os.environ.get("TINYCNN_KERNELS", "1").strip().lower()
    return setting not in ("0", "off", "false", "no")


def active(*arrays):
    """True when the kernels compute an operation on these arrays: CuPy, float32 or
    float64 alike, a CuPy that offers ``RawModule``, and the switch on."""
    xp = get_array_module(*arrays)
    if xp is np or not enabled() or not hasattr(xp, "RawModule"):
        return False
    dtypes = {a.dtype for a in arrays}
    return len(dtypes) == 1 and dtypes.pop() in SUFFIX


def _kernel(xp, name, dtype):
    module = _modules.get(xp)
    if module is None:
        module = _modules[xp] = xp.RawModule(code=SOURCE.read_text(), options=OPTIONS)
    return module.get_function(name + SUFFIX[np.dtype(dtype)])


def _launch(xp, name, dtype, total, *args):
    """One thread per output element: ``total`` threads in blocks of THREADS."""
    if total == 0:
        return                      # CUDA refuses an empty grid
    blocks = (total + THREADS - 1) // THREADS
    _kernel(xp, name, dtype)((blocks,), (THREADS,), (*args, np.int64(total)))


def _ints(*values):
    return tuple(np.int32(v) for v in values)


def im2col(x, kh, kw, stride, pad, oh, ow):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW), as ``tinycnn.im2col.im2col``."""
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    N, C, H, W = x.shape
    cols = xp.empty((C * kh * kw, N * oh * ow), dtype=x.dtype)
    _launch(xp, "im2col", x.dtype, cols.size, x, cols,
            *_ints(N, C, H, W, kh, kw, stride, pad, oh, ow))
    return cols


def col2im(cols, x_shape, kh, kw, stride, pad, oh, ow):
    """cols (C*KH*KW, N*OH*OW) -> dx (N, C, H, W), as ``tinycnn.im2col.col2im``."""
    xp = get_array_module(cols)
    cols = xp.ascontiguousarray(cols)
    N, C, H, W = x_shape
    dx = xp.empty((N, C, H, W), dtype=cols.dtype)
    _launch(xp, "col2im", cols.dtype, dx.size, cols, dx,
            *_ints(N, C, H, W, kh, kw, stride, pad, oh, ow))
    return dx


def max_pool(x_pad, k, s, oh, ow):
    """x_pad (N, C, Hp, Wp) padded with -inf -> (out, winner), as ``engine.pool.max_pool``."""
    xp = get_array_module(x_pad)
    x_pad = xp.ascontiguousarray(x_pad)
    N, C, Hp, Wp = x_pad.shape
    small = k * k < 128
    out = xp.empty((N, C, oh, ow), dtype=x_pad.dtype)
    winner = xp.empty((N, C, oh, ow), dtype=np.int8 if small else np.int32)
    name = "max_pool_forward" if small else "max_pool_forward_int"
    _launch(xp, name, x_pad.dtype, out.size, x_pad, out, winner,
            *_ints(Hp, Wp, k, s, oh, ow))
    return out, winner


def max_pool_backward(dout, winner, x_pad_shape, k, s):
    """dout, winner (N, C, OH, OW) -> dx_pad (N, C, Hp, Wp): each window's gradient on its
    winner, as MaxPool2d's clear path spreads ``(winner == k) * dout``."""
    xp = get_array_module(dout)
    dout, winner = xp.ascontiguousarray(dout), xp.ascontiguousarray(winner)
    N, C, Hp, Wp = x_pad_shape
    _, _, oh, ow = dout.shape
    name = "max_pool_backward" if winner.dtype == np.int8 else "max_pool_backward_int"
    dx_pad = xp.empty((N, C, Hp, Wp), dtype=dout.dtype)
    _launch(xp, name, dout.dtype, dx_pad.size, dout, winner, dx_pad,
            *_ints(Hp, Wp, k, s, oh, ow))
    return dx_pad


def relu_backward(dout, positive_x, rule):
    """dx for one of the three ReLU rules, as ``ReLU.backward``; positive_x = (x > 0)."""
    xp = get_array_module(dout)
    dout, positive_x = xp.ascontiguousarray(dout), xp.ascontiguousarray(positive_x)
    dx = xp.empty(dout.shape, dtype=dout.dtype)
    _launch(xp, "relu_backward", dout.dtype, dx.size, positive_x, dout, dx, np.int32(RULES[rule]))
    return dx


def relu_forward(x):
    """x -> (max(x, 0), x > 0) in one launch, as ``ReLU.forward``."""
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    out = xp.empty(x.shape, dtype=x.dtype)
    positive_x = xp.empty(x.shape, dtype=bool)
    _launch(xp, "relu_forward", x.dtype, x.size, x, out, positive_x)
    return out, positive_x


def adam_step(g, m, v, t, lr, betas, eps):
    """Adam's step in one launch, as ``tinycnn.optim.adam_step``: m and v (C-contiguous)
    updated in place, the change returned. Each constant is cast to the arrays' type as
    NumPy casts a Python float."""
    xp = get_array_module(g)
    g = xp.ascontiguousarray(g)
    T = g.dtype.type
    b1, b2 = betas
    step = xp.empty(g.shape, dtype=g.dtype)
    _launch(xp, "adam_step", g.dtype, g.size, g, m, v, step, T(b1), T(1 - b1), T(b2), T(1 - b2),
            T(1 - b1 ** t), T(1 - b2 ** t), T(lr), T(eps))
    return step


def tv_loss(x, beta, eps):
    """x (..., H, W) -> (terms, dx): each pixel's term of the total variation
    sum (dh^2 + dv^2)^(beta/2) and its gradient, in one launch, as ``vis.objectives.tv_loss``
    before its sum and weight."""
    xp = get_array_module(x)
    x = xp.ascontiguousarray(x)
    H, W = x.shape[-2:]
    T = x.dtype.type
    terms, dx = xp.empty(x.shape, dtype=x.dtype), xp.empty(x.shape, dtype=x.dtype)
    _launch(xp, "tv_loss", x.dtype, x.size, x, terms, dx, *_ints(H, W, beta == 2),
            T(beta / 2), T(beta / 2 - 1), T(eps))
    return terms, dx
