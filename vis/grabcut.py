"""GrabCut: an object mask grown from a few seed pixels by colour models and a minimum cut.

Rother, Kolmogorov & Blake (2004), "GrabCut: interactive foreground extraction using
iterated graph cuts", https://doi.org/10.1145/1015706.1015720.

Idea: learn the colours of the object and of its surroundings, give each pixel the label
whose colours it matches, but pay for every boundary drawn between similar colours. Each
pixel n gets a label a_n (foreground or background); its colour z_n is scored by that
label's Gaussian mixture (K components, full covariances), and the labelling minimises the
Gibbs energy (with the whole mixture's density in U, as OpenCV's grabCut does; the paper
instead gives each pixel its likeliest component k_n and scores -log pi_k N(z; mu_k, Sigma_k)
of that one, which differs little where one component dominates)

    E(a) = U(a) + V(a)
    U(a) = sum_n -log p(z_n | GMM_{a_n}),      p(z | GMM) = sum_k pi_k N(z; mu_k, Sigma_k)
    V(a) = gamma sum_{m,n 8-neighbours} [a_m != a_n] exp(-beta ||z_m - z_n||^2) / dist(m, n)
    beta = 1 / (2 <||z_m - z_n||^2>)              (mean over all neighbour pairs)

A two-label energy whose pairwise term only charges for differing labels is minimised
exactly by a minimum s-t cut (Boykov & Jolly 2001): one node per pixel, an edge
source -> n costing -log p(z_n | background) (cut when n ends up background), n -> sink
costing -log p(z_n | foreground), and both edges m <-> n costing the pair's V term. The
pixels still reachable from the source in the residual graph of a maximum flow form the
foreground. GrabCut then alternates: re-fit each mixture to the pixels of its label, cut
again. The paper re-fits by giving each pixel to its likeliest component; here a few
steps of EM started from the previous mixture do it, which cannot lower the penalised
likelihood (the likelihood plus a weak prior on the covariances, PRIOR_VARIANCE). So E,
up to that prior, does not rise from one iteration to the next, but for the rounding of
the cut's capacities to integers.

Seeds are hard constraints (an edge too costly to cut ties a foreground seed to the
source, a background seed to the sink). The first mixtures are fitted (k-means, then EM)
to the seeds alone, or, with unknown_as_foreground, as in the paper: the user fixes only
the background T_B, and every other pixel (the unknown T_U, labels free) starts as
foreground, so the first foreground mixture is fitted to all of them. In tinycnn the
seeds come from a saliency map (Simonyan et al. 2014, sec. 3.1): the pixels above its
95 % quantile are foreground seeds, those below its 30 % quantile background seeds;
``vis/saliency.py`` does that, on a blurred, noise-averaged map.

    python -m vis.saliency --image chelsea.png --size 300      (GrabCut from saliency's seeds)
"""
from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import breadth_first_order, maximum_flow
from scipy.special import logsumexp

GAMMA = 50.0            # Rother et al. 2004: found a versatile setting on their training images
COMPONENTS = 5          # Rother et al. 2004: K = 5 components per mixture
ITERATIONS = 5          # E settles after the first re-fits (the saliency photos: bench/RESULTS.md)
KMEANS_STEPS = 10
EM_STEPS = 10           # per fit; each step can only raise the (penalised) likelihood
# a 3-D mean and full covariance have 9 free parameters: a component fitted to fewer pixels is a
# near-singular spike (5 components on 16 seed pixels cut nothing)
POINTS_PER_COMPONENT = 10
# colour units^2: one pseudo-pixel of unit variance keeps a component that sits on a single uint8
# colour (flat synthetic images, clipped white) at a finite density
PRIOR_VARIANCE = 1.0
# scipy's maximum_flow works in int32 (capacities above 2^31 - 1 wrap silently); all finite
# capacities together are scaled to at most 2^30, so every cut that avoids the seeds' hard
# edges, and so the flow value, stays below HARD
HARD = 2**31 - 1
FINITE_TOTAL = 2**30


class Gmm(NamedTuple):
    weights: np.ndarray      # (K,)
    means: np.ndarray        # (K, 3)
    covs: np.ndarray         # (K, 3, 3)


def kmeans(x, k, *, steps=KMEANS_STEPS, rng=None):
    """(centres (k', D), labels (N,)) of x (N, D) by Lloyd's algorithm from k-means++ seeding
    (Arthur & Vassilvitskii 2007); k' = min(k, number of distinct rows), so every seed owns a
    point. At most ``steps`` rounds of assigning each point to its nearest centre and moving
    each centre to its points' mean; it stops once no assignment changes (nothing would move)."""
    rng = np.random.default_rng(0) if rng is None else rng
    k = min(k, len(np.unique(x, axis=0)))
    centres = [x[rng.integers(len(x))]]
    d2 = squared_distances(x, centres[0][None])[:, 0]        # to the nearest centre chosen so far
    for _ in range(1, k):   # next centre: drawn with probability ~ squared distance to the chosen
        centres.append(x[rng.choice(len(x), p=d2 / d2.sum())])
        d2 = np.minimum(d2, squared_distances(x, centres[-1][None])[:, 0])
    centres = np.array(centres, dtype=np.float64)
    labels = None
    for _ in range(steps):
        new = squared_distances(x, centres).argmin(axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        count = np.bincount(labels, minlength=k)
        sums = np.stack([np.bincount(labels, x[:, d], minlength=k) for d in range(x.shape[1])],
                        axis=1)
        # an emptied centre stays where it was
        centres = np.where(count[:, None] > 0, sums / np.maximum(count, 1)[:, None], centres)
    return centres, squared_distances(x, centres).argmin(axis=1)


def squared_distances(x, centres, *, chunk_floats=2**22):
    """(N, K) ||x_n - c_k||^2, differences squared directly (no cancellation: uint8 colours tie
    exactly), a block of rows at a time so that (rows, K, D) stays near chunk_floats values."""
    rows = max(1, chunk_floats // (len(centres) * x.shape[1]))
    return np.concatenate([((x[i:i + rows, None, :] - centres) ** 2).sum(-1)
                           for i in range(0, len(x), rows)])


def m_step(x, resp):
    """The mixture that maximises the expected log-likelihood under responsibilities resp (N, K),
    plus the covariance prior -PRIOR_VARIANCE / 2 tr(Sigma^-1):
    Sigma_k = (S_k + PRIOR_VARIANCE I) / N_k."""
    n_k = resp.sum(axis=0)                                           # (K,)
    means = resp.T @ x / np.maximum(n_k, 1e-300)[:, None]
    scatter = np.stack([(r[:, None] * (x - mu)).T @ (x - mu)
                        for r, mu in zip(resp.T, means)])                     # (K, D, D)
    covs = (scatter + PRIOR_VARIANCE * np.eye(x.shape[1])) / np.maximum(n_k, 1e-300)[:, None, None]
    return Gmm(n_k / len(x), means, covs)


def component_log_density(gmm, x):
    """(N, K): log pi_k + log N(x_n; mu_k, Sigma_k)."""
    maha = np.stack([np.einsum("ni,ni->n", (x - mu) @ precision, x - mu)     # (N, K) Mahalanobis
                     for mu, precision in zip(gmm.means, np.linalg.inv(gmm.covs))], axis=1)
    logdet = np.linalg.slogdet(gmm.covs)[1]
    with np.errstate(divide="ignore"):           # a component that lost every pixel: log 0
        return np.log(gmm.weights) - 0.5 * (maha + logdet + x.shape[1] * np.log(2 * np.pi))


def log_density(gmm, x):
    """(N,) log p(x_n | gmm)."""
    return logsumexp(component_log_density(gmm, x), axis=1)


def log_prior(gmm):
    """The covariance prior's log density (up to a constant):
    -PRIOR_VARIANCE / 2 sum_k tr(Sigma_k^-1)."""
    return -0.5 * PRIOR_VARIANCE * np.trace(np.linalg.inv(gmm.covs), axis1=1, axis2=2).sum()


def em(x, gmm, *, steps=EM_STEPS):
    """(gmm, objective): ``steps`` EM steps from ``gmm`` on x (N, D); objective[i] is
    sum_n log p(x_n) + log_prior before step i (and after the last), which EM never lowers
    (Dempster, Laird & Rubin 1977)."""
    objective = []
    for _ in range(steps):
        logp = component_log_density(gmm, x)
        total = logsumexp(logp, axis=1)
        objective.append(total.sum() + log_prior(gmm))
        gmm = m_step(x, np.exp(logp - total[:, None]))
    objective.append(log_density(gmm, x).sum() + log_prior(gmm))
    return gmm, objective


def fit_gmm(x, components, *, rng=None):
    """A mixture of ``components`` Gaussians (fewer for few points) fitted to x (N, D): k-means,
    then EM."""
    centres, labels = kmeans(x, max(1, min(components, len(x) // POINTS_PER_COMPONENT)), rng=rng)
    return em(x, m_step(x, np.eye(len(centres))[labels]))[0]


def neighbour_pairs(h, w):
    """(m, n, dist): flat indices of every unordered pair of 8-neighbours in an h x w grid,
    once."""
    idx = np.arange(h * w).reshape(h, w)
    offsets = [(idx[:, :-1], idx[:, 1:], 1.0), (idx[:-1, :], idx[1:, :], 1.0),
               (idx[:-1, :-1], idx[1:, 1:], np.sqrt(2)), (idx[:-1, 1:], idx[1:, :-1], np.sqrt(2))]
    m = np.concatenate([a.ravel() for a, _, _ in offsets])
    n = np.concatenate([b.ravel() for _, b, _ in offsets])
    dist = np.concatenate([np.full(a.size, d) for a, _, d in offsets])
    return m, n, dist


def n_links(z, h, w, gamma=GAMMA):
    """(m, n, weight): the pairwise term's cost gamma exp(-beta ||z_m - z_n||^2) / dist for each
    8-neighbour pair of the colours z (h * w, 3), with beta = 1 / (2 <||z_m - z_n||^2>)."""
    m, n, dist = neighbour_pairs(h, w)
    d2 = ((z[m] - z[n]) ** 2).sum(axis=1)
    mean = d2.mean() if len(d2) else 0.0
    beta = 1 / (2 * mean) if mean > 0 else 0.0       # a flat image: every pair costs gamma / dist
    return m, n, gamma * np.exp(-beta * d2) / dist


def energy(mask, d_fg, d_bg, links):
    """E = U + V of the flat labelling mask (P,) bool, data costs d_fg, d_bg (P,), links
    (m, n, weight)."""
    m, n, weight = links
    return np.where(mask, d_fg, d_bg).sum() + weight[mask[m] != mask[n]].sum()


def cut_graph(d_fg, d_bg, links, foreground, background):
    """(graph, scale): the s-t graph whose minimum cut minimises E, as an int32 csr_array over
    P pixels + source (index P) + sink (P + 1); capacities are scale * costs, rounded.

    Terminal edges carry the data costs less their per-pixel minimum (a constant shift of E,
    so that they are non-negative); a seed's edge to its own terminal is HARD and the other 0.
    """
    m, n, weight = links
    p = len(d_fg)
    base = np.minimum(d_fg, d_bg)
    to_source, to_sink = d_bg - base, d_fg - base      # cut when background, when foreground
    to_source[foreground | background] = to_sink[foreground | background] = 0
    finite = to_source.sum() + to_sink.sum() + 2 * weight.sum()
    # maximum_flow needs integers: scale so the finite capacities total FINITE_TOTAL, round
    scale = FINITE_TOTAL / finite if finite > 0 else 1.0
    source_cap = np.where(foreground, HARD, np.rint(scale * to_source))
    sink_cap = np.where(background, HARD, np.rint(scale * to_sink))
    link_cap = np.rint(scale * weight)
    pixels = np.arange(p)
    rows = np.concatenate([m, n, np.full(p, p), pixels])
    cols = np.concatenate([n, m, pixels, np.full(p, p + 1)])
    caps = np.concatenate([link_cap, link_cap, source_cap, sink_cap]).astype(np.int64)
    keep = caps > 0
    graph = sparse.csr_array((caps[keep].astype(np.int32), (rows[keep], cols[keep])),
                             shape=(p + 2, p + 2))
    return graph, scale


def min_cut(graph, source, sink):
    """(source_side (V,) bool, flow value): the nodes reachable from the source in the residual
    graph of a maximum flow (Ford & Fulkerson 1956), and the cut's capacity."""
    # Dinic's algorithm, scipy's default since 1.8: far faster than Edmonds-Karp on these graphs
    # (bench/RESULTS.md)
    result = maximum_flow(graph, source, sink, method="dinic")
    residual = (graph - result.flow).tocsr()    # the flow is antisymmetric: back edges appear here
    residual.data = (residual.data > 0).astype(np.int8)
    residual.eliminate_zeros()
    side = np.zeros(graph.shape[0], dtype=bool)
    side[breadth_first_order(residual, source, directed=True, return_predecessors=False)] = True
    return side, result.flow_value


def grabcut(image, foreground, background, *, components=COMPONENTS, iterations=ITERATIONS,
            gamma=GAMMA, seed=0, unknown_as_foreground=False, return_energies=False):
    """Foreground mask (H, W) bool of image uint8 (H, W, 3) from hard seeds foreground, background
    (H, W) bool (Rother et al. 2004). With return_energies, also the list of E after each cut.

    components: Gaussians per mixture (the paper's K = 5); iterations: fit-and-cut rounds;
    gamma: the pairwise weight (the paper's 50); seed: k-means++'s random draws;
    unknown_as_foreground: fit the first foreground mixture to every pixel that is not a
    background seed (Rother et al.'s T_U initialised as foreground), not to the foreground seeds.
    """
    h, w, _ = image.shape
    foreground, background = np.asarray(foreground, dtype=bool), np.asarray(background, dtype=bool)
    if foreground.shape != (h, w) or background.shape != (h, w):
        raise ValueError(f"seeds of shapes {foreground.shape} and {background.shape} for an image "
                         f"of {h} x {w}")
    if not foreground.any() or not background.any():
        raise ValueError("grabcut needs at least one foreground and one background seed")
    if (foreground & background).any():
        raise ValueError("a pixel cannot be both a foreground and a background seed")
    if iterations < 1:
        raise ValueError(f"grabcut needs at least one iteration, not {iterations}")
    z = image.reshape(-1, 3).astype(np.float64)
    fg_seeds, bg_seeds = foreground.ravel(), background.ravel()
    links = n_links(z, h, w, gamma)
    rng = np.random.default_rng(seed)
    first_fg = ~bg_seeds if unknown_as_foreground else fg_seeds
    fg, bg = fit_gmm(z[first_fg], components, rng=rng), fit_gmm(z[bg_seeds], components, rng=rng)
    energies = []
    for i in range(iterations):
        if i:
            fg, bg = em(z[mask], fg)[0], em(z[~mask], bg)[0]
        d_fg, d_bg = -log_density(fg, z), -log_density(bg, z)
        graph, _ = cut_graph(d_fg, d_bg, links, fg_seeds, bg_seeds)
        mask = min_cut(graph, h * w, h * w + 1)[0][:h * w]
        energies.append(energy(mask, d_fg, d_bg, links))
    mask = mask.reshape(h, w)
    return (mask, energies) if return_energies else mask
