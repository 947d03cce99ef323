"""The engine's convolution: the same numbers as ``Conv2d``'s clear path, faster.

Three ways, chosen by the layer's shape and the size of its columns:

- a 1x1 convolution with stride 1 and no padding is one product per image,
  W (F, C) @ x_n (C, H*W), read in place: no im2col at all;
- otherwise a few images at a time go through im2col and one product, as many as
  keep the columns within ``CHUNK_BYTES``;
- when one image's columns alone exceed it (a 9x9 convolution over a 256 x 256
  image), a band of output rows at a time, each band's columns built from the input
  rows it reads, so they stay in cache between im2col writing them and the product
  reading them.

For stride 1 im2col lays out the columns over the padded width (``wide_im2col``):
each kernel offset is then one contiguous slice of the flattened image.

On a GPU (CuPy arrays, ``kernels.active``) im2col and col2im are one CUDA kernel each
(``kernels.cu``) and the columns keep the plain layout, one per output pixel: the wide
layout makes K*K slice copies faster, and on a GPU the kernel makes none.
"""
from ..backend import get_array_module
from ..im2col import col2im, im2col, out_size, pad_input
from . import kernels

# im2col's columns are built for about this many bytes at a time. On a CPU: small enough
# to stay in cache and below glibc's 32 MB mmap threshold (so the buffer is reused rather
# than freshly zeroed by the kernel on every call). On a GPU: big enough that a whole
# batch is one product, since there each chunk costs a dozen kernel launches and CuPy's
# memory pool reuses buffers anyway.
CHUNK_BYTES = {"numpy": 8 * 2**20, "cupy": 512 * 2**20}


def col_width(W, kw, stride, pad):
    """Columns that ``wide_im2col`` lays out per output row.

    In general one per output pixel, OW. For stride 1 the padded width Wp = W + 2*pad
    instead: then the receptive-field entries for kernel offset (i, j) are ONE
    contiguous slice of the flattened padded image (start i*Wp + j), which copies
    several times faster than a strided 2-D slice. The Wp - OW extra columns of each
    row wrap around into the next image row: they are junk, dropped from the output
    and given zero gradient.
    """
    return W + 2 * pad if stride == 1 else out_size(W, kw, stride, pad)


def wide_im2col(x, kh, kw, stride, pad):
    """im2col with ``col_width`` columns per output row: x (N, C, H, W) -> (C*KH*KW, N*OH*CW)."""
    if stride != 1:
        return im2col(x, kh, kw, stride, pad)
    xp = get_array_module(x)
    N, C, H, W = x.shape
    oh, cw = out_size(H, kh, stride, pad), col_width(W, kw, stride, pad)
    cols = xp.empty((C, kh, kw, N, oh * cw), dtype=x.dtype)
    # one spare zero row at the bottom keeps the last offset's slice inside the array
    # (C, N, (Hp+1)*Wp)
    flat = pad_input(x, pad, pad, extra_h=1).reshape(N, C, -1).transpose(1, 0, 2)
    for i in range(kh):
        for j in range(kw):
            start = i * cw + j
            cols[:, i, j] = flat[:, :, start:start + oh * cw]
    return cols.reshape(C * kh * kw, N * oh * cw)


def wide_col2im(cols, x_shape, kh, kw, stride, pad):
    """Adjoint of ``wide_im2col``: (C*KH*KW, N*OH*CW) -> (N, C, H, W)."""
    if stride != 1:
        return col2im(cols, x_shape, kh, kw, stride, pad)
    xp = get_array_module(cols)
    N, C, H, W = x_shape
    oh, cw = out_size(H, kh, stride, pad), col_width(W, kw, stride, pad)
    Hp, Wp = H + 2 * pad, W + 2 * pad
    cols = cols.reshape(C, kh, kw, N, oh * cw)
    flat = xp.zeros((C, N, (Hp + 1) * Wp), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            start = i * cw + j
            flat[:, :, start:start + oh * cw] += cols[:, i, j]
    dx_pad = flat.reshape(C, N, Hp + 1, Wp)
    return dx_pad[:, :, pad:pad + H, pad:pad + W].transpose(1, 0, 2, 3)


def _budget(x):
    return CHUNK_BYTES[get_array_module(x).__name__]


def _chunks(x, K, s, p, width=None):
    """Slices of the batch, a few images each, whose columns (``width`` per output row,
    ``col_width``'s by default) fit the byte budget."""
    N, C, H, W = x.shape
    width = col_width(W, K, s, p) if width is None else width
    per_image = C * K * K * out_size(H, K, s, p) * width * x.dtype.itemsize
    step = max(1, _budget(x) // per_image)
    return [slice(n, n + step) for n in range(0, N, step)]


def rows_per_band(x, K, s, p):
    """Output rows of one image whose columns fit the byte budget (at least 1)."""
    _, C, _, W = x.shape
    return max(1, _budget(x) // (C * K * K * col_width(W, K, s, p) * x.dtype.itemsize))


def _pointwise(w, s, p):
    return w.shape[2] == 1 and s == 1 and p == 0


def _by_kernels(x, w, s, p, oh, ow, *arrays):
    """True when the CUDA kernels take this convolution: CuPy arrays of one float type, and
    one image's plain columns within the byte budget (else the bands below, in array code)."""
    C, K = x.shape[1], w.shape[2]
    one_image = C * K * K * oh * ow * x.dtype.itemsize
    return kernels.active(x, w, *arrays) and one_image <= _budget(x)


def conv2d_forward(x, w, b, s, p):
    """x (N, C, H, W), w (F, C, K, K), b (F,) -> out (N, F, H', W'), as ``Conv2d.forward``."""
    xp = get_array_module(x)
    N, C, H, W = x.shape
    F, _, K, _ = w.shape
    oh, ow = out_size(H, K, s, p), out_size(W, K, s, p)
    if _pointwise(w, s, p):
        # matmul batches over n, so neither x nor out is transposed into (C, N*H*W)
        out = w.reshape(F, C) @ x.reshape(N, C, H * W)                  # (N, F, H*W)
        out += b[:, None]
        return out.reshape(N, F, H, W)
    out = xp.empty((N, F, oh, ow), dtype=xp.result_type(x, w))
    if _by_kernels(x, w, s, p, oh, ow):
        return _forward_by_kernels(x, w, b, s, p, out)
    if rows_per_band(x, K, s, p) < oh:
        return _forward_in_bands(x, w, b, s, p, out)
    cw = col_width(W, K, s, p)
    for chunk in _chunks(x, K, s, p):
        cols = wide_im2col(x[chunk], K, K, s, p)                        # (C*K*K, n*H'*CW)
        # (F, n, H', CW): one product
        y = (w.reshape(F, -1) @ cols).reshape(F, -1, oh, cw)
        xp.add(y[..., :ow].transpose(1, 0, 2, 3), b[:, None, None], out=out[chunk])
    return out


def conv2d_backward(dout, x, w, s, p, param_grads=True):
    """dout (N, F, H', W') -> (dx, grads), as ``Conv2d.backward``."""
    xp = get_array_module(dout)
    F, C, K, _ = w.shape
    N, _, H, W = x.shape
    _, _, oh, ow = dout.shape
    if _pointwise(w, s, p):        # per image: dx_n = W^T dout_n, dW = sum_n dout_n x_n^T
        d = dout.reshape(N, F, H * W)
        dx = (w.reshape(F, C).T @ d).reshape(N, C, H, W)
        if not param_grads:
            return dx, {}
        dw = (d @ x.reshape(N, C, H * W).transpose(0, 2, 1)).sum(axis=0)   # (F, C)
        return dx, {"weight": dw.reshape(w.shape), "bias": dout.sum(axis=(0, 2, 3))}
    if _by_kernels(x, w, s, p, oh, ow, dout):
        return _backward_by_kernels(dout, x, w, s, p, param_grads)
    if rows_per_band(x, K, s, p) < oh:
        return _backward_in_bands(dout, x, w, s, p, param_grads)
    cw = col_width(W, K, s, p)
    dw = xp.zeros((F, C * K * K), dtype=dout.dtype) if param_grads else None
    dx = xp.empty(x.shape, dtype=dout.dtype)
    for chunk in _chunks(x, K, s, p):
        n = x[chunk].shape[0]
        # junk columns get zero gradient
        d = xp.zeros((F, n, oh, cw), dtype=dout.dtype)
        d[..., :ow] = dout[chunk].transpose(1, 0, 2, 3)
        d = d.reshape(F, n * oh * cw)                                    # (F, n*H'*CW)
        if param_grads:
            # columns rebuilt, not cached
            dw += d @ wide_im2col(x[chunk], K, K, s, p).T
        dx[chunk] = wide_col2im(w.reshape(F, -1).T @ d, (n, C, H, W), K, K, s, p)
    if not param_grads:
        return dx, {}
    return dx, {"weight": dw.reshape(w.shape), "bias": dout.sum(axis=(0, 2, 3))}


def _forward_by_kernels(x, w, b, s, p, out):
    """The forward pass on a GPU: per chunk of images one im2col kernel, one product."""
    xp = get_array_module(x)
    F, _, K, _ = w.shape
    _, _, oh, ow = out.shape
    for chunk in _chunks(x, K, s, p, ow):
        cols = kernels.im2col(x[chunk], K, K, s, p, oh, ow)             # (C*K*K, n*H'*W')
        y = (w.reshape(F, -1) @ cols).reshape(F, -1, oh, ow)            # (F, n, H', W')
        xp.add(y.transpose(1, 0, 2, 3), b[:, None, None], out=out[chunk])
    return out


def _backward_by_kernels(dout, x, w, s, p, param_grads):
    """The backward pass on a GPU: per chunk of images the two products, the columns for
    dW from the im2col kernel, dx from the col2im kernel (a gather: no atomics)."""
    xp = get_array_module(dout)
    F, C, K, _ = w.shape
    N, _, H, W = x.shape
    _, _, oh, ow = dout.shape
    dw, dx = None, []
    for chunk in _chunks(x, K, s, p, ow):
        n = x[chunk].shape[0]
        d = dout[chunk].transpose(1, 0, 2, 3).reshape(F, -1)            # (F, n*H'*W')
        if param_grads:
            share = d @ kernels.im2col(x[chunk], K, K, s, p, oh, ow).T   # (F, C*K*K)
            dw = share if dw is None else dw + share
        dx.append(kernels.col2im(w.reshape(F, -1).T @ d, (n, C, H, W), K, K, s, p, oh, ow))
    dx = dx[0] if len(dx) == 1 else xp.concatenate(dx)
    if not param_grads:
        return dx, {}
    return dx, {"weight": dw.reshape(w.shape), "bias": dout.sum(axis=(0, 2, 3))}


def _forward_in_bands(x, w, b, s, p, out):
    """The forward pass a band of output rows at a time, each band's columns built from
    the input rows it reads."""
    xp = get_array_module(x)
    F, C, K, _ = w.shape
    _, _, oh, ow = out.shape
    # the band's im2col pads nothing
    x_pad = pad_input(x, p, p)
    rows = rows_per_band(x, K, s, p)
    for n in range(x.shape[0]):
        for r0 in range(0, oh, rows):
            r1 = min(oh, r0 + rows)
            # the input rows output rows r0..r1 read
            band = x_pad[n:n + 1, :, r0 * s:(r1 - 1) * s + K]
            cols = wide_im2col(band, K, K, s, 0)                        # (C*K*K, (r1-r0)*CW)
            y = (w.reshape(F, -1) @ cols).reshape(F, r1 - r0, -1)       # (F, rows, CW)
            xp.add(y[..., :ow], b[:, None, None], out=out[n, :, r0:r1])
    return out


def _backward_in_bands(dout, x, w, s, p, param_grads):
    """The backward pass band by band: each band's columns give its share of dW, and its
    column gradients go back onto the input rows it read (bands overlap by K - stride
    input rows, so they are added, not assigned)."""
    xp = get_array_module(dout)
    F, C, K, _ = w.shape
    N, _, H, W = x.shape
    _, _, oh, ow = dout.shape
    x_pad = pad_input(x, p, p)
    dx_pad = xp.zeros(x_pad.shape, dtype=dout.dtype)
    dw = xp.zeros((F, C * K * K), dtype=dout.dtype) if param_grads else None
    rows = rows_per_band(x, K, s, p)
    cw = col_width(W, K, s, p)
    for n in range(N):
        for r0 in range(0, oh, rows):
            r1 = min(oh, r0 + rows)
            # the input rows these outputs read
            band = slice(r0 * s, (r1 - 1) * s + K)
            # junk columns get zero gradient
            d = xp.zeros((F, r1 - r0, cw), dtype=dout.dtype)
            d[..., :ow] = dout[n, :, r0:r1]
            d = d.reshape(F, -1)                                         # (F, rows*CW)
            if param_grads:
                dw += d @ wide_im2col(x_pad[n:n + 1, :, band], K, K, s, 0).T
            shape = (1, C, band.stop - band.start, x_pad.shape[3])
            dx_pad[n:n + 1, :, band] += wide_col2im(w.reshape(F, -1).T @ d, shape, K, K, s, 0)
    dx = dx_pad[:, :, p:p + H, p:p + W]
    if not param_grads:
        return dx, {}
    return dx, {"weight": dw.reshape(w.shape), "bias": dout.sum(axis=(0, 2, 3))}
