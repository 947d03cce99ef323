"""The engine: faster ways to compute what ``tinycnn/layers.py`` computes clearly.

The layers hold one clear, vectorised path per idea (a convolution is im2col, one
matrix product and a reshape). Where the engine knows a faster way to the same
numbers, a layer hands the work over in one line:

    if engine.enabled():
        return engine.conv2d_forward(x, w, b, stride, padding), x

What lives here, and why it is faster:

- ``conv``: a 1x1 convolution as one batched product with no im2col; for stride 1,
  im2col over the flattened padded image (one contiguous copy per kernel offset); a
  few images at a time, or a band of output rows at a time, so that the columns fit a
  byte budget (per backend, counted in the array's own element size).
- ``pool``: max pooling as a K-wide max over columns then rows (2(K-1) passes, not
  K*K), and the window's winner found with small integers.
- ``kernels``: on a GPU (CuPy arrays), hand-written CUDA kernels (``kernels.cu``) for
  im2col, col2im, max pooling, ReLU, an Adam step and total variation, one launch each
  where the array code makes many; ``TINYCNN_KERNELS=0`` or ``engine.kernels.use(False)`` runs the
  array code on the GPU instead, so the two can be compared. NumPy arrays never reach them.
- ``threads``, ``malloc``, ``memory``: the process around the arithmetic (BLAS
  threads, glibc keeping freed memory, how much memory a command may allocate).

The switch: ``TINYCNN_ENGINE=0`` in the environment, or ``engine.use(False)``, runs
the clear path alone. tests/test_engine.py holds the engine equal to the clear path
and to the naive loops of ``tinycnn/naive.py``.
"""
import os
from contextlib import contextmanager

_enabled = os.environ.get("TINYCNN_ENGINE", "1").strip() not in ("0", "off", "false", "no")


def enabled():
    """True when the layers hand their work to the engine (the default)."""
    return _enabled


def use(on):
    """Switch the engine on (True) or off (False: every layer runs its clear path)."""
    global _enabled
    _enabled = bool(on)


@contextmanager
def switched(on):
    """``with engine.switched(False): ...`` runs the block with the engine off (or on)."""
    before = _enabled
    use(on)
    try:
        yield
    finally:
        use(before)


from . import kernels  # noqa: E402  (after the switch they read)
from .conv import conv2d_backward, conv2d_forward  # noqa: E402
from .pool import max_pool, max_pool_backward  # noqa: E402

__all__ = ["enabled", "use", "switched", "conv2d_forward", "conv2d_backward", "max_pool",
           "max_pool_backward"]
