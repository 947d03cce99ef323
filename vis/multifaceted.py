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
        raise ValueError(f"{k} facets need at least {k} images of the class; there are {len(images)}")
    _, labels = kmeans(net.features(images, layer).astype(np.float64), k, steps=100,
                       rng=np.random.default_rng(seed))
    labels = np.unique(labels, return_inverse=True)[1].ravel()     # the clusters that kept images, 0..k'-1
    k = labels.max() + 1
    facets = []
    for j in range(k):
        start = backend.asarray(images[labels == j].mean(axis=0, keepdims=True).astype(np.float32))
        x, _ = class_visualization(net, target, regularizer="cs231n", steps=steps, lr=lr, seed=seed + j, x0=start)
        facets.append(x[0])
        if log:
            log(f"facet {j + 1}/{k} ({int((labels == j).sum())} images)")
    return np.stack(facets), labels


def main(argv=None):
    from tinycnn.io.data import load_cifar10
    from tinycnn.io.images import class_index, deprocess
    from tinycnn.models import normalize
    p = cli.parser("Multifaceted visualisation: k-means facets of a class (CIFAR-10 net).", image=False)
    p.add_argument("--k", type=cli.count, default=4, help="facets: k-means clusters of the class's images (default: %(default)s)")
    p.add_argument("--layer", default="relu6", help="layer whose features are clustered (default: %(default)s)")
    p.add_argument("--steps", type=cli.count, default=100, help="gradient-ascent steps per facet (default: %(default)s)")
    p.add_argument("--lr", type=cli.positive, default=0.3, help="step size: small, so each facet keeps its cluster's look")
    args = cli.parse_args(p, argv, __doc__)
    if args.model != "cifar10":
        raise ValueError("vis.multifaceted clusters training images: use --model cifar10 "
                         "(there are no ImageNet training images here)")
    net = cli.load_net(args, "cifar10")
    cli.check_channel(net, args.layer)
    target = class_index(args.target or "automobile", net.meta["classes"])
    x, y = load_cifar10("train")
    images = normalize(x[y == target][:2000], net)
    facets, labels = multifaceted(net, images, target, layer=args.layer, k=args.k, steps=args.steps, lr=args.lr,
                                  seed=args.seed, log=lambda s: print(s, end="\r"))
    print()
    mean, std = net.meta["mean"], net.meta["std"]
    means = np.stack([images[labels == j].mean(0) for j in range(len(facets))]).astype(np.float32)
    # did the ascent reach the class? its score (and probability) at each start and each facet
    scores = {name: backend.to_numpy(net(backend.asarray(a)))
              for name, a in (("mean", means), ("facet", facets.astype(np.float32)))}
    rows = []
    for j in range(len(facets)):
        members = np.flatnonzero(labels == j)[:6]
        tiles = [render.upscale(deprocess(images[i], mean=mean, std=std), 3) for i in members]
        tiles.append(render.upscale(deprocess(means[j], mean=mean, std=std), 3))
        tiles.append(render.upscale(deprocess(facets[j], mean=mean, std=std), 3))
        s0, s1 = scores["mean"][j], scores["facet"][j]
        rows.append(render.caption(render.grid(np.stack(tiles), ncols=len(tiles), pad=2),
                                   f"cluster {j + 1}: {int((labels == j).sum())} images; class score "
                                   f"{s0[target]:.1f} at the mean -> {s1[target]:.1f} at the facet "
                                   f"(rank {int((s1 > s1[target]).sum()) + 1} of {len(s1)})", size=12))
    image = render.caption(render.vstack(rows), f"{net.meta['classes'][target]}: cluster members | cluster mean "
                                                "| facet (gradient ascent from the mean)")
    print(f"wrote {render.save(image, cli.output_path(args, 'multifaceted'))}")


if __name__ == "__main__":
    cli.run(main)
