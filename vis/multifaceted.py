"""Multifaceted feature visualisation: one class, several looks.

Nguyen, Yosinski & Clune (2016), "Multifaceted Feature Visualization". A class is
not one picture: a horse is seen from the side or close up, alone or ridden. One class
visualisation mixes these looks; Nguyen et al. draw one picture per *facet*:

1. embed the class's training images by their activations at a late layer (fc7 there,
   relu6 here), reduce them with PCA and cluster them (they use t-SNE, then k-means;
   here k-means in the PCA space, which needs no t-SNE);
2. start each facet from the mean of the images nearest its cluster's centre, not of the
   whole cluster: the mean of a thousand horses is a grey blur that every cluster shares.
   Here the 2 nearest: this small net's relu6 clusters mix colours and poses, and the mean
   of more of them is a blur from which every facet climbs to the same picture;
3. climb the class score from there, regularised so that the facet stays that
   cluster's picture.

Step 3 here: the facet is its start x0 plus an offset t, drawn in decorrelated colours
(Olah et al. 2017, the colour matrix M of vis.class_visualization, scaled by the
network's per-channel std sigma), and the offset is penalised:

    facet = x0 + D t*,   t* = argmax_t  S_c(x0 + D t) - lambda ||t||^2,   D = diag(1/sigma) M

M's first column is brightness and its other two (colour differences) are about 3.6 and 7.5
times shorter, so a step (M M^T times the pixel gradient) moves brightness 13 and 57 times
further than colour: the ascent draws mostly in light and dark (edges, wheels, windows)
and leaves the cluster's colours. The penalty keeps each facet near its own start, where
plain ascent (CS231n's recipe) drives every start to the one picture the network likes
best. As in CS231n's recipe the image is jittered (a random roll each step), the offset
blurred every few steps and the pixels kept in range; t climbs for 50 steps from 0, not to
the maximum. (Nguyen et al. also bias the ascent towards the image's centre; at 32x32
each facet is already one object in the middle.)

k-means (Lloyd 1982) with k-means++ seeding (Arthur & Vassilvitskii 2007), the one
GrabCut fits its colour mixtures from (vis/grabcut.py): alternate assigning each point
to its nearest centre and moving each centre to the mean of its points, until no
assignment changes.

    python -m vis.multifaceted --model cifar10 --target horse   (make multifaceted)
"""
import numpy as np

from tinycnn import backend
from vis import cli, render
from vis._optimize import gaussian_blur, optimize, pixel_range
from vis.objectives import score_objective, total
# One of the two techniques that import another (tests/test_vis_structure.py): a facet is a
# class visualisation started from a cluster's mean image (Nguyen et al. 2016, sec. 2.2), drawn
# with CS231n's blur and jitter and in class visualisation's decorrelated colours. The clusters
# come from the shared k-means in vis/grabcut.py.
from vis.class_visualization import COLORS, CS231N
from vis.grabcut import kmeans

PCA_DIMS = 50     # the usual step before t-SNE; 91-95% of relu6's variance (horses, cars)
NEAREST = 2       # images averaged into a start (see step 2 above)
# the ascent, chosen by looking at the CIFAR-10 net's automobiles and horses: far enough to draw
# the class into each start, not so far that every facet becomes the same picture or loses its
# start's colours
FACET = dict(steps=50, lr=0.1, weight=1.0)


def cluster(features, k, *, seed=0):
    """(labels (N,), nearest): k-means of ``features`` (N, D) reduced by PCA to PCA_DIMS
    dimensions; labels 0..k'-1 name the clusters that kept images (k' <= k); nearest[j] the
    indices of cluster j's (up to) NEAREST members closest to its centre, nearest first."""
    x = features - features.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    # each distinct row projected once, so that equal features stay equal (k-means counts them)
    distinct, inverse = np.unique(x, axis=0, return_inverse=True)
    z = (distinct @ vt[:PCA_DIMS].T)[inverse.ravel()]              # (N, <= PCA_DIMS)
    _, labels = kmeans(z, k, steps=100, rng=np.random.default_rng(seed))
    labels = np.unique(labels, return_inverse=True)[1].ravel()    # clusters with images: 0..k'-1
    nearest = []
    for j in range(labels.max() + 1):
        members = np.flatnonzero(labels == j)
        distance = ((z[members] - z[members].mean(axis=0)) ** 2).sum(axis=1)
        nearest.append(members[np.argsort(distance, kind="stable")[:NEAREST]])
    return labels, nearest


def colour_offsets(net, dtype=np.float32):
    """D (3, 3), on the backend: an offset t in decorrelated colours -> the change of the
    normalised image, D = diag(1/std) M."""
    std = np.asarray(net.meta["std"], np.float64)
    return backend.asarray((COLORS / std[:, None]).astype(dtype))


def offset(D, t):
    """D t at every pixel: (3, 3), (N, 3, H, W) -> (N, 3, H, W)."""
    return backend.get_array_module(t).einsum("ij,njhw->nihw", D, t)


def facet_objective(net, target, x0, D, *, weight, jitter=0, seed=0):
    """t -> (loss, dloss/dt) of the offset t (1, 3, H, W) from the start x0:
    loss = -S(x0 + D t) + weight ||t||^2, the image rolled by up to ``jitter`` px each call,
    dloss/dt = D^T (-dS/dx) + 2 weight t."""
    score = score_objective(net, target)
    rng = np.random.default_rng(seed)
    xp = backend.get_array_module(x0)

    def f(t):
        dy, dx = (int(v) for v in rng.integers(-jitter, jitter + 1, 2)) if jitter else (0, 0)
        loss, g = score(xp.roll(x0 + offset(D, t), (dy, dx), axis=(2, 3)))
        g = xp.roll(g, (-dy, -dx), axis=(2, 3))
        return loss + weight * total(t * t), offset(D.T, g) + 2 * weight * t
    return f


def facet(net, target, x0, *, steps=FACET["steps"], lr=FACET["lr"], weight=FACET["weight"],
          seed=0):
    """The facet (1, 3, H, W), normalised, on the backend, grown from the start x0 (1, 3, H, W):
    gradient ascent on the offset t, which is blurred every CS231N["blur_every"] steps and cut
    back wherever x0 + D t leaves the valid pixel range."""
    xp = backend.get_array_module(x0)
    D = colour_offsets(net, x0.dtype)
    D_inv = backend.asarray(np.linalg.inv(backend.to_numpy(D).astype(np.float64)).astype(x0.dtype))
    lo, hi = pixel_range(net)

    def blur_and_keep_in_range(t, step):
        if step % CS231N["blur_every"] == 0:
            t = gaussian_blur(t, CS231N["blur_sigma"])
        x = xp.minimum(xp.maximum(x0 + offset(D, t), lo), hi)
        return offset(D_inv, x - x0)
    jitter = max(1, round(CS231N["jitter"] * x0.shape[-1] / 224))  # CS231n's 16 px at 224
    f = facet_objective(net, target, x0, D, weight=weight, jitter=jitter, seed=seed)
    t, _, _ = optimize(f, xp.zeros_like(x0), steps=steps, lr=lr, method="sgd",
                       transforms=[blur_and_keep_in_range])
    return x0 + offset(D, t)


def multifaceted(net, images, target, *, layer, k=6, seed=0, log=None, **ascent):
    """(facets, starts, labels, nearest) of class ``target`` from ``images`` (N, 3, H, W) of
    that class: facets and starts (k', 3, H, W) NumPy, labels and nearest as ``cluster`` gives
    them; k' = k unless the images' features have fewer distinct values, or k-means emptied a
    cluster. ascent: facet()'s steps, lr, weight."""
    if k > len(images):
        raise ValueError(f"{k} facets need at least {k} images of the class; there are "
                         f"{len(images)}")
    labels, nearest = cluster(net.features(images, layer), k, seed=seed)
    starts = np.stack([images[n].mean(axis=0) for n in nearest]).astype(np.float32)
    facets = []
    for j, start in enumerate(starts):
        x = facet(net, target, backend.asarray(start[None]), seed=seed + j, **ascent)
        facets.append(backend.to_numpy(x)[0])
        if log:
            log(f"facet {j + 1}/{len(starts)} ({int((labels == j).sum())} images)")
    return np.stack(facets), starts, labels, nearest


def facet_scores(net, starts, facets):
    """(scores at the starts (k', K), scores at the facets (k', K)): did the ascent reach the
    class?"""
    return tuple(backend.to_numpy(net(backend.asarray(a.astype(np.float32))))
                 for a in (starts, facets))


def rms_distances(a):
    """The root-mean-square difference of every pair of rows of a (n, ...): (n, n), a row at a
    time (n x n x pixels at once would be gigabytes for a few hundred facets)."""
    a = a.reshape(len(a), -1).astype(np.float64)
    return np.stack([np.sqrt(((row - a) ** 2).mean(axis=1)) for row in a])


def main(argv=None):
    from tinycnn.io.data import load_cifar10
    from tinycnn.io.images import class_index
    from tinycnn.models import normalize
    p = cli.parser("Multifaceted visualisation: k-means facets of a class (CIFAR-10 net).",
                   image=False)
    p.add_argument("--k", type=cli.count, default=6,
                   help="facets: k-means clusters of the class's images (default: %(default)s)")
    p.add_argument("--layer", default="relu6",
                   help="layer whose features are clustered (default: %(default)s)")
    p.add_argument("--steps", type=cli.count, default=FACET["steps"],
                   help="gradient-ascent steps per facet (default: %(default)s)")
    p.add_argument("--lr", type=cli.positive, default=FACET["lr"],
                   help="step size (default: %(default)s)")
    p.add_argument("--weight", type=cli.non_negative, default=FACET["weight"],
                   help="lambda: how strongly each facet keeps its start (default: %(default)s)")
    args = cli.parse_args(p, argv, __doc__)
    if args.model != "cifar10":
        raise ValueError("vis.multifaceted clusters training images: use --model cifar10 "
                         "(there are no ImageNet training images here)")
    net = cli.load_net(args, "cifar10")
    cli.check_channel(net, args.layer)
    target = class_index(args.target or "horse", net.meta["classes"])
    x, y = load_cifar10("train")
    images = normalize(x[y == target], net)      # all of the class: 5000 for CIFAR-10
    facets, starts, labels, nearest = multifaceted(
        net, images, target, layer=args.layer, k=args.k, steps=args.steps, lr=args.lr,
        weight=args.weight, seed=args.seed, log=lambda s: print(s, end="\r"))
    print()
    image = facet_figure(net, target, images, labels, nearest, starts, facets)
    print(f"wrote {render.save(image, cli.output_path(args, 'multifaceted'))}")


def facet_figure(net, target, images, labels, nearest, starts, facets):
    """The facets side by side, over one row per cluster, two rows a line: the images nearest its
    centre, their mean (the start), the facet; captioned with the class score at the start and
    at the facet, and the facet's rank among the classes."""
    from tinycnn.io.images import deprocess

    def tile(a, scale=3):
        return render.upscale(deprocess(a, mean=net.meta["mean"], std=net.meta["std"]), scale)
    at_starts, at_facets = facet_scores(net, starts, facets)
    rows = []
    for j in range(len(facets)):
        tiles = [tile(images[i]) for i in nearest[j]] + [tile(starts[j]), tile(facets[j])]
        s0, s1 = at_starts[j], at_facets[j]
        text = (f"cluster {j + 1}: {int((labels == j).sum())} images; class score "
                f"{s0[target]:.1f} at the start -> {s1[target]:.1f} at the facet "
                f"(rank {int((s1 > s1[target]).sum()) + 1} of {len(s1)})")
        rows.append(render.caption(render.grid(np.stack(tiles), ncols=len(tiles), pad=2), text,
                                   size=12))
    pairs = np.triu_indices(len(facets), 1)
    apart, start_apart = rms_distances(facets)[pairs], rms_distances(starts)[pairs]
    moved = np.sqrt(((facets - starts) ** 2).reshape(len(facets), -1).mean(axis=1))
    name = net.meta["classes"][target]
    strip = render.caption(
        render.grid(np.stack([tile(f, 4) for f in facets]), ncols=len(facets), pad=4),
        f"{len(facets)} facets of '{name}', one per k-means cluster of its training images\n"
        f"they differ by {apart.min():.2f}-{apart.max():.2f} RMS (their starts by "
        f"{start_apart.min():.2f}-{start_apart.max():.2f}); each moved {moved.min():.2f}-"
        f"{moved.max():.2f} from its start (normalised pixels)")
    lines = render.columns_aligned([rows[j:j + 2] for j in range(0, len(rows), 2)])
    return render.vstack([strip, render.caption(render.vstack(lines),
                                                "images nearest each cluster's centre | their "
                                                "mean (the start) | the facet")], pad=12)

if __name__ == "__main__":
    cli.run(main)
