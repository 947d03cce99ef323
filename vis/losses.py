"""Image-synthesis losses, each returning (loss, gradient): Gram matrices, content,
style, total variation and the alpha-norm. Shared by style transfer, texture
synthesis and feature inversion; every gradient is checked by finite differences
in tests/test_vis_losses.py.

Losses are 0-d float64 arrays where the features live (on a GPU: on the device), so
summing the terms of a step needs no synchronisation; the optimisation driver reads
them back. A term with weight 0 costs nothing: (0.0, 0).
"""

from tinycnn.backend import get_array_module


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
