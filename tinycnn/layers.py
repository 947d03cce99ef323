"""Layers: small classes with a forward pass and a hand-written backward pass.

Every layer follows one contract (as in CS231n's ``layers.py``):

    out, cache = layer.forward(x)
    dx, grads = layer.backward(dout, cache)     # grads: {"weight": dw, "bias": db}

The cache is returned, never stored on the layer, so any number of forward passes
can stay alive at once. Layers with parameters keep them in ``self.params``
(names as in PyTorch, so checkpoints map one to one). ReLU's backward takes the
backward rule as an argument: backprop, deconvnet or guided.

Where ``tinycnn/engine`` computes the same numbers faster, a layer hands over in one
line (``if engine.enabled(): ...``); ``TINYCNN_ENGINE=0`` runs the clear path alone.
The layers of an image-to-image network (fast style transfer) are in image_layers.py.
"""
import numpy as np

from . import engine
from .backend import asarray, get_array_module, random_generator
from .io.arrays import expect_same_device
from .im2col import col2im, im2col, out_size, pad_input, window_offsets

RELU_RULES = ("backprop", "deconvnet", "guided")


class ShapeError(ValueError):
    """An input has the wrong rank, channel count or size for a layer."""


def expect_nchw(x, channels, what):
    """Raise ShapeError unless ``x`` is (N, channels, H, W)."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ShapeError(f"{what} expects input of shape (N, {channels}, H, W), "
                         f"got {tuple(x.shape)}")


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


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as in every deep-learning library).

    x:    (N, C, H, W)
    w:    (F, C, K, K)     b: (F,)
    out:  (N, F, H', W')   H' = 1 + (H + 2 * padding - K) // stride, likewise W'

        out[n, f, y, x] = b[f] + sum_{c,i,j} w[f, c, i, j] * x_pad[n, c, y*s + i, x*s + j]

    With every receptive field laid out as a column (``im2col.py``) the sum is one
    matrix product, W (F, C*K*K) @ cols (C*K*K, N*H'*W'). Backward is two products:
    dW = dout @ cols^T and dcols = W^T @ dout, and col2im adds dcols back onto the
    pixels they were read from. The cache keeps only x; backward rebuilds the columns.
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

    def forward(self, x):
        expect_nchw(x, self.in_channels, "Conv2d")
        w, b = self.params["weight"], self.params["bias"]
        expect_same_device(x, w, "Conv2d")
        s, p = self.stride, self.padding
        if engine.enabled():        # the same numbers: tinycnn/engine/conv.py
            return engine.conv2d_forward(x, w, b, s, p), x
        F, _, K, _ = w.shape
        oh, ow = out_size(x.shape[2], K, s, p), out_size(x.shape[3], K, s, p)
        cols = im2col(x, K, K, s, p)                                    # (C*K*K, N*H'*W')
        out = w.reshape(F, -1) @ cols + b[:, None]                      # (F, N*H'*W')
        return out.reshape(F, -1, oh, ow).transpose(1, 0, 2, 3), x

    def backward(self, dout, cache, param_grads=True):
        """dout: (N, F, H', W') -> dx: (N, C, H, W), grads {"weight": (F, C, K, K), "bias": (F,)}.

        With param_grads=False the grads are {} and neither dW's product nor the
        columns it needs are computed: dx needs only W (what every technique in vis/ asks).
        """
        x, w = cache, self.params["weight"]
        s, p = self.stride, self.padding
        if engine.enabled():
            return engine.conv2d_backward(dout, x, w, s, p, param_grads)
        F, _, K, _ = w.shape
        d = dout.transpose(1, 0, 2, 3).reshape(F, -1)                   # (F, N*H'*W')
        dx = col2im(w.reshape(F, -1).T @ d, x.shape, K, K, s, p)        # (N, C, H, W)
        if not param_grads:
            return dx, {}
        dw = d @ im2col(x, K, K, s, p).T                                # (F, C*K*K)
        return dx, {"weight": dw.reshape(w.shape), "bias": dout.sum(axis=(0, 2, 3))}


class ReLU(Layer):
    """out = max(x, 0), with three backward rules (Springenberg et al. 2015, fig. 1):

        backprop:  dx = (x > 0) * dout                  the true gradient
        deconvnet: dx = (dout > 0) * dout               Zeiler & Fergus 2014
        guided:    dx = (x > 0) * (dout > 0) * dout     guided backpropagation
    """

    def forward(self, x):
        if engine.enabled() and engine.kernels.active(x):
            return engine.kernels.relu_forward(x)                   # one launch on a GPU
        return get_array_module(x).maximum(x, 0), x > 0

    def backward(self, dout, cache, rule="backprop"):
        positive_x = cache
        if engine.enabled() and rule in RELU_RULES and engine.kernels.active(dout):
            return engine.kernels.relu_backward(dout, positive_x, rule), {}   # one launch on a GPU
        if rule == "backprop":
            dx = positive_x * dout
        elif rule == "deconvnet":
            dx = (dout > 0) * dout
        elif rule == "guided":
            dx = positive_x * (dout > 0) * dout
        else:
            raise ValueError(f"unknown ReLU backward rule {rule!r}; "
                             f"choose one of {', '.join(RELU_RULES)}")
        return dx.astype(dout.dtype, copy=False), {}


class _Pool2d(Layer):
    """Shared geometry of max and average pooling (square windows)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        if padding > kernel_size // 2:
            raise ValueError(f"padding {padding} must be at most half the kernel size "
                             f"{kernel_size}")
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
        for k, (_, _, rows, cols) in enumerate(self._offsets(oh, ow)):
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
        oh, ow, eh, ew = self._geometry(*x.shape[2:])
        x_pad = pad_input(x, self.padding, self.padding, -np.inf, eh, ew)
        if engine.enabled():        # the same maximum and winner: tinycnn/engine/pool.py
            out, winner = engine.max_pool(x_pad, self.kernel_size, self.stride, oh, ow)
            return out, (winner, x.shape)
        windows = xp.stack([x_pad[:, :, rows, cols] for *_, rows, cols in self._offsets(oh, ow)])
        # (K*K, N, C, H', W'); argmax picks the first maximum, offset k = i*K + j
        return windows.max(axis=0), (windows.argmax(axis=0), x.shape)

    def backward(self, dout, cache):
        winner, x_shape = cache
        if engine.enabled():        # the same gradient, some sums copies: tinycnn/engine/pool.py
            k, s, p = self.kernel_size, self.stride, self.padding
            return engine.max_pool_backward(dout, winner, x_shape, k, s, p), {}
        xp = get_array_module(dout)
        return self._spread(x_shape, dout.dtype, xp, lambda k: (winner == k) * dout), {}


class AvgPool2d(_Pool2d):
    """Average pooling over K x K windows (shapes as MaxPool2d).

    The divisor follows PyTorch: with ``count_include_pad`` the zero padding counts
    but the extra cells ceil_mode adds do not; without it only real pixels count.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
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
            raise ShapeError("GlobalAvgPool2d expects input of shape (N, C, H, W), "
                             f"got {tuple(x.shape)}")
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
            raise ShapeError(f"Linear expects input of shape (N, {self.in_features}), "
                             f"got {tuple(x.shape)}"
                             + (" (add a Flatten before it)" if x.ndim > 2 else ""))
        expect_same_device(x, self.params["weight"], "Linear")
        return x @ self.params["weight"].T + self.params["bias"], x

    def backward(self, dout, cache, param_grads=True):
        """dout: (N, M) -> dx: (N, D), grads {"weight": (M, D), "bias": (M,)}
        ({} without param_grads)."""
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
