"""The engine's pooling: the same maximum, winner and gradient as the pooling layers' clear path.

The clear path stacks the K*K window offsets and takes max and argmax over them: K*K
passes over a stack K*K times the output. Here a K x K max is a max over K columns,
then over K rows (2(K-1) passes over arrays the size of the input), and the winner is
found by comparing each offset with the maximum, in small integers. Backward, the offsets
of one stride x stride corner are copied rather than added (``spread``).

On a GPU (CuPy arrays, ``kernels.active``) max pooling forward and backward are one CUDA
kernel each (``kernels.cu``), with the same winners and the same sums.
"""
import numpy as np

from ..backend import get_array_module
from ..im2col import window_offsets
from . import kernels


def max_pool(x_pad, k, s, oh, ow):
    """x_pad (N, C, Hp, Wp), padded with -inf -> (out, winner), both (N, C, H', W').

    winner holds the offset i*k + j of each window's maximum; on ties the first in
    row-major order (as argmax, and PyTorch).
    """
    if kernels.active(x_pad):
        return kernels.max_pool(x_pad, k, s, oh, ow)
    xp = get_array_module(x_pad)
    # non-overlapping windows (stride = K) as a reshape (N, C, H', K, W', K) reduced over
    # axes 3 and 5 are slower in NumPy (strided reductions), so they go this way too
    row_max = x_pad[:, :, :, 0:s * ow:s].copy()                      # (N, C, Hp, W')
    for j in range(1, k):
        xp.maximum(row_max, x_pad[:, :, :, j:j + s * ow:s], out=row_max)
    out = row_max[:, :, 0:s * oh:s].copy()                            # (N, C, H', W')
    for i in range(1, k):
        xp.maximum(out, row_max[:, :, i:i + s * oh:s], out=out)
    # an offset counts only where no earlier one was found; only the comparison reads
    # floats, the rest is integer arithmetic (bytes below 128 offsets)
    dtype = np.int8 if k * k < 128 else np.int32
    winner = xp.zeros(out.shape, dtype=dtype)
    found = xp.zeros(out.shape, dtype=bool)
    for n, (_, _, rows, cols) in enumerate(window_offsets(k, k, s, oh, ow)):
        equal = x_pad[:, :, rows, cols] == out
        if n:
            winner += (equal & ~found) * dtype(n)
        found |= equal
    return out, winner


def spread(dx_pad, offsets, s, grad_at_offset):
    """dx_pad[:, :, rows, cols] += grad_at_offset(k) for each offset k = (i, j, rows, cols), into
    zeros, as the layers' clear path does; returns dx_pad.

    The offsets of one stride x stride corner (i < s and j < s) write disjoint cells
    (y*s + i, x*s + j) that no earlier offset has written: for them a copy does the same as
    the add, without reading the slice back.
    """
    for k, (i, j, rows, cols) in enumerate(offsets):
        if i < s and j < s:
            dx_pad[:, :, rows, cols] = grad_at_offset(k)
        else:
            dx_pad[:, :, rows, cols] += grad_at_offset(k)
    return dx_pad


def max_pool_backward(dout, winner, x_shape, k, s, p):
    """dout, winner (N, C, H', W') -> dx (N, C, H, W) = x_shape: each window's gradient onto
    its winner, as MaxPool2d's clear path spreads ``(winner == k) * dout``.

    The padded input MaxPool2d read has p each side plus the cells ceil_mode's last window
    reaches: max(H + 2p, (H' - 1)*s + k) rows, likewise columns; dx drops the padding.
    """
    N, C, H, W = x_shape
    _, _, oh, ow = dout.shape
    x_pad_shape = (N, C, max(H + 2 * p, (oh - 1) * s + k), max(W + 2 * p, (ow - 1) * s + k))
    if kernels.active(dout) and winner.dtype in (np.int8, np.int32):   # winners max_pool made
        dx_pad = kernels.max_pool_backward(dout, winner, x_pad_shape, k, s)
    else:
        dx_pad = get_array_module(dout).zeros(x_pad_shape, dtype=dout.dtype)
        spread(dx_pad, window_offsets(k, k, s, oh, ow), s, lambda q: (winner == q) * dout)
    return dx_pad[:, :, p:p + H, p:p + W]
