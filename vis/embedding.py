"""PCA and t-SNE of last-layer features, as a scatter plot and as an image grid.

PCA (by SVD): centre the features X (N, D); X_c = U S V^T; the first k principal
coordinates are U[:, :k] S[:k], the directions V[:k], and S^2 / sum S^2 the share of
variance each explains.

t-SNE (van der Maaten & Hinton 2008) keeps neighbours neighbours. In D dimensions,
point i picks j with probability p_j|i ~ exp(-|x_i - x_j|^2 / 2 sigma_i^2), sigma_i set
by binary search so that the perplexity 2^H(P_i) is the same for every i; symmetrise
p_ij = (p_j|i + p_i|j) / 2N. In 2-D, q_ij ~ (1 + |y_i - y_j|^2)^-1 (a Student t, whose
heavy tail lets clusters separate). Minimise KL(P || Q) by gradient descent,

    dKL/dy_i = 4 sum_j (p_ij - q_ij) (1 + |y_i - y_j|^2)^-1 (y_i - y_j),

with momentum, per-parameter gains and "early exaggeration" (P x 12 for the first
250 iterations), the settings of the authors' reference implementation. Exact, O(N^2)
per iteration: fine up to a few thousand points.

The image grid (Karpathy's CNN-embedding figure) snaps the t-SNE layout onto a
rows x cols grid, one image per cell, by an optimal assignment of points to cells.

    python -m vis.embedding --model cifar10                         (make embedding)
"""
import numpy as np
from scipy.optimize import linear_sum_assignment
from PIL import Image, ImageDraw

from tinycnn.engine import memory
from vis import _memory, cli, render

# van der Maaten's reference implementation (tsne.py, 2008; bhtsne 2014)
PERPLEXITY = 30.0
EARLY_EXAGGERATION = 12.0
EXAGGERATION_ITERS = 250
LEARNING_RATE = 200.0


def pca(X, k):
    """(coords (N, k), components (k, D), explained variance ratio (k,)) by SVD."""
    X = np.asarray(X, dtype=np.float64)
    Xc = X - X.mean(axis=0)
    U, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    return U[:, :k] * S[:k], Vt[:k], (S[:k] ** 2) / (S ** 2).sum()


def conditional_probabilities(X, perplexity=PERPLEXITY, tol=1e-5, max_steps=64):
    """(N, N) p_j|i, each row's Gaussian width found by binary search so that its
    perplexity exp(H) (H in nats) equals ``perplexity``."""
    X = np.asarray(X, dtype=np.float64)
    N = len(X)
    if N <= 3 * perplexity:
        raise ValueError(f"t-SNE needs more than 3 x perplexity = {3 * perplexity:g} points, "
                         f"got {N}")
    sq = (X ** 2).sum(1)
    D = np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0)
    P = np.zeros((N, N))
    target = np.log(perplexity)                 # entropy in nats
    for i in range(N):
        d = np.delete(D[i], i)
        beta, lo, hi = 1.0 / max(np.median(d), 1e-12), 0.0, np.inf
        for _ in range(max_steps):
            p = np.exp(-(d - d.min()) * beta)
            s = p.sum()
            H = np.log(s) + beta * (d - d.min()) @ p / s
            if abs(H - target) < tol:
                break
            if H > target:                      # too flat: narrow the Gaussian
                lo, beta = beta, beta * 2 if hi == np.inf else (beta + hi) / 2
            else:
                hi, beta = beta, (beta + lo) / 2
        P[i, np.arange(N) != i] = p / s
    return P


def joint_probabilities(X, perplexity=PERPLEXITY):
    """t-SNE's symmetric p_ij = (p_j|i + p_i|j) / 2N, summing to 1."""
    P = conditional_probabilities(X, perplexity)
    return (P + P.T) / (2 * len(P))


def tsne_kl(P, Y, *, kl=True):
    """(KL(P || Q), dKL/dY) for a 2-D layout Y (N, 2): the objective t-SNE descends.
    kl=False skips the KL itself (None): the descent needs only the gradient, and the
    KL's logarithms over all N^2 pairs cost as much as the gradient."""
    sq = (Y ** 2).sum(1)
    num = sq[:, None] + sq[None, :]                              # (N, N), then in place:
    num -= 2 * Y @ Y.T                                           # 1 / (1 + |y_i - y_j|^2)
    np.maximum(num, 0, out=num)
    num += 1.0
    np.reciprocal(num, out=num)
    np.fill_diagonal(num, 0.0)
    total = num.sum()
    value = None
    if kl:
        Q = np.maximum(num / total, 1e-300)
        mask = P > 0
        value = float((P[mask] * np.log(P[mask] / Q[mask])).sum())
    W = P - num / total                             # (p_ij - q_ij) (1 + |y_i - y_j|^2)^-1
    W *= num
    grad = 4.0 * (W.sum(1)[:, None] * Y - W @ Y)
    return value, grad


def tsne(X, *, dims=2, perplexity=PERPLEXITY, iterations=1000, learning_rate=LEARNING_RATE,
         seed=0, log=None):
    """(N, dims) t-SNE layout of the rows of X."""
    P = joint_probabilities(X, perplexity)
    exaggerated = P * EARLY_EXAGGERATION
    rng = np.random.default_rng(seed)
    Y = rng.normal(0.0, 1e-4, (len(P), dims))
    velocity, gains = np.zeros_like(Y), np.ones_like(Y)
    for it in range(iterations):
        exaggerate = it < EXAGGERATION_ITERS
        logged = log is not None and (it % 50 == 0 or it == iterations - 1)
        kl, grad = tsne_kl(exaggerated if exaggerate else P, Y, kl=logged)
        momentum = 0.5 if exaggerate else 0.8
        gains = np.where(np.sign(grad) != np.sign(velocity), gains + 0.2, gains * 0.8).clip(0.01)
        velocity = momentum * velocity - learning_rate * gains * grad
        Y = Y + velocity
        Y -= Y.mean(axis=0)
        if logged:
            log(f"t-SNE iteration {it + 1}/{iterations}: KL {kl:.3f}")
    return Y


def grid_embedding(coords, rows, cols):
    """(rows, cols) indices into coords: an optimal one-to-one placement of points on the grid.

    coords (N, 2) with N >= rows*cols; minimises the total squared distance between
    each point (rescaled to the unit square) and its cell's centre.
    """
    c = np.asarray(coords, dtype=np.float64)
    if len(c) < rows * cols:
        raise ValueError(f"a {rows}x{cols} grid needs at least {rows * cols} points, got {len(c)}")
    c = (c - c.min(0)) / np.maximum(c.max(0) - c.min(0), 1e-12)
    gy, gx = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols,
                         indexing="ij")
    cells = np.stack([gx.ravel(), gy.ravel()], axis=1)          # (rows*cols, 2), x then y
    cost = ((cells[:, None, :] - c[None, :, :]) ** 2).sum(-1)   # (cells, N)
    cell_idx, point_idx = linear_sum_assignment(cost)
    out = np.empty(rows * cols, dtype=int)
    out[cell_idx] = point_idx
    return out.reshape(rows, cols)


def scatter(coords, labels, names, size=560):
    """A scatter plot of 2-D coords coloured by integer label, with a legend."""
    palette = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
               (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]
    c = (coords - coords.min(0)) / np.maximum(coords.max(0) - coords.min(0), 1e-12)
    img = Image.new("RGB", (size + 120, size), "white")
    d = ImageDraw.Draw(img)
    for (x, y), l in zip(c * (size - 20) + 10, labels):
        d.ellipse([x - 2, y - 2, x + 2, y + 2], fill=palette[l % 10])
    for k, name in enumerate(names):
        d.rectangle([size + 8, 10 + 16 * k, size + 18, 20 + 16 * k], fill=palette[k % 10])
        d.text((size + 24, 8 + 16 * k), name, fill="black")
    return np.asarray(img)


def _parser():
    p = cli.parser("PCA and t-SNE of last-layer features; scatter plot and image grid.",
                   target=False, image=False)
    p.add_argument("--layer", default="relu6", help="feature layer (default: %(default)s)")
    p.add_argument("--count", type=cli.count, default=2000, help="CIFAR-10 test images to embed")
    p.add_argument("--iterations", type=cli.count, default=1000,
                   help="t-SNE iterations (default: %(default)s)")
    p.add_argument("--grid", type=cli.count, default=24, help="the image grid is grid x grid")
    p.add_argument("--pca-first", type=cli.count, default=50,
                   help="PCA dimensions kept before t-SNE")
    return p


def _check(net, args):
    """Refuse, before any image loads, what cannot be drawn or would not fit in memory."""
    if args.model != "cifar10":
        raise ValueError("vis.embedding embeds CIFAR-10 test images: use --model cifar10")
    cli.check_channel(net, args.layer)
    if args.count > cli.CIFAR10_TEST_IMAGES:
        raise ValueError(f"--count {args.count} is more than the {cli.CIFAR10_TEST_IMAGES} "
                         "CIFAR-10 test images")
    if args.grid ** 2 > args.count:
        raise ValueError(f"a {args.grid} x {args.grid} grid needs at least {args.grid ** 2} "
                         f"images, --count is {args.count}")
    need = _memory.embedding_need(net, args.layer, args.grid)    # t-SNE's N x N: vis/_memory.py
    memory.check_fits("--count", args.count, need, lowest=args.grid ** 2)


def sample_test_images(count, seed=0):
    """(x (count, 3, 32, 32) in [0, 1], y (count,)): CIFAR-10 test images drawn at random."""
    from tinycnn.io.data import load_cifar10
    x, y = load_cifar10("test")
    keep = np.random.default_rng(seed).permutation(len(x))[:count]
    return x[keep], y[keep]


def figure(images, labels, names, reduced, coords, *, layer, grid):
    """The PCA and t-SNE scatter plots, stacked, beside the t-SNE layout snapped to a grid x grid
    of the images (N, 3, 32, 32) in [0, 1], the grid as tall as the two plots."""
    pca_plot = render.caption(scatter(reduced[:, :2], labels, names),
                              f"PCA of {layer} ({len(images)} test images)")
    tsne_plot = render.caption(scatter(coords, labels, names), f"t-SNE of {layer}")
    cells = grid_embedding(coords, grid, grid)
    tiles = np.stack([np.rint(images[i].transpose(1, 2, 0) * 255).astype(np.uint8)
                      for i in cells.ravel()])
    plots = render.vstack([pca_plot, tsne_plot])
    grid_img = render.grid(tiles, ncols=grid, pad=0)
    side = plots.shape[0] - 30                     # as tall as the two plots, below its caption
    grid_img = np.asarray(Image.fromarray(grid_img).resize((side, side), Image.NEAREST))  # crisp
    grid_img = render.caption(grid_img, "t-SNE layout snapped to a grid")
    return render.hstack([plots, grid_img])


def main(argv=None):
    from tinycnn.models import normalize
    args = cli.parse_args(_parser(), argv, __doc__)
    net = cli.load_net(args)
    _check(net, args)
    x, y = sample_test_images(args.count, args.seed)
    feats = net.features(normalize(x, net), args.layer)
    reduced, _, ratio = pca(feats, args.pca_first)
    print(f"PCA: the first 2 components explain {ratio[:2].sum():.1%}, the first "
          f"{args.pca_first} {ratio.sum():.1%} of the variance")
    coords = tsne(reduced, iterations=args.iterations, seed=args.seed,
                  log=lambda s: print(s, end="\r", flush=True))
    print()
    picture = figure(x, y, net.meta["classes"], reduced, coords, layer=args.layer, grid=args.grid)
    print(f"wrote {render.save(picture, args.out or 'figures/embedding_cifar10.png')}")


if __name__ == "__main__":
    cli.run(main)
