"""What the techniques differentiate and optimise: targets, objectives, loss terms.

Every optimisation-based technique is objective + driver (``vis/_optimize.py``):
an objective maps an image x to (loss, dloss/dx), the loss to be *minimised*
(ascent techniques return minus what they maximise). The gradient comes from one
forward and one backward pass of the network, seeded at a layer by dL/d(output):

    select(out, c, ...)       the upstream gradient that picks a class score, a
                              channel (all positions, or its mean) or one unit
    score_gradient            dS_c/dx for a batch            (saliency, attribution, fooling)
    shifted_gradient          the same for x moved a few pixels: a net's stride grid averages
                              out over the shifts            (saliency, SmoothGrad)
    noisy_mean                a map averaged over noisy copies of x  (SmoothGrad)
    score_objective           -S(x) + l2 ||x||^2             (class / neuron visualisation)
    dream_objective           -1/2 ||a(x)||^2                (DeepDream)
    synthesis_objective       content + style (Gram) + TV + alpha-norm terms
                              (style transfer, texture synthesis, feature inversion)

The loss terms below it (Gram matrix, content, style, total variation,
alpha-norm) each return (loss, gradient) and are checked by finite differences in
tests/test_vis_objectives.py. Losses are 0-d float64 arrays where the features live
(on a GPU: on the device), so summing the terms of a step needs no
synchronisation; the driver reads them back. A term with weight 0 costs nothing: (0.0, 0).
"""
import numbers
import numpy as np

from tinycnn import engine
from tinycnn.backend import get_array_module, random_generator


# -- targets: the upstream gradient that selects what to explain or maximise -------------
def select(out, channel, where="all", scale=1.0):
    """dout, shaped like ``out``, that is ``scale`` on the selected entries and 0 elsewhere,
    so that <out, dout> is the selected score (or scale times its sum).

    out:     (N, K) scores or features, or (N, C, H, W) activations
    channel: the class or channel: one int for every image, or a sequence, one per image
    where:   for (N, C, H, W) only: "all" its every position (scale 1 / (H W): the
             channel's mean), (y, x) one unit, "strongest" each image's largest
             activation of the channel. A fully connected layer's unit is its channel.
    """
    xp = get_array_module(out)
    N = out.shape[0]
    if isinstance(channel, numbers.Integral):      # the same for every image: no index array to copy
        rows = slice(None)
    else:
        rows, channel = xp.arange(N), xp.asarray(channel)
    dout = xp.zeros(out.shape, dtype=out.dtype)
    if out.ndim == 2 or where == "all":
        dout[rows, channel] = scale
    elif where == "strongest":
        _, C, H, W = out.shape
        strongest = out[rows, channel].reshape(N, H * W).argmax(axis=1)      # (N,) flat positions
        dout.reshape(N, C, H * W)[xp.arange(N), channel, strongest] = scale
    else:
        y, x = where
        dout[rows, channel, y, x] = scale
    return dout


def score_gradient(net, x, target, rule="backprop"):
    """dS_target / dx for a batch: (N, C, H, W); target is one class per image (or one for all).

    rule: the ReLU backward rule ("guided" gives guided backprop of the score)."""
    scores, cache = net.forward(x)
    dx, _ = net.backward(select(scores, target), cache, rule=rule, param_grads=False)
    return dx


def grid_shifts(grid):
    """The grid^2 shifts (dy, dx), 0 <= dy, dx < grid: over them each pixel of an image takes
    each place of a pattern that repeats every ``grid`` pixels once."""
    return tuple((dy, dx) for dy in range(grid) for dx in range(grid))


def shifted(f, x, shift, grid):
    """f of x moved ``shift`` = (dy, dx) pixels down and across inside a frame of grid - 1
    mirrored pixels (dy above, the rest below; so across), read back at x's own pixels: f maps
    an (N, C, H', W') batch to a map of the same shape. The mirror continues the image: no seam
    for a gradient to light."""
    (dy, dx), (h, w), xp = shift, x.shape[2:], get_array_module(x)
    framed = xp.pad(x, ((0, 0), (0, 0), (dy, grid - 1 - dy), (dx, grid - 1 - dx)), mode="reflect")
    return f(framed)[:, :, dy:dy + h, dx:dx + w]


def shifted_gradient(net, x, target, shift, grid):
    """(N, C, H, W) on x's device: dS_target/dx of x moved ``shift`` inside a mirrored frame,
    read back at x's own pixels (``shifted``)."""
    return shifted(lambda z: score_gradient(net, z, target), x, shift, grid)


def noisy_mean(f, x, *, n, noise, seed=0, log=None):
    """Mean of f(x + eps) over n draws of eps ~ N(0, sigma^2), sigma = noise * (max - min) of x:
    SmoothGrad's average (Smilkov et al. 2017, https://arxiv.org/abs/1706.03825), of any map f.
    log: called with "k/n noisy copies" after each."""
    rng = random_generator(seed, like=x)                  # noise drawn where x lives
    sigma = noise * float(x.max() - x.min())
    total = 0
    for k in range(n):
        total = total + f(x + (sigma * rng.standard_normal(x.shape)).astype(x.dtype))
        if log:
            log(f"{k + 1}/{n} noisy copies")
    return total / n


def score_objective(net, target, l2=0.0):
    """Objective (to minimise) -S(x) + l2 ||x||^2 and its gradient.

    target: a class index, or (layer, channel) for a whole channel's mean
    activation, or (layer, channel, y, x) for one unit.
    """
    def objective(x):
        if isinstance(target, tuple):
            layer, channel, *where = target
            out, cache = net.forward(x, until=layer)
            if where:
                dout = select(out, channel, tuple(where))
            else:  # the channel's mean, on the scale of a class score (itself a spatial mean)
                dout = select(out, channel, scale=1.0 / (out.shape[2] * out.shape[3]) if out.ndim == 4 else 1.0)
        else:
            out, cache = net.forward(x)
            dout = select(out, target)
        score = total(out * dout)                 # stays on the device
        dx, _ = net.backward(dout, cache, param_grads=False)
        return -score + l2 * total(x * x), -dx + 2 * l2 * x
    return objective


def dream_objective(net, layer):
    """Objective (to minimise) -1/2 ||a(x)||^2 and its gradient (backward from a: dL/da = -a)."""
    def objective(x):
        a, cache = net.forward(x, until=layer)
        dx, _ = net.backward(a, cache, param_grads=False)
        return -0.5 * total(a * a), -dx
    return objective


def synthesis_objective(net, *, content_target=None, content_layer=None, content_weight=0.0,
                        style_targets=None, style_weights=None, tv_weight=0.0, alpha_weight=0.0, alpha=6.0):
    """x -> (loss, dloss/dx) for any mix of content, style (Gram), TV and alpha-norm terms.

    content_target: the content layer's activations to match; style_targets: {layer:
    Gram matrix} with style_weights {layer: weight}. One forward pass keeps every layer
    the terms need; one backward pass carries all their gradients (Network.backward
    takes {layer: gradient})."""
    style_targets, style_weights = style_targets or {}, style_weights or {}
    layers = list(style_weights) + ([content_layer] if content_weight else [])

    def objective(x):
        _, cache = net.forward(x, until=net.last_ready(layers), keep=layers)
        acts = cache.activations
        loss, douts = style_loss(acts, style_targets, style_weights)
        if content_weight:
            lc, dc = content_loss(content_weight, acts[content_layer], content_target)
            loss += lc
            douts[content_layer] = douts[content_layer] + dc if content_layer in douts else dc
        dx, _ = net.backward(douts, cache, param_grads=False)
        lt, dt = tv_loss(x, tv_weight)
        la, da = alpha_norm(x, alpha_weight, alpha)
        return loss + lt + la, dx + dt + da
    return objective


def style_targets_of(net, style, layers):
    """{layer: Gram matrix} of the style image (1, 3, H, W)."""
    acts = net.activations(style, list(layers))
    return {k: gram_matrix(acts[k]) for k in layers}


def mixed_style_targets(net, styles, weights, layers):
    """{layer: sum_i w_i G_i}: the styles' Gram matrices blended with weights summing to 1
    (Gatys et al. 2016, fig. 8): one target that holds some of each style's correlations."""
    weights = np.asarray(weights, dtype=np.float64).ravel()
    if len(weights) != len(styles) or not (weights >= 0).all() or not 0 < weights.sum() < np.inf:
        raise ValueError(f"need one non-negative weight per style ({len(styles)}), with a "
                         f"positive, finite sum; got {weights.tolist()}")
    weights = weights / weights.sum()
    grams = [style_targets_of(net, style, layers) for style in styles]
    return {k: sum(float(w) * g[k] for w, g in zip(weights, grams)) for k in layers}


# -- loss terms, each (loss, gradient) ------------------------------------------------------
def total(a):
    """sum(a) as a float64 scalar, where ``a`` lives (the sum itself in a's dtype)."""
    return a.sum().astype(get_array_module(a).float64)


def gram_matrix(features):
    """G = F F^T / (H W C) for features (N, C, H, W): (N, C, C) (CS231n's normalisation).

    Gatys et al. 2015 use the unnormalised F F^T with E = sum (G - A)^2 / (4 C^2 (HW)^2),
    which is 1/4 of the squared difference of these normalised matrices.
    """
    N, C, H, W = features.shape
    F = features.reshape(N, C, H * W)
    return F @ F.transpose(0, 2, 1) / (H * W * C)


def gram_matrix_backward(dG, features):
    """dL/dfeatures from dL/dG: (dG + dG^T) F / (H W C)."""
    N, C, H, W = features.shape
    F = features.reshape(N, C, H * W)
    return ((dG + dG.transpose(0, 2, 1)) @ F / (H * W * C)).reshape(features.shape)


def content_loss(weight, features, target):
    """weight * sum (F - F0)^2 and its gradient with respect to F."""
    d = features - target
    return weight * total(d * d), 2 * weight * d


def style_loss(features, targets, weights):
    """sum_l w_l sum (G(F_l) - A_l)^2 over layers l; returns (loss, {layer: dL/dF_l}).

    features: {layer: (1, C, H, W)}; targets: {layer: Gram matrix A_l}; weights: {layer: w_l}
    """
    loss, grads = 0.0, {}
    for layer, w in weights.items():
        d = gram_matrix(features[layer]) - targets[layer]
        loss += w * total(d * d)
        grads[layer] = gram_matrix_backward(2 * w * d, features[layer])
    return loss, grads


def tv_loss(x, weight, beta=2.0, eps=1e-8):
    """Total variation weight * sum_ij (dh_ij^2 + dv_ij^2)^(beta/2) and its gradient.

    x: (N, C, H, W); dh = x[i, j+1] - x[i, j], dv = x[i+1, j] - x[i, j], taken as 0 on the
    last column / row (the lecture's R_V^beta, Mahendran & Vedaldi 2015). For beta = 2 this
    is CS231n's sum of squared neighbour differences exactly; for beta < 2 the root is
    not differentiable where both differences vanish, so eps is added under it there.
    """
    if weight == 0:
        return 0.0, 0
    if engine.enabled() and engine.kernels.active(x):           # one launch on a GPU
        terms, dx = engine.kernels.tv_loss(x, beta, eps)
        return weight * total(terms), weight * dx
    xp = get_array_module(x)
    dh = xp.zeros_like(x)
    dv = xp.zeros_like(x)
    dh[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    dv[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    s = dh * dh + dv * dv
    if beta == 2:
        loss, ds = total(s), xp.ones_like(s)
    else:
        s = s + eps
        loss, ds = total(s ** (beta / 2)), (beta / 2) * s ** (beta / 2 - 1)
    gh, gv = 2 * ds * dh, 2 * ds * dv          # dL/d(dh), dL/d(dv)
    dx = xp.zeros_like(x)
    dx[..., :, 1:] += gh[..., :, :-1]
    dx[..., :, :-1] -= gh[..., :, :-1]
    dx[..., 1:, :] += gv[..., :-1, :]
    dx[..., :-1, :] -= gv[..., :-1, :]
    return weight * loss, weight * dx


def alpha_norm(x, weight, alpha=6.0):
    """weight * sum |x|^alpha (Mahendran & Vedaldi 2015; alpha = 6 keeps pixels in range)."""
    if weight == 0:
        return 0.0, 0
    xp = get_array_module(x)
    a = xp.abs(x)
    return weight * total(a ** alpha), weight * alpha * a ** (alpha - 1) * xp.sign(x)
