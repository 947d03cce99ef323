"""Nearest neighbours in feature space and in pixel space (Krizhevsky et al. 2012, fig. 4),
against a brute-force loop over the images."""
import numpy as np

from tinycnn.backend import to_numpy
from vis.neighbors import feature_and_pixel_neighbors

from .conftest import on_device
from .nets import small_net


def brute_force(vectors, queries, k):
    """Each query's k nearest other vectors, one Euclidean distance at a time."""
    nearest = []
    for q in queries:
        d = [np.linalg.norm(vectors[q] - v) if i != q else np.inf for i, v in enumerate(vectors)]
        nearest.append(np.argsort(d, kind="stable")[:k])
    return np.array(nearest)


def test_feature_and_pixel_neighbors_leave_the_query_out():
    net = small_net()
    x = np.random.default_rng(4).standard_normal((12, 3, 6, 6))
    queries = np.array([0, 5, 11])
    by_features, by_pixels = feature_and_pixel_neighbors(net, x, "relu", queries, 3)
    # each image's features on its own, not in a batch
    features = [to_numpy(net.activations(on_device(x[i:i + 1]), "relu")["relu"]).ravel()
                for i in range(len(x))]
    np.testing.assert_array_equal(by_features, brute_force(features, queries, 3))
    np.testing.assert_array_equal(by_pixels, brute_force(x.reshape(12, -1), queries, 3))


def test_nearest_neighbors_brute_force():
    import pytest
    from vis.neighbors import nearest_neighbors
    rng = np.random.default_rng(3)
    db, q = rng.standard_normal((50, 6)), rng.standard_normal((4, 6))
    got = nearest_neighbors(q, db, 3)
    for qi, row in zip(q, got):
        np.testing.assert_array_equal(row, np.argsort([np.linalg.norm(qi - d) for d in db])[:3])
    assert 7 not in nearest_neighbors(db[7:8], db, 3, exclude=np.array([7]))[0]
    with pytest.raises(ValueError,
                       match="query features have 5 dimensions but the database has 6"):
        nearest_neighbors(q[:, :5], db, 3)


def test_same_class_share_against_a_loop():
    from vis.neighbors import same_class_share
    assert same_class_share([0, 0, 1, 1, 2], np.array([[1, 2], [3, 4]]), [0, 2]) == 0.5
    rng = np.random.default_rng(5)
    labels, queries = rng.integers(0, 3, 40), rng.choice(40, 7, replace=False)
    neighbours = rng.integers(0, 40, (7, 4))
    same = [labels[n] == labels[q] for q, row in zip(queries, neighbours) for n in row]
    assert same_class_share(labels, neighbours, queries) == sum(same) / len(same)


def test_neighbours_are_framed_green_for_the_querys_class_and_red_for_another():
    from vis.neighbors import FRAME, TILE, _strip
    rgb = np.full((2, 8, 8, 3), 128, np.uint8)
    strip = _strip(rgb, [0, 1], np.array([True, False]))
    first, second = strip[2:2 + TILE, 2:2 + TILE], strip[2:2 + TILE, -2 - TILE:-2]  # 2-px gaps
    assert (first[0, 0] == (0, 170, 0)).all() and (second[-1, -1] == (220, 0, 0)).all()
    assert (first[FRAME:-FRAME, FRAME:-FRAME] == 128).all()      # the image inside is untouched
    assert (_strip(rgb, [0, 1])[2:2 + TILE, 2:2 + TILE] == 128).all()    # no labels: no frames
