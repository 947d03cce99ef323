"""Sliding windows as matrices: im2col, col2im and output sizes.

A convolution with a (F, C, KH, KW) kernel is one matrix product once every
receptive field of the (zero-padded) input is laid out as a column:

    cols[(c, i, j), (n, y, x)] = x_pad[n, c, y * stride + i, x * stride + j]
    out = W.reshape(F, C*KH*KW) @ cols            # (F, N*OH*OW)

Building ``cols`` loops over the KH*KW kernel offsets, not over pixels: for a
fixed offset (i, j) the entries form a strided slice of the input, copied at once.
``col2im`` is the adjoint: it adds each offset's slice back, so overlapping
windows accumulate. Both use plain slicing, which NumPy and CuPy share, so no
scatter-add or stride tricks are needed.
"""
import math

from .backend import get_array_module


def out_size(size, kernel, stride, pad, ceil_mode=False):
    """Output length of a window sliding over ``size`` (+ ``pad`` each side).

    out = 1 + floor((size + 2*pad - kernel) / stride)     (ceil instead of floor
    with ceil_mode; as in PyTorch, a last window that would start in the right
    padding only is dropped).
    """
    span = size + 2 * pad - kernel
    if span < 0:
        raise ValueError(f"kernel {kernel} is larger than the padded input {size + 2 * pad}")
    n = 1 + (math.ceil(span / stride) if ceil_mode else span // stride)
    if ceil_mode and (n - 1) * stride >= size + pad:
        n -= 1
    return n


def window_offsets(kh, kw, stride, oh, ow):
    """Yield (i, j, rows, cols): the slices of a padded input seen by kernel offset (i, j).

    ``x_pad[:, :, rows, cols]`` has shape (N, C, OH, OW): element [n, c, y, x] is the
    (i, j) entry of output (y, x)'s window.
    """
    for i in range(kh):
        for j in range(kw):
            yield i, j, slice(i, i + stride * oh, stride), slice(j, j + stride * ow, stride)


def pad_input(x, pad_h, pad_w, value=0.0, extra_h=0, extra_w=0):
    """Pad the last two axes: ``pad`` each side plus ``extra`` at the bottom/right."""
    if pad_h == pad_w == extra_h == extra_w == 0:
        return x
    xp = get_array_module(x)
    *lead, H, W = x.shape
    out = xp.empty((*lead, H + 2 * pad_h + extra_h, W + 2 * pad_w + extra_w), dtype=x.dtype)
    # the border, then the inside: each cell written once, in five slicings (faster than xp.pad's
    # general code on these small inputs: bench/RESULTS.md)
    out[..., :pad_h, :] = value
    out[..., pad_h + H:, :] = value
    out[..., pad_h:pad_h + H, :pad_w] = value
    out[..., pad_h:pad_h + H, pad_w + W:] = value
    out[..., pad_h:pad_h + H, pad_w:pad_w + W] = x
    return out


def im2col(x, kh, kw, stride, pad):
    """Lay out every receptive field of every image as a column.

    x:    (N, C, H, W)
    cols: (C*KH*KW, N*OH*OW)   rows ordered (c, i, j), columns ordered (n, y, x)
    where OH = 1 + (H + 2*pad - KH) // stride, likewise OW. The images sit side by
    side, so a whole batch is one matrix product.
    """
    xp = get_array_module(x)
    N, C, H, W = x.shape
    oh, ow = out_size(H, kh, stride, pad), out_size(W, kw, stride, pad)
    x_pad = pad_input(x, pad, pad).transpose(1, 0, 2, 3)                 # (C, N, Hp, Wp)
    cols = xp.empty((C, kh, kw, N, oh, ow), dtype=x.dtype)
    for i, j, rows, cs in window_offsets(kh, kw, stride, oh, ow):
        cols[:, i, j] = x_pad[:, :, rows, cs]                            # (C, N, OH, OW)
    return cols.reshape(C * kh * kw, N * oh * ow)


def col2im(cols, x_shape, kh, kw, stride, pad):
    """Adjoint of im2col: add every column back onto the pixels it was read from.

    cols: (C*KH*KW, N*OH*OW)
    out:  (N, C, H, W) = x_shape
    """
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    oh, ow = out_size(H, kh, stride, pad), out_size(W, kw, stride, pad)
    cols = cols.reshape(C, kh, kw, N, oh, ow)
    dx_pad = xp.zeros((C, N, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    for i, j, rows, cs in window_offsets(kh, kw, stride, oh, ow):
        # overlapping windows add up
        dx_pad[:, :, rows, cs] += cols[:, i, j]
    return dx_pad[:, :, pad:pad + H, pad:pad + W].transpose(1, 0, 2, 3)
