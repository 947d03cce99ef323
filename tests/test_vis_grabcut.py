"""GrabCut on synthetic images with known answers; its max flow, graph and EM checked on their own."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import maximum_flow

from .strategies import seeds
from vis import grabcut as gc


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def disc_image(rng, size=40, noise=12.0):
    """A disc, red on its left half and green on its right, on blue; and the disc's mask."""
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    colour = np.where(disc[..., None], np.where((xx < size / 2)[..., None], [200, 40, 40], [40, 200, 40]),
                      [60, 60, 180])
    return np.clip(colour + rng.normal(0, noise, colour.shape), 0, 255).astype(np.uint8), disc


def random_costs(rng, h, w):
    """Data costs (which may be negative, like -log densities) and n-links of an h x w image."""
    z = rng.integers(0, 256, (h * w, 3)).astype(np.float64)
    return rng.normal(0, 3, h * w), rng.normal(0, 3, h * w), gc.n_links(z, h, w, gamma=rng.uniform(0.5, 10))


def test_two_colour_disc_grows_from_small_seeds():
    image, disc = disc_image(np.random.default_rng(0))
    fg, bg = np.zeros_like(disc), np.zeros_like(disc)
    fg[17:23, 15:25] = True                  # a strip across the disc's middle: both of its colours
    bg[:4, :4] = bg[-4:, -4:] = True         # two corners
    mask, energies = gc.grabcut(image, fg, bg, return_energies=True)
    assert iou(mask, disc) > 0.95
    assert len(energies) == gc.ITERATIONS


def test_unknown_as_foreground_grows_a_colour_no_seed_touches():
    # foreground seeds on the disc's red half only: fitted to them, the first foreground model has
    # no green; started from every pixel but the background seeds (Rother et al.'s T_U), it has
    image, disc = disc_image(np.random.default_rng(2))
    fg, bg = np.zeros_like(disc), np.zeros_like(disc)
    fg[17:23, 12:16] = True
    bg[:3] = bg[-3:] = bg[:, :3] = bg[:, -3:] = True          # the frame, as Rother et al.'s rectangle
    assert iou(gc.grabcut(image, fg, bg, unknown_as_foreground=True), disc) > 0.95
    assert iou(gc.grabcut(image, fg, bg), disc) < 0.75


@settings(max_examples=5)
@given(seeds, st.integers(8, 16))
def test_noisy_square_is_recovered(seed, top):
    rng = np.random.default_rng(seed)
    square = np.zeros((36, 36), dtype=bool)
    square[top:top + 16, top:top + 16] = True
    image = np.where(square[..., None], [150, 120, 60], [70, 110, 140]) + rng.normal(0, 25, (36, 36, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    fg, bg = np.zeros_like(square), np.zeros_like(square)
    fg[top + 6:top + 10, top + 6:top + 10] = True
    bg[:, :3] = True
    assert iou(gc.grabcut(image, fg, bg, iterations=3, seed=seed), square) > 0.95


def test_energy_does_not_rise_from_one_iteration_to_the_next():
    image, disc = disc_image(np.random.default_rng(1), noise=40.0)
    fg, bg = np.zeros_like(disc), np.zeros_like(disc)
    fg[18:22, 18:22] = bg[:3] = True
    energies = np.array(gc.grabcut(image, fg, bg, iterations=6, return_energies=True)[1])
    # EM cannot lower the likelihood and the cut minimises E; only the rounding to integer
    # capacities (at most 1/2 per edge, in units of 1 / scale) and the covariance prior are slack
    assert np.all(np.diff(energies) <= 1e-6 * abs(energies[0])), energies


@settings(max_examples=10)
@given(seeds, st.integers(2, 7), st.integers(2, 7))
def test_flow_value_is_the_capacity_of_the_returned_cut(seed, h, w):
    rng = np.random.default_rng(seed)
    d_fg, d_bg, links = random_costs(rng, h, w)
    fg, bg = rng.random(h * w) < 0.15, rng.random(h * w) < 0.15
    fg &= ~bg
    graph, scale = gc.cut_graph(d_fg, d_bg, links, fg, bg)
    p = h * w
    side, value = gc.min_cut(graph, p, p + 1)
    assert side[p] and not side[p + 1]
    dense = graph.toarray().astype(np.int64)
    assert dense[side][:, ~side].sum() == value == maximum_flow(graph, p, p + 1).flow_value
    # the same cut in energy units: E(mask) less the seeds' data costs (fixed by the seeds) and
    # the other pixels' shift min(d_fg, d_bg)
    mask, seeded = side[:p], fg | bg
    shift = np.where(mask, d_fg, d_bg)[seeded].sum() + np.minimum(d_fg, d_bg)[~seeded].sum()
    rounding = 0.5 * graph.nnz / scale
    assert abs(value / scale - (gc.energy(mask, d_fg, d_bg, links) - shift)) <= rounding


@settings(max_examples=10)
@given(seeds)
def test_min_cut_is_the_least_energy_labelling_of_a_tiny_image(seed):
    # every labelling of 3 x 3 pixels that respects the seeds, scored on the integer graph
    rng = np.random.default_rng(seed)
    d_fg, d_bg, links = random_costs(rng, 3, 3)
    fg, bg = np.zeros(9, bool), np.zeros(9, bool)
    fg[rng.integers(9)] = True
    bg[rng.choice(np.flatnonzero(~fg))] = True
    graph, _ = gc.cut_graph(d_fg, d_bg, links, fg, bg)
    dense = graph.toarray().astype(np.int64)
    best = min(dense[np.r_[labels, 1, 0].astype(bool)][:, ~np.r_[labels, 1, 0].astype(bool)].sum()
               for labels in itertools.product([0, 1], repeat=9) if all(np.array(labels)[fg]) and
               not any(np.array(labels)[bg]))
    assert gc.min_cut(graph, 9, 10)[1] == best


@settings(max_examples=10)
@given(seeds, st.integers(2, 9), st.integers(2, 9))
def test_n_links_are_non_negative_and_symmetric(seed, h, w):
    rng = np.random.default_rng(seed)
    d_fg, d_bg, links = random_costs(rng, h, w)
    graph, _ = gc.cut_graph(d_fg, d_bg, links, rng.random(h * w) < 0.2, np.zeros(h * w, bool))
    pixels = graph[:h * w][:, :h * w]
    assert (links[2] >= 0).all() and (graph.data >= 0).all()
    assert (pixels != pixels.T).nnz == 0
    m, n, _ = links
    assert len(m) == (h - 1) * w + h * (w - 1) + 2 * (h - 1) * (w - 1)      # 8-neighbour pairs, each once
    assert len(set(zip(m, n)) | set(zip(n, m))) == 2 * len(m)


@settings(max_examples=10)
@given(seeds, st.integers(1, 5), st.integers(1, 5), st.floats(0.5, 100))
def test_n_links_are_the_papers_pairwise_term(seed, h, w, gamma):
    """Every pair of 8-neighbours by naive loops: gamma exp(-beta ||z_m - z_n||^2) / dist(m, n), with
    beta = 1 / (2 <||z_m - z_n||^2>) over all those pairs (Rother et al. 2004, eq. 5 and below)."""
    z = np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.float64)
    pairs = {}
    for i, j, di, dj in itertools.product(range(h), range(w), (-1, 0, 1), (-1, 0, 1)):
        if (di, dj) != (0, 0) and 0 <= i + di < h and 0 <= j + dj < w:
            key = tuple(sorted((i * w + j, (i + di) * w + j + dj)))
            pairs[key] = (((z[i, j] - z[i + di, j + dj]) ** 2).sum(), np.hypot(di, dj))
    squared = [d2 for d2, _ in pairs.values()]
    beta = 1 / (2 * np.mean(squared)) if squared and np.mean(squared) > 0 else 0.0
    m, n, weight = gc.n_links(z.reshape(-1, 3), h, w, gamma)
    got = {tuple(sorted((a, b))): c for a, b, c in zip(m, n, weight)}
    assert got.keys() == pairs.keys()
    for key, (d2, dist) in pairs.items():
        assert np.isclose(got[key], gamma * np.exp(-beta * d2) / dist, rtol=1e-12), key


@settings(max_examples=8)
@given(seeds)
def test_hard_seeds_are_respected(seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (16, 20, 3)).astype(np.uint8)
    fg, bg = rng.random((16, 20)) < 0.1, rng.random((16, 20)) < 0.1
    fg[0, 0], bg[-1, -1] = True, True
    fg &= ~bg
    mask = gc.grabcut(image, fg, bg, components=3, iterations=2, seed=seed)
    assert mask[fg].all() and not mask[bg].any()


@settings(max_examples=25)
@given(seeds, st.integers(1, 4), st.integers(5, 60))
def test_em_never_lowers_the_penalised_log_likelihood(seed, k, n):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, 3)) * rng.uniform(0.1, 30, 3) + rng.choice([0.0, 50.0], (n, 1))
    x = np.rint(x) if seed % 2 else x                     # uint8-like ties, where components can collapse
    centres, labels = gc.kmeans(x, k, rng=rng)
    _, objective = gc.em(x, gc.m_step(x, np.eye(len(centres))[labels]), steps=8)
    assert np.all(np.diff(objective) >= -1e-9 * np.abs(objective[:-1]).max()), objective


def test_kmeans_caps_k_at_the_distinct_colours_and_leaves_no_cluster_empty():
    x = np.repeat([[0.0, 0, 0], [10, 10, 10]], 20, axis=0)
    centres, labels = gc.kmeans(x, 5)
    assert len(centres) == 2 and set(np.bincount(labels)) == {20}


@pytest.mark.parametrize("fg,bg,options,message", [
    (np.zeros((4, 4), bool), np.ones((4, 4), bool), {}, "at least one foreground"),
    (np.ones((4, 4), bool), np.ones((4, 4), bool), {}, "both a foreground and a background"),
    (np.eye(4, dtype=bool), ~np.eye(4, dtype=bool), {"iterations": 0}, "at least one iteration"),
    (np.eye(4, dtype=bool), ~np.eye(4, 5, dtype=bool), {}, "for an image of 4 x 4"),
])
def test_bad_seeds_are_refused(fg, bg, options, message):
    with pytest.raises(ValueError, match=message):
        gc.grabcut(np.zeros((4, 4, 3), np.uint8), fg, bg, **options)


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(5)
    centres = np.array([[0, 0], [10, 0], [0, 10]])
    x = np.concatenate([c + rng.normal(0, 0.5, (40, 2)) for c in centres])
    found, labels = gc.kmeans(x, 3, steps=100, rng=np.random.default_rng(1))
    truth = np.repeat([0, 1, 2], 40)
    for j in range(3):  # each found cluster is exactly one true cluster
        assert len(set(truth[labels == j])) == 1
    for c in centres:  # every true centre has a found centre close to it
        assert np.linalg.norm(found - c, axis=1).min() < 0.5


@given(seeds, st.integers(1, 40), st.integers(1, 9), st.integers(1, 300))
def test_squared_distances_in_blocks_are_the_naive_loop(seed, n, k, chunk):
    rng = np.random.default_rng(seed)
    x, c = rng.normal(size=(n, 3)), rng.normal(size=(k, 3))
    naive = np.array([[sum((x[i, d] - c[j, d]) ** 2 for d in range(3)) for j in range(k)] for i in range(n)])
    np.testing.assert_allclose(gc.squared_distances(x, c, chunk_floats=chunk), naive, rtol=1e-12)


def test_kmeans_stops_when_nothing_moves_and_then_matches_more_steps(monkeypatch):
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.normal(m, 1.0, (60, 3)) for m in (0, 4, 8)])
    calls = []
    real = gc.squared_distances
    monkeypatch.setattr(gc, "squared_distances", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    short, long = (gc.kmeans(x, 3, steps=s, rng=np.random.default_rng(0)) for s in (50, 500))
    # 3 seeding passes, the rounds until nothing moves and the final labelling: far fewer than 500
    assert len(calls) < 2 * 50, f"{len(calls)} distance passes for two runs: no early stop"
    np.testing.assert_array_equal(short[1], long[1])
    np.testing.assert_array_equal(short[0], long[0])
    # a converged Lloyd's fixed point: every point at its nearest centre, every centre its points' mean
    centres, labels = short
    assert (gc.squared_distances(x, centres).argmin(axis=1) == labels).all()
    np.testing.assert_allclose(centres, [x[labels == j].mean(0) for j in range(3)], rtol=1e-12)
