"""Layers: small classes with a forward pass and a hand-written backward pass.

Every layer follows one contract (as in CS231n's ``layers.py``):

    out, cache = layer.forward(x)
    dx, grads = layer.backward(dout, cache)     # grads: {"weight": dw, "bias": db}

The cache is returned, never stored on the layer, so any number of forward passes
can stay alive at once. Layers with parameters keep them in ``self.params``
(names as in PyTorch, so checkpoints map one to one). ReLU's backward takes the
backward rule as an argument: backprop, deconvnet or guided.
"""
import numpy as np

from .backend import asarray, get_array_module, random_generator
from .im2col import col2im, col_width, im2col, out_size, pad_input, window_offsets

RELU_RULES = ("backprop", "deconvnet", "guided")


class ShapeError(ValueError):
    """An input has the wrong rank, channel count or size for a layer."""


def _expect_nchw(x, channels, what):
    """Raise ShapeError unless ``x`` is (N, channels, H, W)."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ShapeError(f"{what} expects input of shape (N, {channels}, H, W), "
                         f"got {tuple(x.shape)}")


def expect_same_device(x, w, what):
    """Raise TypeError unless ``x`` lives where the parameter ``w`` does (host or GPU).

    Without it, a NumPy input meets CuPy weights deep inside a product and fails
    with CuPy's bare "Unsupported type".
    """
    have, want = get_array_module(x), get_array_module(w)
    if have is not want:
        raise TypeError(f"{what}: the input is a {have.__name__} array but the parameters live in "
                        f"{want.__name__}; move it with tinycnn.backend.asarray(x)")


class Layer:
    """Base class: parameters live in ``self.params``; no other state changes in forward."""
    params = {}

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout, cache):
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self):
        return ""


# im2col columns are built for a few images at a time, about this many bytes. On a CPU:
# small enough to stay in cache and below glibc's 32 MB mmap threshold (so the buffer
# is reused rather than freshly zeroed by the kernel on every call). On a GPU: big
# enough that a whole batch is one product, since there each chunk costs a dozen
# kernel launches and CuPy's memory pool reuses buffers anyway.
CHUNK_BYTES = {"numpy": 8 * 2**20, "cupy": 512 * 2**20}


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as in every deep-learning library).

    x:    (N, C, H, W)
    w:    (F, C, K, K)     b: (F,)
    out:  (N, F, H', W')   H' = 1 + (H + 2 * padding - K) // stride, likewise W'

        out[n, f, y, x] = b[f] + sum_{c,i,j} w[f, c, i, j] * x_pad[n, c, y*s + i, x*s + j]

    A few images at a time are one matrix product, W (F, C*K*K) @ cols (C*K*K, n*H'*W'),
    over their im2col columns (see ``im2col.py``); the cache keeps only x, and backward
    rebuilds the columns, so memory stays at the size of the activations.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 *, seed=0, dtype=np.float32):
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        fan_in = in_channels * kernel_size * kernel_size
        rng = np.random.default_rng(seed)
        # He et al. 2015: std sqrt(2 / fan_in) keeps ReLU activations at unit scale.
        w = rng.normal(0.0, np.sqrt(2.0 / fan_in),
                       (out_channels, in_channels, kernel_size, kernel_size))
        self.params = {"weight": asarray(w, dtype), "bias": asarray(np.zeros(out_channels), dtype)}

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")

    def _pointwise(self):
        return self.kernel_size == 1 and self.stride == 1 and self.padding == 0

    def _columns(self, x):
        """(cols, CW): im2col of a few images, (C*K*K, n*H'*CW)."""
        K, s, p = self.kernel_size, self.stride, self.padding
        n, C, H, W = x.shape
        return im2col(x, K, K, s, p), col_width(W, K, s, p)

    def _chunks(self, x_shape, xp):
        """Slices of the batch, a few images each, that keep im2col's buffer within
        CHUNK_BYTES of the backend ``xp``."""
        N, C, H, W = x_shape
        K, s, p = self.kernel_size, self.stride, self.padding
        per_image = C * K * K * out_size(H, K, s, p) * col_width(W, K, s, p) * 4
        step = max(1, CHUNK_BYTES[xp.__name__] // per_image)
        return [slice(n, n + step) for n in range(0, N, step)]

    def _rows_per_band(self, x_shape, xp):
        """Output rows whose columns fit in CHUNK_BYTES (at least 1)."""
        _, C, _, W = x_shape
        K, s, p = self.kernel_size, self.stride, self.padding
        return max(1, CHUNK_BYTES[xp.__name__] // (C * K * K * col_width(W, K, s, p) * 4))

    def _forward_in_bands(self, x, out):
        """The forward pass when one image's columns alone exceed CHUNK_BYTES (a 9x9 conv over
        a 256 x 256 image: 340 MB): a band of output rows at a time, each band's columns
        built from the input rows it reads. The columns then stay in cache between im2col
        writing them and the product reading them; built whole, copying them took as long
        as the product (bench/RESULTS.md)."""
        xp = get_array_module(x)
        w, b = self.params["weight"], self.params["bias"]
        F, C, K, _ = w.shape
        s, p = self.stride, self.padding
        _, _, oh, ow = out.shape
        x_pad = pad_input(x, p, p)                                      # the band's im2col pads nothing
        rows = self._rows_per_band(x.shape, xp)
        for n in range(x.shape[0]):
            for r0 in range(0, oh, rows):
                r1 = min(oh, r0 + rows)
                band = x_pad[n:n + 1, :, r0 * s:(r1 - 1) * s + K]       # the input rows output rows r0..r1 read
                cols = im2col(band, K, K, s, 0)                         # (C*K*K, (r1-r0)*CW)
                y = (w.reshape(F, -1) @ cols).reshape(F, r1 - r0, -1)   # (F, rows, CW)
                xp.add(y[..., :ow], b[:, None, None], out=out[n, :, r0:r1])
        return out

    def _backward_in_bands(self, dout, x, param_grads):
        """The backward pass band by band, as _forward_in_bands: each band's columns give its
        share of dW, and its column gradients go back onto the input rows it read (bands
        overlap by K - stride input rows, so they are added, not assigned)."""
        xp = get_array_module(dout)
        w = self.params["weight"]
        F, C, K, _ = w.shape
        s, p = self.stride, self.padding
        N, _, H, W = x.shape
        _, _, oh, ow = dout.shape
        x_pad = pad_input(x, p, p)
        dx_pad = xp.zeros(x_pad.shape, dtype=dout.dtype)
        dw = xp.zeros((F, C * K * K), dtype=dout.dtype) if param_grads else None
        rows = self._rows_per_band(x.shape, xp)
        cw = col_width(W, K, s, p)
        for n in range(N):
            for r0 in range(0, oh, rows):
                r1 = min(oh, r0 + rows)
                band = slice(r0 * s, (r1 - 1) * s + K)                  # the input rows these outputs read
                d = xp.zeros((F, r1 - r0, cw), dtype=dout.dtype)        # junk columns get zero gradient
                d[..., :ow] = dout[n, :, r0:r1]
                d = d.reshape(F, -1)                                     # (F, rows*CW)
                if param_grads:
                    dw += d @ im2col(x_pad[n:n + 1, :, band], K, K, s, 0).T
                dx_pad[n:n + 1, :, band] += col2im(w.reshape(F, -1).T @ d, (1, C, band.stop - band.start,
                                                                           x_pad.shape[3]), K, K, s, 0)
        dx = dx_pad[:, :, p:p + H, p:p + W]
        if not param_grads:
            return dx, {}
        return dx, {"weight": dw.reshape(w.shape), "bias": dout.sum(axis=(0, 2, 3))}

    def forward(self, x):
        _expect_nchw(x, self.in_channels, "Conv2d")
        w, b = self.params["weight"], self.params["bias"]
        expect_same_device(x, w, "Conv2d")
        xp = get_array_module(x)
        N, C, H, W = x.shape
        F, _, K, _ = w.shape
        oh, ow = out_size(H, K, self.stride, self.padding), out_size(W, K, self.stride, self.padding)
        if self._pointwise():
            # a 1x1 conv is one product per image, W (F, C) @ x_n (C, H*W), read in place:
            # matmul batches over n, so neither x nor out is transposed into (C, N*H*W)
            out = w.reshape(F, C) @ x.reshape(N, C, H * W)                # (N, F, H*W)
            out += b[:, None]
            return out.reshape(N, F, H, W), x
        out = xp.empty((N, F, oh, ow), dtype=xp.result_type(x, w))
        if self._rows_per_band(x.shape, xp) < oh:
            return self._forward_in_bands(x, out), x
        for chunk in self._chunks(x.shape, xp):
            cols, cw = self._columns(x[chunk])                          # (C*K*K, n*H'*CW)
            y = (w.reshape(F, -1) @ cols).reshape(F, -1, oh, cw)        # (F, n, H', CW): one product
            xp.add(y[..., :ow].transpose(1, 0, 2, 3), b[:, None, None], out=out[chunk])
        return out, x

    def backward(self, dout, cache, param_grads=True):
        """dout: (N, F, H', W') -> dx: (N, C, H, W), grads {"weight": (F, C, K, K), "bias": (F,)}.

        With param_grads=False the grads are {} and neither dW's product nor the
        columns it needs are computed: dx needs only W (what every technique in vis/ asks).
        """
        xp = get_array_module(dout)
        x = cache
        w = self.params["weight"]
        F, C, K, _ = w.shape
        N, _, H, W = x.shape
        _, _, oh, ow = dout.shape
        if self._pointwise():      # per image: dx_n = W^T dout_n, dW = sum_n dout_n x_n^T
            d = dout.reshape(N, F, H * W)
            dx = (w.reshape(F, C).T @ d).reshape(N, C, H, W)
            if not param_grads:
                return dx, {}
            dw = (d @ x.reshape(N, C, H * W).transpose(0, 2, 1)).sum(axis=0)   # (F, C)
            return dx, {"weight": dw.reshape(w.shape), "bias": dout.sum(axis=(0, 2, 3))}
        if self._rows_per_band(x.shape, xp) < oh:
            return self._backward_in_bands(dout, x, param_grads)
        cw = col_width(W, K, self.stride, self.padding)
        dw = xp.zeros((F, C * K * K), dtype=dout.dtype) if param_grads else None
        dx = xp.empty(x.shape, dtype=dout.dtype)
        for chunk in self._chunks(x.shape, xp):
            n = x[chunk].shape[0]
            d = xp.zeros((F, n, oh, cw), dtype=dout.dtype)              # junk columns get zero gradient
            d[..., :ow] = dout[chunk].transpose(1, 0, 2, 3)
            d = d.reshape(F, n * oh * cw)                                # (F, n*H'*CW)
            if param_grads:
                cols, _ = self._columns(x[chunk])                       # rebuilt, not cached
                dw += d @ cols.T
            dcols = w.reshape(F, -1).T @ d                               # (C*K*K, n*H'*CW)
            dx[chunk] = col2im(dcols, (n, C, H, W), K, K, self.stride, self.padding)
        if not param_grads:
            return dx, {}
        return dx, {"weight": dw.reshape(w.shape), "bias": dout.sum(axis=(0, 2, 3))}


class ReLU(Layer):
    """out = max(x, 0), with three backward rules (Springenberg et al. 2015, fig. 1):

        backprop:  dx = (x > 0) * dout                  the true gradient
        deconvnet: dx = (dout > 0) * dout               Zeiler & Fergus 2014
        guided:    dx = (x > 0) * (dout > 0) * dout     guided backpropagation
    """

    def forward(self, x):
        return get_array_module(x).maximum(x, 0), x > 0

    def backward(self, dout, cache, rule="backprop"):
        positive_x = cache
        if rule == "backprop":
            dx = positive_x * dout
        elif rule == "deconvnet":
            dx = (dout > 0) * dout
        elif rule == "guided":
            dx = positive_x * (dout > 0) * dout
        else:
            raise ValueError(f"unknown ReLU backward rule {rule!r}; choose one of {', '.join(RELU_RULES)}")
        return dx.astype(dout.dtype, copy=False), {}


class _Pool2d(Layer):
    """Shared geometry of max and average pooling (square windows)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        if padding > kernel_size // 2:
            raise ValueError(f"padding {padding} must be at most half the kernel size {kernel_size}")
        self.kernel_size, self.stride = kernel_size, stride or kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, ceil_mode={self.ceil_mode}")

    def _geometry(self, H, W):
        """Output size and the extra bottom/right padding ceil_mode needs."""
        k, s, p = self.kernel_size, self.stride, self.padding
        oh, ow = (out_size(n, k, s, p, self.ceil_mode) for n in (H, W))
        extra_h = max(0, (oh - 1) * s + k - (H + 2 * p))
        extra_w = max(0, (ow - 1) * s + k - (W + 2 * p))
        return oh, ow, extra_h, extra_w

    def _offsets(self, oh, ow):
        return window_offsets(self.kernel_size, self.kernel_size, self.stride, oh, ow)

    def _spread(self, x_shape, dtype, xp, grad_at_offset):
        """Adjoint of reading the windows: add grad_at_offset(k), (N, C, H', W'), onto
        the input cells that kernel offset k read; overlapping windows accumulate."""
        N, C, H, W = x_shape
        p = self.padding
        oh, ow, eh, ew = self._geometry(H, W)
        dx_pad = xp.zeros((N, C, H + 2 * p + eh, W + 2 * p + ew), dtype=dtype)
        s = self.stride
        for k, (i, j, rows, cols) in enumerate(self._offsets(oh, ow)):
            if i < s and j < s:
                # the offsets of one stride x stride corner write disjoint cells (y*s + i, x*s + j)
                # that no other offset writes before them: a copy, not an add (a strided add
                # reads the slice back as well)
                dx_pad[:, :, rows, cols] = grad_at_offset(k)
            else:
                dx_pad[:, :, rows, cols] += grad_at_offset(k)
        return dx_pad[:, :, p:p + H, p:p + W]

    def _check(self, x):
        if x.ndim != 4:
            raise ShapeError(f"{type(self).__name__} expects input of shape (N, C, H, W), "
                             f"got {tuple(x.shape)}")


class MaxPool2d(_Pool2d):
    """Max pooling over K x K windows.

    x:   (N, C, H, W)
    out: (N, C, H', W')    H' = 1 + floor((H + 2p - K) / s)   (ceil with ceil_mode)

    The window's maximum passes the whole gradient back; on a tie the first
    maximum in row-major order wins (as in PyTorch), so routing is deterministic.
    """

    def forward(self, x):
        self._check(x)
        xp = get_array_module(x)
        N, C, H, W = x.shape
        k, s = self.kernel_size, self.stride
        oh, ow, eh, ew = self._geometry(H, W)
        x_pad = pad_input(x, self.padding, self.padding, -np.inf, eh, ew)
        # a K x K max is a max over K columns, then over K rows: 2(K-1) passes, not K*K.
        # Non-overlapping windows (stride = K) as a reshape (N, C, H', K, W', K) reduced over
        # axes 3 and 5 measured 6x slower in NumPy (strided reductions), so they go this way too
        row_max = x_pad[:, :, :, 0:s * ow:s].copy()                  # (N, C, Hp, W')
        for j in range(1, k):
            xp.maximum(row_max, x_pad[:, :, :, j:j + s * ow:s], out=row_max)
        out = row_max[:, :, 0:s * oh:s].copy()                        # (N, C, H', W')
        for i in range(1, k):
            xp.maximum(out, row_max[:, :, i:i + s * oh:s], out=out)
        # which offset of each window holds its maximum (for backward); on ties the first
        # in row-major order: an offset counts only where no earlier one was found. Only the
        # comparison reads floats; the rest is integer arithmetic (bytes below 128 offsets), vectorised
        # (about twice as fast as an xp.where(equal, k, winner) per offset: bench/RESULTS.md)
        dtype = np.int8 if k * k < 128 else np.int32
        winner = xp.zeros(out.shape, dtype=dtype)
        found = xp.zeros(out.shape, dtype=bool)
        for n, (_, _, rows, cols) in enumerate(self._offsets(oh, ow)):
            equal = x_pad[:, :, rows, cols] == out
            if n:
                winner += (equal & ~found) * dtype(n)
            found |= equal
        return out, (x.shape, winner)

    def backward(self, dout, cache):
        x_shape, winner = cache
        xp = get_array_module(dout)
        return self._spread(x_shape, dout.dtype, xp, lambda k: (winner == k) * dout), {}


class AvgPool2d(_Pool2d):
    """Average pooling over K x K windows (shapes as MaxPool2d).

    The divisor follows PyTorch: with ``count_include_pad`` the zero padding counts
    but the extra cells ceil_mode adds do not; without it only real pixels count.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = count_include_pad

    def _divisor(self, xp, dtype, H, W):
        """(H', W'): how many cells each window averages over."""
        p = self.padding
        oh, ow, eh, ew = self._geometry(H, W)
        counted = xp.ones((1, 1, H, W), dtype=dtype)
        counted = pad_input(counted, p, p, 1.0 if self.count_include_pad else 0.0)
        counted = pad_input(counted, 0, 0, 0.0, eh, ew)
        total = xp.zeros((oh, ow), dtype=dtype)
        for i, j, rows, cols in self._offsets(oh, ow):
            total += counted[0, 0, rows, cols]
        return total

    def forward(self, x):
        self._check(x)
        xp = get_array_module(x)
        N, C, H, W = x.shape
        oh, ow, eh, ew = self._geometry(H, W)
        x_pad = pad_input(x, self.padding, self.padding, 0.0, eh, ew)
        out = xp.zeros((N, C, oh, ow), dtype=x.dtype)
        for i, j, rows, cols in self._offsets(oh, ow):
            out += x_pad[:, :, rows, cols]
        divisor = self._divisor(xp, x.dtype, H, W)
        return out / divisor, (x.shape, divisor)

    def backward(self, dout, cache):
        x_shape, divisor = cache
        share = dout / divisor                  # every cell of a window gets an equal share
        return self._spread(x_shape, dout.dtype, get_array_module(dout), lambda k: share), {}


class GlobalAvgPool2d(Layer):
    """Mean over all positions: x (N, C, H, W) -> out (N, C)."""

    def forward(self, x):
        if x.ndim != 4:
            raise ShapeError(f"GlobalAvgPool2d expects input of shape (N, C, H, W), got {tuple(x.shape)}")
        return x.mean(axis=(2, 3)), x.shape

    def backward(self, dout, cache):
        xp = get_array_module(dout)
        N, C, H, W = cache
        # a copy: broadcast_to is a read-only view, and callers may update dx in place
        return xp.broadcast_to(dout[:, :, None, None] / (H * W), cache).copy(), {}


class Linear(Layer):
    """Fully connected: out = x @ w.T + b.

    x: (N, D)   w: (M, D)   b: (M,)   out: (N, M)
    """

    def __init__(self, in_features, out_features, *, seed=0, dtype=np.float32):
        self.in_features, self.out_features = in_features, out_features
        rng = np.random.default_rng(seed)
        w = rng.normal(0.0, np.sqrt(2.0 / in_features), (out_features, in_features))  # He init
        self.params = {"weight": asarray(w, dtype), "bias": asarray(np.zeros(out_features), dtype)}

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}"

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ShapeError(f"Linear expects input of shape (N, {self.in_features}), got {tuple(x.shape)}"
                             + (" (add a Flatten before it)" if x.ndim > 2 else ""))
        expect_same_device(x, self.params["weight"], "Linear")
        return x @ self.params["weight"].T + self.params["bias"], x

    def backward(self, dout, cache, param_grads=True):
        """dout: (N, M) -> dx: (N, D), grads {"weight": (M, D), "bias": (M,)} ({} without param_grads)."""
        x = cache
        w = self.params["weight"]
        if not param_grads:
            return dout @ w, {}
        return dout @ w, {"weight": dout.T @ x, "bias": dout.sum(axis=0)}


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W)."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1), x.shape

    def backward(self, dout, cache):
        return dout.reshape(cache), {}


class Dropout(Layer):
    """Inverted dropout (Srivastava et al. 2014): in training, zero each unit with
    probability p and scale the rest by 1 / (1 - p); in evaluation, the identity.

    ``training`` is switched by ``Network.train()`` / ``Network.eval()``; the mask is
    drawn from a generator seeded with ``seed``, so a run is reproducible.
    """

    def __init__(self, p=0.5, *, seed=0):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p, self.seed, self.training = p, seed, False
        self._rngs = {}  # one generator per array library, created on first use

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x, None
        xp = get_array_module(x)
        if xp.__name__ not in self._rngs:
            self._rngs[xp.__name__] = random_generator(self.seed, like=x)
        mask = (self._rngs[xp.__name__].random(x.shape) >= self.p).astype(x.dtype) / (1.0 - self.p)
        return x * mask, mask

    def backward(self, dout, cache):
        mask = cache
        return (dout if mask is None else dout * mask), {}


# -- the layers of an image-to-image network (fast style transfer, Johnson et al. 2016) ----------

class InstanceNorm2d(Layer):
    """Instance normalisation (Ulyanov, Vedaldi & Lempitsky 2016, "Instance Normalization:
    The Missing Ingredient for Fast Stylization"): each image's each channel is
    normalised over its own pixels, so the contrast of the content image does not
    carry into the stylised one.

    x: (N, C, H, W)   weight, bias: (C,)   out: (N, C, H, W)

        mu, sigma^2 = mean and (biased) variance of x[n, c] over H, W
        xhat = (x - mu) / sqrt(sigma^2 + eps),   out = weight[c] * xhat + bias[c]

    eps defaults to PyTorch's 1e-5. There are no running statistics: training and
    evaluation normalise the same way (PyTorch's track_running_stats=False).
    """

    def __init__(self, num_features, eps=1e-5, affine=True, *, dtype=np.float32):
        self.num_features, self.eps, self.affine = num_features, eps, affine
        if affine:  # the identity to start with: weight ones, bias zeros (as PyTorch)
            self.params = {"weight": asarray(np.ones(num_features), dtype),
                           "bias": asarray(np.zeros(num_features), dtype)}

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, affine={self.affine}"

    def forward(self, x):
        _expect_nchw(x, self.num_features, "InstanceNorm2d")
        N, C, H, W = x.shape
        if H * W < 2:  # one pixel normalises to 0 whatever it was (PyTorch refuses it too)
            raise ShapeError(f"InstanceNorm2d needs more than one pixel per channel, got {tuple(x.shape)}")
        xp = get_array_module(x)
        mean = x.mean(axis=(2, 3), keepdims=True)                           # (N, C, 1, 1)
        inv_std = 1.0 / xp.sqrt(x.var(axis=(2, 3), keepdims=True) + self.eps)
        xhat = (x - mean) * inv_std
        if not self.affine:
            return xhat, (xhat, inv_std)
        w, b = self.params["weight"], self.params["bias"]
        expect_same_device(x, w, "InstanceNorm2d")
        return xhat * w[:, None, None] + b[:, None, None], (xhat, inv_std)

    def backward(self, dout, cache, param_grads=True):
        """dout: (N, C, H, W) -> dx: (N, C, H, W), grads {"weight": (C,), "bias": (C,)}.

        With m = mean over H, W of one image's channel, xhat's gradient dxhat gives

            dx = (dxhat - m(dxhat) - xhat * m(dxhat * xhat)) / sigma

        the two means being what mu and sigma, which depend on every pixel, send back.
        """
        xhat, inv_std = cache
        dxhat = dout * self.params["weight"][:, None, None] if self.affine else dout
        dx = inv_std * (dxhat - dxhat.mean(axis=(2, 3), keepdims=True)
                        - xhat * (dxhat * xhat).mean(axis=(2, 3), keepdims=True))
        if not (self.affine and param_grads):
            return dx, {}
        return dx, {"weight": (dout * xhat).sum(axis=(0, 2, 3)), "bias": dout.sum(axis=(0, 2, 3))}


class Upsample2d(Layer):
    """Nearest-neighbour upsampling by an integer factor s: every pixel becomes an s x s block.

    x: (N, C, H, W)   out: (N, C, s*H, s*W)   out[n, c, y, x] = x[n, c, y // s, x // s]

    A decoder upsamples with this followed by a convolution rather than with a transposed
    convolution: a transposed convolution whose kernel size is not a multiple of its
    stride covers some output pixels more often than others, which paints a checkerboard
    onto the image; nearest-neighbour copies treat every pixel alike (Odena, Dumoulin &
    Olah 2016, "Deconvolution and Checkerboard Artifacts",
    https://distill.pub/2016/deconv-checkerboard/). Backward sums each s x s block.
    """

    def __init__(self, scale=2):
        if int(scale) != scale or scale < 1:
            raise ValueError(f"the upsampling scale must be a positive integer, got {scale}")
        self.scale = int(scale)

    def extra_repr(self):
        return f"scale={self.scale}"

    def forward(self, x):
        if x.ndim != 4:
            raise ShapeError(f"Upsample2d expects input of shape (N, C, H, W), got {tuple(x.shape)}")
        s = self.scale
        return x.repeat(s, axis=2).repeat(s, axis=3), x.shape

    def backward(self, dout, cache):
        N, C, H, W = cache
        s = self.scale
        return dout.reshape(N, C, H, s, W, s).sum(axis=(3, 5)), {}       # (N, C, H, W): block sums


class ReflectionPad2d(Layer):
    """Pad H and W by p on each side with the mirror image of the border (the edge
    pixel itself is not repeated: [a b c d] -> [c b | a b c d | c b] for p = 2), as
    torch.nn.ReflectionPad2d. Johnson et al. 2016 pad so that the borders of a
    stylised image look like its inside, which zero padding would darken.

    x: (N, C, H, W)   out: (N, C, H + 2p, W + 2p)   requires p < H and p < W
    """

    def __init__(self, padding):
        self.padding = padding

    def extra_repr(self):
        return f"{self.padding}"

    def forward(self, x):
        p = self.padding
        if x.ndim != 4 or p >= min(x.shape[2], x.shape[3]):
            raise ShapeError(f"ReflectionPad2d({p}) expects input of shape (N, C, H, W) with H, W > {p}, "
                             f"got {tuple(x.shape)}")
        xp = get_array_module(x)
        return xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="reflect"), x.shape

    def backward(self, dout, cache):
        """dout: (N, C, H + 2p, W + 2p) -> dx: (N, C, H, W): each pixel gets its own
        gradient plus those of its mirror images, folded back over W, then over H."""
        dx = _unreflect(dout, self.padding)                                  # (N, C, H + 2p, W)
        return _unreflect(dx.swapaxes(2, 3), self.padding).swapaxes(2, 3), {}


def _unreflect(d, p):
    """Adjoint of reflection padding of the last axis: (..., L + 2p) -> (..., L).

    Padded index p - 1 - k (left) mirrors pixel 1 + k and padded index p + L + k (right)
    mirrors pixel L - 2 - k, so each side, flipped, adds onto a slice: no scatter-add.
    """
    xp = get_array_module(d)
    L = d.shape[-1] - 2 * p
    dx = d[..., p:p + L].copy()
    dx[..., 1:p + 1] += xp.flip(d[..., :p], axis=-1)
    dx[..., L - 1 - p:L - 1] += xp.flip(d[..., p + L:], axis=-1)
    return dx
