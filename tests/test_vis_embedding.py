"""PCA, t-SNE (its gradient, perplexity calibration, cluster separation), grid snapping, neighbours."""
import numpy as np
import pytest
from hypothesis import given

from tinycnn.gradcheck import numeric_grad, rel_error
from vis.embedding import conditional_probabilities, grid_embedding, joint_probabilities, pca, tsne, tsne_kl
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
    skipped, same = tsne_kl(P, Y, kl=False)                # the descent's call: no KL, the same gradient
    assert skipped is None and np.array_equal(same, grad)


def test_tsne_separates_clusters():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(0, 1, (60, 10)), rng.normal(8, 1, (60, 10))])
    labels = np.repeat([0, 1], 60)
    Y = tsne(X, perplexity=10, iterations=1000, seed=0)
    nn = nearest_neighbors(Y, Y, 5, exclude=np.arange(120))
    assert (labels[nn] == labels[:, None]).mean() > 0.98
    np.testing.assert_array_equal(Y, tsne(X, perplexity=10, iterations=1000, seed=0))  # same seed, same layout


def test_grid_embedding_places_grid_points_on_their_cells():
    gy, gx = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    coords = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(float)
    extra = np.array([[1.5, 1.0]])                       # one point too many: left out
    cells = grid_embedding(np.concatenate([coords, extra]), 3, 4)
    np.testing.assert_array_equal(cells, np.arange(12).reshape(3, 4))


def test_nearest_neighbors_brute_force():
    rng = np.random.default_rng(3)
    db, q = rng.standard_normal((50, 6)), rng.standard_normal((4, 6))
    got = nearest_neighbors(q, db, 3)
    for qi, row in zip(q, got):
        np.testing.assert_array_equal(row, np.argsort([np.linalg.norm(qi - d) for d in db])[:3])
    assert 7 not in nearest_neighbors(db[7:8], db, 3, exclude=np.array([7]))[0]
    with pytest.raises(ValueError, match="query features have 5 dimensions but the database has 6"):
        nearest_neighbors(q[:, :5], db, 3)
