"""Multifaceted visualisation: clusters, starts, the facet's gradient, and facets that stay
apart."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinycnn as tc
from tinycnn.backend import to_numpy
from vis.multifaceted import (NEAREST, cluster, colour_offsets, facet, facet_objective,
                              facet_scores, multifaceted, offset, rms_distances)

from .conftest import on_device
from .strategies import seeds


def tiny_net():
    net = tc.Network([("conv1", tc.Conv2d(3, 4, 3, padding=1, seed=1)), ("relu1", tc.ReLU()),
                      ("pool", tc.GlobalAvgPool2d()), ("fc", tc.Linear(4, 3, seed=2))])
    net.meta.update(mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 0.2), input_size=8)
    return net


def test_a_facet_per_distinct_look_and_none_without_images():
    rng = np.random.default_rng(0)
    looks = rng.standard_normal((3, 3, 8, 8)).astype(np.float32)
    images = np.repeat(looks, [2, 3, 1], axis=0)     # 6 images, 3 distinct: k = 5 finds 3 clusters
    facets, starts, labels, nearest = multifaceted(tiny_net(), images, 1, layer="relu1", k=5,
                                                   steps=2)
    assert facets.shape == starts.shape == (3, 3, 8, 8) and np.isfinite(facets).all()
    assert sorted(np.bincount(labels)) == [1, 2, 3]  # every facet has images: its start is a mean
    for j in range(3):
        assert len({images[i].tobytes() for i in np.flatnonzero(labels == j)}) == 1
        np.testing.assert_allclose(starts[j], images[labels == j][0], rtol=1e-6)
    with pytest.raises(ValueError, match="7 facets need at least 7 images of the class; there are "
                                         "6"):
        multifaceted(tiny_net(), images, 1, layer="relu1", k=7, steps=2)


def test_a_cluster_that_k_means_emptied_gets_no_facet(monkeypatch):
    """k-means can leave a cluster without images (Lloyd moves them all away); its facet would
    start from the mean of nothing. Labels 0, 2, 3 of k = 4 become clusters 0, 1, 2."""
    import vis.multifaceted as mf
    monkeypatch.setattr(mf, "kmeans", lambda x, k, **kw: (np.zeros((k, x.shape[1])),
                                                          np.array([3, 0, 0, 2, 3, 3])))
    monkeypatch.setattr(mf, "NEAREST", 3)          # every member of these small clusters
    features = np.random.default_rng(1).standard_normal((6, 5))
    labels, nearest = cluster(features, 4)
    np.testing.assert_array_equal(labels, [2, 0, 0, 1, 2, 2])
    assert [sorted(n) for n in nearest] == [[1, 2], [3], [0, 4, 5]]


def test_the_start_averages_the_members_nearest_the_centre():
    """One cluster of 40 points on a line (2-D features, so PCA keeps everything): its centre is
    their mean, and the start averages the NEAREST points closest to it, by index."""
    x = np.linspace(0, 1, 40) ** 3               # uneven spacing: the nearest are not the middle
    features = np.stack([x, 0.5 * x], axis=1)
    labels, nearest = cluster(features, 1)
    assert (labels == 0).all()
    expected = np.argsort(np.abs(x - x.mean()), kind="stable")[:NEAREST]
    assert list(nearest[0]) == list(expected)


def test_colour_offsets_are_the_colour_matrix_over_the_std_of_each_channel():
    from vis.class_visualization import COLORS
    net = tiny_net()
    D = to_numpy(colour_offsets(net, np.float64))
    for c, s in enumerate(net.meta["std"]):       # row c: channel c's change, in its own std
        np.testing.assert_allclose(D[c], COLORS[c] / s, rtol=1e-12)
    t = np.random.default_rng(3).standard_normal((1, 3, 2, 2))
    by_pixel = np.stack([D @ t[0, :, y, x] for y in range(2) for x in range(2)], axis=1)
    np.testing.assert_allclose(to_numpy(offset(on_device(D), on_device(t)))[0].reshape(3, 4),
                               by_pixel, rtol=1e-12)


@pytest.mark.gradcheck
@given(seeds, st.sampled_from([0, 1, 2]), st.sampled_from([0.0, 0.7]))
def test_the_facet_objective_gradient_matches_finite_differences(seed, jitter, weight):
    """-S(x0 + D t) + weight ||t||^2 against centred differences in t, in float64."""
    from tinycnn.gradcheck import numeric_grad, rel_error
    net = tiny_net().astype(np.float64)
    rng = np.random.default_rng(seed)
    x0, t = (on_device(rng.standard_normal((1, 3, 6, 6))) for _ in range(2))
    D = colour_offsets(net, np.float64)

    def f(t):        # a fresh objective each call: the same roll every evaluation
        return facet_objective(net, 1, x0, D, weight=weight, jitter=jitter, seed=seed)(t)
    _, analytic = f(t)
    numeric = numeric_grad(lambda: float(f(t)[0]), t, np.ones(()))
    assert rel_error(analytic, numeric) < 1e-6


def test_facet_scores_and_distances_by_hand():
    net = tiny_net()
    rng = np.random.default_rng(2)
    starts, facets = (rng.standard_normal((2, 3, 8, 8)).astype(np.float32) for _ in range(2))
    at_starts, at_facets = facet_scores(net, starts, facets)
    for j in range(2):
        np.testing.assert_allclose(at_starts[j], to_numpy(net(on_device(starts[j:j + 1])))[0],
                                   rtol=1e-6)
        np.testing.assert_allclose(at_facets[j], to_numpy(net(on_device(facets[j:j + 1])))[0],
                                   rtol=1e-6)
    a = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 2.0]])
    np.testing.assert_allclose(rms_distances(a), np.sqrt([[0, 12.5, 2], [12.5, 0, 6.5],
                                                          [2, 6.5, 0]]))


def test_facets_of_the_shipped_net_reach_the_class_and_stay_apart():
    """From four flat colours, each facet becomes an 'automobile' for the CIFAR-10 net (its
    top class, the score up by more than 5) and stays its own picture: nearer its own start
    than any other start, and the facets at least 0.8 times as far apart as their starts.
    CS231n's plain ascent from these starts (lr 5, 100 steps) fails the first: all four end
    nearest the grey start."""
    from tinycnn.models import cifar10_net, normalize
    net = cifar10_net()
    colours = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.8], [0.5, 0.5, 0.5], [0.9, 0.9, 0.2]])
    noise = 0.05 * np.random.default_rng(0).standard_normal((4, 3, 32, 32))
    starts = normalize(np.clip(colours[:, :, None, None] + noise, 0, 1).astype(np.float32), net)
    facets = np.stack([to_numpy(facet(net, 1, on_device(s[None]), seed=j))[0]
                       for j, s in enumerate(starts)])
    at_starts, at_facets = facet_scores(net, starts, facets)
    assert (at_facets.argmax(axis=1) == 1).all()
    assert (at_facets[:, 1] > at_starts[:, 1] + 5).all()
    to_starts = np.sqrt(((facets[:, None] - starts[None]) ** 2).mean(axis=(2, 3, 4)))
    assert (to_starts.argmin(axis=1) == np.arange(4)).all()
    pairs = np.triu_indices(4, 1)
    assert rms_distances(facets)[pairs].min() > 0.8 * rms_distances(starts)[pairs].min()
