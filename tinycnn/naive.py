"""Naive loop versions of convolution, max pooling, instance normalisation and
reflection padding: the readable definitions.

They follow the equations pixel by pixel, so they are slow; the tests use them as
the oracle that the vectorised layers in ``layers.py`` must agree with. NumPy only.
"""
import numpy as np

from .im2col import out_size


def conv_forward_naive(x, w, b, stride, pad):
    """x: (N, C, H, W), w: (F, C, K, K), b: (F,) -> out: (N, F, H', W')

    out[n, f, y, x] = b[f] + sum_{c, i, j} w[f, c, i, j] * x_pad[n, c, y*stride + i, x*stride + j]
    """
    N, C, H, W = x.shape
    F, _, K, _ = w.shape
    oh, ow = out_size(H, K, stride, pad), out_size(W, K, stride, pad)
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.zeros((N, F, oh, ow), dtype=np.result_type(x, w))
    for n in range(N):
        for f in range(F):
            for y in range(oh):
                for x_ in range(ow):
                    window = x_pad[n, :, y * stride:y * stride + K, x_ * stride:x_ * stride + K]
                    out[n, f, y, x_] = np.sum(window * w[f]) + b[f]
    return out


def conv_backward_naive(dout, x, w, stride, pad):
    """Gradients of conv_forward_naive: each output pixel sends dout back to its window.

    Returns dx (N, C, H, W), dw (F, C, K, K), db (F,).
    """
    N, C, H, W = x.shape
    F, _, K, _ = w.shape
    _, _, oh, ow = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dx_pad, dw = np.zeros_like(x_pad), np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for y in range(oh):
                for x_ in range(ow):
                    rows = slice(y * stride, y * stride + K)
                    cols = slice(x_ * stride, x_ * stride + K)
                    dw[f] += dout[n, f, y, x_] * x_pad[n, :, rows, cols]
                    dx_pad[n, :, rows, cols] += dout[n, f, y, x_] * w[f]
    return dx_pad[:, :, pad:pad + H, pad:pad + W], dw, db


def _pool_windows(x, kernel, stride, pad, ceil_mode):
    """Yield (n, c, y, x, rows, cols) over every pooling window of a -inf padded input."""
    N, C, H, W = x.shape
    oh = out_size(H, kernel, stride, pad, ceil_mode)
    ow = out_size(W, kernel, stride, pad, ceil_mode)
    for n in range(N):
        for c in range(C):
            for y in range(oh):
                for x_ in range(ow):
                    # window in padded coordinates, clipped to the real input
                    r0, c0 = y * stride - pad, x_ * stride - pad
                    rows = range(max(r0, 0), min(r0 + kernel, H))
                    cols = range(max(c0, 0), min(c0 + kernel, W))
                    yield n, c, y, x_, rows, cols, (oh, ow)


def maxpool_forward_naive(x, kernel, stride, pad=0, ceil_mode=False):
    """out[n, c, y, x] = max of x over window (y, x); padding never wins."""
    N, C, H, W = x.shape
    out = None
    for n, c, y, x_, rows, cols, (oh, ow) in _pool_windows(x, kernel, stride, pad, ceil_mode):
        if out is None:
            out = np.empty((N, C, oh, ow), dtype=x.dtype)
        out[n, c, y, x_] = max(x[n, c, r, s] for r in rows for s in cols)
    return out


def maxpool_backward_naive(dout, x, kernel, stride, pad=0, ceil_mode=False):
    """Each window's gradient goes to its first maximum in row-major order."""
    dx = np.zeros_like(x)
    for n, c, y, x_, rows, cols, _ in _pool_windows(x, kernel, stride, pad, ceil_mode):
        best = None
        for r in rows:
            for s in cols:
                if best is None or x[n, c, r, s] > x[n, c, best[0], best[1]]:
                    best = (r, s)
        dx[n, c, best[0], best[1]] += dout[n, c, y, x_]
    return dx


def instance_norm_naive(x, weight, bias, eps):
    """out[n, c] = weight[c] * (x[n, c] - mu) / sqrt(var + eps) + bias[c], with mu and
    var the mean and biased variance of the H*W pixels of x[n, c]."""
    N, C, H, W = x.shape
    out = np.empty_like(x)
    for n in range(N):
        for c in range(C):
            pixels = [x[n, c, i, j] for i in range(H) for j in range(W)]
            mu = sum(pixels) / len(pixels)
            var = sum((v - mu) ** 2 for v in pixels) / len(pixels)
            out[n, c] = weight[c] * (x[n, c] - mu) / np.sqrt(var + eps) + bias[c]
    return out


def _reflect(i, size):
    """The pixel that padded index i (counted from the first real pixel) mirrors:
    -1 -> 1, -2 -> 2, size -> size - 2, ... (the edge pixel is not repeated)."""
    if i < 0:
        return -i
    if i >= size:
        return 2 * (size - 1) - i
    return i


def reflection_pad_naive(x, p):
    """out[n, c, y, x] = x[n, c, reflect(y - p), reflect(x - p)]: (N, C, H + 2p, W + 2p)."""
    N, C, H, W = x.shape
    out = np.empty((N, C, H + 2 * p, W + 2 * p), dtype=x.dtype)
    for y in range(H + 2 * p):
        for x_ in range(W + 2 * p):
            out[:, :, y, x_] = x[:, :, _reflect(y - p, H), _reflect(x_ - p, W)]
    return out


def reflection_pad_backward_naive(dout, x_shape, p):
    """Each padded pixel sends its gradient back to the pixel it copies."""
    N, C, H, W = x_shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for y in range(H + 2 * p):
        for x_ in range(W + 2 * p):
            dx[:, :, _reflect(y - p, H), _reflect(x_ - p, W)] += dout[:, :, y, x_]
    return dx
