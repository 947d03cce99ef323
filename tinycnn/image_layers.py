"""The layers of an image-to-image network: what fast style transfer's transform network
(Johnson, Alahi & Fei-Fei 2016) adds to ``layers.py``, with the same contract:

    out, cache = layer.forward(x)
    dx, grads = layer.backward(dout, cache)

Read these before ``vis/fast_style.py``; no other technique needs them.
"""
import numpy as np

from .backend import asarray, get_array_module
from .io.arrays import expect_same_device
from .layers import Layer, ShapeError, expect_nchw


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
        expect_nchw(x, self.num_features, "InstanceNorm2d")
        N, C, H, W = x.shape
        if H * W < 2:  # one pixel normalises to 0 whatever it was (PyTorch refuses it too)
            raise ShapeError(
                f"InstanceNorm2d needs more than one pixel per channel, got {tuple(x.shape)}"
            )
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
            raise ShapeError(
                f"Upsample2d expects input of shape (N, C, H, W), got {tuple(x.shape)}"
            )
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
            raise ShapeError(
                f"ReflectionPad2d({p}) expects input of shape (N, C, H, W) with H, W > {p}, "
                f"got {tuple(x.shape)}"
            )
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
