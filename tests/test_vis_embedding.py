"""PCA, t-SNE (its gradient, perplexity calibration, cluster separation), grid snapping, the
figure."""
import numpy as np
import pytest
from hypothesis import given

from tinycnn.gradcheck import numeric_grad, rel_error
from vis.embedding import (conditional_probabilities, grid_embedding, joint_probabilities, pca,
                           tsne, tsne_kl)
from vis.neighbors import nearest_neighbors

from .strategies import seeds


def test_pca_matches_the_covariance_eigenvectors():
    X = np.random.default_rng(0).standard_normal((200, 5)) @ np.diag([5, 3, 1, 0.5, 0.1])
    coords, components, ratio = pca(X, 2)
    values, vectors = np.linalg.eigh(np.cov(X.T))
    order = np.argsort(values)[::-1]
    for k in range(2):
        assert abs(abs(components[k] @ vectors[:, order[k]]) - 1) < 1e-10   # same axis, up to sign
    np.testing.assert_allclose(ratio, values[order[:2]] / values.sum(), rtol=1e-10)
    np.testing.assert_allclose(coords, (X - X.mean(0)) @ components.T, atol=1e-10)


def test_perplexity_is_calibrated():
    X = np.random.default_rng(1).standard_normal((120, 4))
    P = conditional_probabilities(X, perplexity=15)
    H = -(P * np.log(np.where(P > 0, P, 1))).sum(axis=1)
    np.testing.assert_allclose(np.exp(H), 15, rtol=1e-3)
    assert np.allclose(P.sum(1), 1) and np.all(np.diag(P) == 0)
    J = joint_probabilities(X, perplexity=15)
    assert np.allclose(J, J.T) and np.isclose(J.sum(), 1)


@pytest.mark.gradcheck
@given(seeds)
def test_tsne_kl_gradient(seed):
    rng = np.random.default_rng(seed)
    P = rng.random((7, 7))
    P = P + P.T
    np.fill_diagonal(P, 0)
    P /= P.sum()
    Y = rng.standard_normal((7, 2))
    _, grad = tsne_kl(P, Y)
    numeric = numeric_grad(lambda: np.array(tsne_kl(P, Y)[0]), Y, np.ones(()))
    assert rel_error(grad, numeric) < 1e-6
    skipped, same = tsne_kl(P, Y, kl=False)    # the descent's call: no KL, the same gradient
    assert skipped is None and np.array_equal(same, grad)


def test_tsne_separates_clusters():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(0, 1, (60, 10)), rng.normal(8, 1, (60, 10))])
    labels = np.repeat([0, 1], 60)
    Y = tsne(X, perplexity=10, iterations=1000, seed=0)
    nn = nearest_neighbors(Y, Y, 5, exclude=np.arange(120))
    assert (labels[nn] == labels[:, None]).mean() > 0.98
    # the same seed, the same layout
    np.testing.assert_array_equal(Y, tsne(X, perplexity=10, iterations=1000, seed=0))


def test_grid_embedding_places_grid_points_on_their_cells():
    gy, gx = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    coords = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(float)
    extra = np.array([[1.5, 1.0]])                       # one point too many: left out
    cells = grid_embedding(np.concatenate([coords, extra]), 3, 4)
    np.testing.assert_array_equal(cells, np.arange(12).reshape(3, 4))


def test_the_figure_shows_each_image_in_its_grid_cell():
    from vis.embedding import figure
    colours = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], float)  # one per image
    images = np.broadcast_to(colours[:, :, None, None], (4, 3, 32, 32))
    coords = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)     # x, y: the grid's four corners
    picture = figure(images, np.arange(4), ["a", "b", "c", "d"], coords, coords, layer="relu6",
                     grid=2)
    # the grid: right of the plots (8 px of white after it), as tall as they are below its caption
    inked = np.flatnonzero((picture != 255).any(axis=(0, 2)))     # columns not all white
    right = inked[-1] + 1
    side = np.flatnonzero((picture[:, right - 1] != 255).any(axis=1))
    top, side = side[0], len(side)
    for (row, col), colour in zip([(0, 0), (0, 1), (1, 0), (1, 1)], colours):
        y, x = top + (2 * row + 1) * side // 4, right - side + (2 * col + 1) * side // 4
        np.testing.assert_array_equal(picture[y, x], colour * 255)
