"""Multifaceted visualisation: one facet per k-means cluster that has images, no more."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import to_numpy
from vis.multifaceted import multifaceted

from .conftest import on_device


def tiny_net():
    net = tc.Network([("conv1", tc.Conv2d(3, 4, 3, padding=1, seed=1)), ("relu1", tc.ReLU()),
                      ("pool", tc.GlobalAvgPool2d()), ("fc", tc.Linear(4, 3, seed=2))])
    net.meta.update(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), input_size=8)
    return net


def test_a_facet_per_distinct_look_and_none_without_images():
    rng = np.random.default_rng(0)
    looks = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    images = np.repeat(looks, [2, 3, 1], axis=0)     # 6 images, 3 distinct: k = 5 finds 3 clusters
    facets, labels = multifaceted(tiny_net(), images, 1, layer="relu1", k=5, steps=2)
    assert facets.shape == (3, 3, 8, 8) and np.isfinite(facets).all()
    assert sorted(np.bincount(labels)) == [1, 2, 3]  # every facet has images: its start is a mean
    for j in range(3):
        assert len({images[i].tobytes() for i in np.flatnonzero(labels == j)}) == 1
    with pytest.raises(ValueError, match="7 facets need at least 7 images of the class; there are "
                                         "6"):
        multifaceted(tiny_net(), images, 1, layer="relu1", k=7, steps=2)


def test_a_cluster_that_k_means_emptied_gets_no_facet(monkeypatch):
    """k-means can leave a cluster without images (Lloyd moves them all away); its facet would
    start from the mean of nothing. Labels 0, 2, 3 of k = 4 become facets 0, 1, 2."""
    import vis.multifaceted as mf
    starts = []
    monkeypatch.setattr(mf, "kmeans", lambda x, k, **kw: (np.zeros((k, x.shape[1])),
                                                          np.array([3, 0, 0, 2, 3, 3])))
    def drawn_as_started(net, target, x0, **kw):         # class_visualization's result is NumPy
        starts.append(to_numpy(x0))
        return to_numpy(x0), None
    monkeypatch.setattr(mf, "class_visualization", drawn_as_started)
    images = np.random.default_rng(1).standard_normal((6, 3, 8, 8)).astype(np.float32)
    facets, labels = mf.multifaceted(tiny_net(), images, 1, layer="relu1", k=4, steps=2)
    np.testing.assert_array_equal(labels, [2, 0, 0, 1, 2, 2])
    assert facets.shape == (3, 3, 8, 8)
    for j, members in enumerate([[1, 2], [3], [0, 4, 5]]):   # each starts from its images' mean
        np.testing.assert_allclose(starts[j][0], images[members].mean(0), rtol=1e-6)


def test_facet_scores_are_the_class_scores_at_each_clusters_mean_and_facet():
    from vis.multifaceted import facet_scores
    net = tiny_net()
    rng = np.random.default_rng(2)
    images = rng.standard_normal((5, 3, 8, 8)).astype(np.float32)
    facets = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    labels = np.array([1, 0, 1, 1, 0])
    means, at_means, at_facets = facet_scores(net, images, facets, labels)
    np.testing.assert_allclose(means, [images[[1, 4]].mean(0), images[[0, 2, 3]].mean(0)],
                               rtol=1e-6)
    for j in range(2):
        np.testing.assert_allclose(at_means[j], to_numpy(net(on_device(means[j:j + 1])))[0],
                                   rtol=1e-6)
        np.testing.assert_allclose(at_facets[j], to_numpy(net(on_device(facets[j:j + 1])))[0],
                                   rtol=1e-6)
