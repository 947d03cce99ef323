"""Multifaceted feature visualisation: one class, several looks.

Nguyen, Yosinski & Clune (2016), "Multifaceted Feature Visualization". A class is
not one picture: a car is seen from the front, the side, the back. Take the
training images of the class, embed their activations at a late layer, cluster
them with k-means, and start the class visualisation (vis.class_visualization)
from the mean image of each cluster instead of from a blank image. Each facet
keeps its cluster's layout and colours while gradient ascent sharpens the class.

k-means (Lloyd 1982) with k-means++ seeding (Arthur & Vassilvitskii 2007), the one
GrabCut fits its colour mixtures from (vis/grabcut.py): alternate assigning each point
to its nearest centre and moving each centre to the mean of its points, until no
assignment changes.

    python -m vis.multifaceted --model cifar10 --target automobile   (make multifaceted)
"""
import numpy as np

from tinycnn import backend
from vis import cli, render
# One of the two techniques that import another (tests/test_vis_structure.py): a facet *is* a
# class visualisation, only started from a cluster's mean image instead of noise (Nguyen et al.
# 2016, sec. 2.2). The clusters come from the shared k-means in vis/grabcut.py.
from vis.class_visualization import CS231N, class_visualization
from vis.grabcut import kmeans


def multifaceted(net, images, target, *, layer, k=4, steps=100, lr=CS231N["lr"], seed=0, log=None):
    """(facets (k', 3, H, W) NumPy, labels (N,)) of class ``target``, from ``images`` (N, 3, H, W)
    of that class: k' = k unless the images' features have fewer distinct values, or k-means
    emptied a cluster (its facet would have no start)."""
    if k > len(images):
        raise ValueError(f"{k} facets need at least {k} images of the class; there are "
                         f"{len(images)}")
    _, labels = kmeans(net.features(images, layer).astype(np.float64), k, steps=100,
                       rng=np.random.default_rng(seed))
    labels = np.unique(labels, return_inverse=True)[1].ravel()   # clusters with images: 0..k'-1
    k = labels.max() + 1
    facets = []
    for j in range(k):
        start = backend.asarray(images[labels == j].mean(axis=0, keepdims=True).astype(np.float32))
        x, _ = class_visualization(net, target, regularizer="cs231n", steps=steps, lr=lr,
                                   seed=seed + j, x0=start)
        facets.append(x[0])
        if log:
            log(f"facet {j + 1}/{k} ({int((labels == j).sum())} images)")
    return np.stack(facets), labels


def facet_scores(net, images, facets, labels):
    """(means (k', 3, H, W), scores at the means (k', K), scores at the facets (k', K)): each
    cluster's mean image, where its facet started, and the class scores there and at the facet,
    to tell whether the ascent reached the class."""
    means = np.stack([images[labels == j].mean(0) for j in range(len(facets))]).astype(np.float32)
    at_means, at_facets = (backend.to_numpy(net(backend.asarray(a)))
                           for a in (means, facets.astype(np.float32)))
    return means, at_means, at_facets


def main(argv=None):
    from tinycnn.io.data import load_cifar10
    from tinycnn.io.images import class_index
    from tinycnn.models import normalize
    p = cli.parser("Multifaceted visualisation: k-means facets of a class (CIFAR-10 net).",
                   image=False)
    p.add_argument("--k", type=cli.count, default=4,
                   help="facets: k-means clusters of the class's images (default: %(default)s)")
    p.add_argument("--layer", default="relu6",
                   help="layer whose features are clustered (default: %(default)s)")
    p.add_argument("--steps", type=cli.count, default=100,
                   help="gradient-ascent steps per facet (default: %(default)s)")
    p.add_argument("--lr", type=cli.positive, default=0.3,
                   help="step size: small, so each facet keeps its cluster's look")
    args = cli.parse_args(p, argv, __doc__)
    if args.model != "cifar10":
        raise ValueError("vis.multifaceted clusters training images: use --model cifar10 "
                         "(there are no ImageNet training images here)")
    net = cli.load_net(args, "cifar10")
    cli.check_channel(net, args.layer)
    target = class_index(args.target or "automobile", net.meta["classes"])
    x, y = load_cifar10("train")
    images = normalize(x[y == target][:2000], net)
    facets, labels = multifaceted(net, images, target, layer=args.layer, k=args.k,
                                  steps=args.steps, lr=args.lr, seed=args.seed,
                                  log=lambda s: print(s, end="\r"))
    print()
    image = facet_figure(net, target, images, labels, facets,
                         *facet_scores(net, images, facets, labels))
    print(f"wrote {render.save(image, cli.output_path(args, 'multifaceted'))}")


def facet_figure(net, target, images, labels, facets, means, at_means, at_facets):
    """One row per cluster: up to six members, the mean, the facet; captioned with the class
    score at the mean and at the facet, and the facet's rank among the classes."""
    from tinycnn.io.images import deprocess

    def tile(a):
        return render.upscale(deprocess(a, mean=net.meta["mean"], std=net.meta["std"]), 3)
    rows = []
    for j in range(len(facets)):
        members = np.flatnonzero(labels == j)[:6]
        tiles = [tile(images[i]) for i in members] + [tile(means[j]), tile(facets[j])]
        s0, s1 = at_means[j], at_facets[j]
        text = (f"cluster {j + 1}: {int((labels == j).sum())} images; class score "
                f"{s0[target]:.1f} at the mean -> {s1[target]:.1f} at the facet "
                f"(rank {int((s1 > s1[target]).sum()) + 1} of {len(s1)})")
        rows.append(render.caption(render.grid(np.stack(tiles), ncols=len(tiles), pad=2), text,
                                   size=12))
    return render.caption(render.vstack(rows), f"{net.meta['classes'][target]}: cluster members | "
                          "cluster mean | facet (gradient ascent from the mean)")


if __name__ == "__main__":
    cli.run(main)
