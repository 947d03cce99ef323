"""Finite-difference checks of every image-synthesis loss (float64, hypothesis)."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from tinycnn.gradcheck import numeric_grad, rel_error
from vis.objectives import (alpha_norm, content_loss, gram_matrix, gram_matrix_backward, shifted,
                            style_loss, tv_loss)

from .strategies import seeds


def features(seed, shape=(1, 3, 4, 5)):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.gradcheck
@given(seeds)
def test_gram_matrix_backward(seed):
    F = features(seed)
    dG = np.random.default_rng(seed + 1).standard_normal((1, 3, 3))
    numeric = numeric_grad(lambda: gram_matrix(F), F, dG)
    assert rel_error(gram_matrix_backward(dG, F), numeric) < 1e-7


def test_gram_matrix_by_hand():
    F = np.arange(8.0).reshape(1, 2, 2, 2)      # channels [0 1 2 3] and [4 5 6 7]
    np.testing.assert_allclose(gram_matrix(F)[0], np.array([[14, 38], [38, 126]]) / 8)


@pytest.mark.gradcheck
@given(seeds)
def test_content_and_style_loss_gradients(seed):
    F, F0 = features(seed), features(seed + 1)
    loss, g = content_loss(0.7, F, F0)
    assert rel_error(g, numeric_grad(lambda: float(content_loss(0.7, F, F0)[0]), F, np.ones(()))) < 1e-7
    feats = {"a": features(seed + 2), "b": features(seed + 3, (1, 2, 3, 3))}
    targets = {k: gram_matrix(features(seed + 4, v.shape)) for k, v in feats.items()}
    weights = {"a": 3.0, "b": 0.5}
    _, grads = style_loss(feats, targets, weights)
    for k in feats:
        numeric = numeric_grad(lambda: float(style_loss(feats, targets, weights)[0]), feats[k], np.ones(()))
        assert rel_error(grads[k], numeric) < 1e-6


@pytest.mark.gradcheck
@given(seeds, st.sampled_from([1.0, 2.0, 1.5, 3.0]))
def test_tv_and_alpha_norm_gradients(seed, beta):
    x = features(seed, (1, 2, 5, 4))
    if beta < 2:
        # (dh^2 + dv^2)^(beta/2) has a kink where both differences vanish; centred differences
        # are only accurate where the function is smooth on the scale of h, so draws with a
        # pixel within 1e-3 of the kink are skipped (the bottom-right pixel has none, always 0)
        dh, dv = np.zeros_like(x), np.zeros_like(x)
        dh[..., :, :-1], dv[..., :-1, :] = np.diff(x, axis=-1), np.diff(x, axis=-2)
        r = np.sqrt(dh ** 2 + dv ** 2)
        assume(min(r[..., :-1, :].min(), r[..., :, :-1].min()) > 1e-3)
    _, g = tv_loss(x, 0.3, beta=beta)
    assert rel_error(g, numeric_grad(lambda: float(tv_loss(x, 0.3, beta=beta)[0]), x, np.ones(()))) < 1e-6
    _, g = alpha_norm(x, 0.2, alpha=6)
    assert rel_error(g, numeric_grad(lambda: float(alpha_norm(x, 0.2)[0]), x, np.ones(()))) < 1e-6


def test_tv_by_hand():
    x = np.array([[[[0.0, 1.0], [3.0, 5.0]]]])
    # dh: (1, 0 | 2, 0), dv: (3, 4 | 0, 0): squares sum to 1 + 4 + 9 + 16
    assert tv_loss(x, 1.0)[0] == 30.0
    assert np.isclose(tv_loss(x, 1.0, beta=1.0, eps=1e-12)[0], np.sqrt(1 + 9) + np.sqrt(0 + 16) + 2 + 0)


@given(seeds, st.integers(1, 4), st.data())
def test_shifted_reads_the_moved_image_back_at_its_own_pixels(seed, grid, data):
    """The identity, moved and read back, is the image itself; a map of the frame's rows is the
    image's row index moved by dy (the frame's dy mirrored rows above)."""
    dy, dx = data.draw(st.integers(0, grid - 1)), data.draw(st.integers(0, grid - 1))
    x = np.random.default_rng(seed).standard_normal((2, 3, 5, 6))
    np.testing.assert_array_equal(shifted(lambda z: z, x, (dy, dx), grid), x)
    rows = shifted(lambda z: np.broadcast_to(np.arange(z.shape[2])[:, None], z.shape), x,
                   (dy, dx), grid)
    np.testing.assert_array_equal(rows[0, 0, :, 0], np.arange(5) + dy)
