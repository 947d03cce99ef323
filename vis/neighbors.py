"""Last-layer nearest neighbours: feature space against pixel space.

Krizhevsky et al. (2012), fig. 4: images whose last-layer features are close to a
query's show the same kind of object even when their pixels are far apart (a dog
facing left next to one facing right), while neighbours in pixel space share
colours and layout, not content. Distance is Euclidean in both spaces,

    d(q, x)^2 = |f(q)|^2 + |f(x)|^2 - 2 f(q).f(x)

with f the layer's flattened activations (features) or the raw pixels.

    python -m vis.neighbors --model cifar10                          (make neighbors)
"""
import numpy as np

from tinycnn import backend
from vis import cli, render


def nearest_neighbors(query_features, features, k, *, exclude=None):
    """(Q, k) indices into ``features`` of each query's k nearest rows (Euclidean).

    exclude: optional (Q,) index per query to leave out (the query itself when the
    queries are drawn from the same set).
    """
    q = np.asarray(query_features, dtype=np.float64).reshape(len(query_features), -1)
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    if q.shape[1] != f.shape[1]:
        raise ValueError(f"query features have {q.shape[1]} dimensions but the database has {f.shape[1]}")
    d2 = (q ** 2).sum(1)[:, None] + (f ** 2).sum(1)[None, :] - 2 * q @ f.T
    if exclude is not None:
        d2[np.arange(len(q)), exclude] = np.inf
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def main(argv=None):
    p = cli.parser("Nearest neighbours in last-layer feature space vs pixel space.", target=False,
                   layer="feature_layer")
    p.add_argument("--queries", type=cli.index, nargs="+", default=None,
                   help="indices of the query images in the database (default: 6 spread evenly over it)")
    p.add_argument("--k", type=cli.count, default=6, help="neighbours per query (default: %(default)s)")
    p.add_argument("--count", type=cli.count, default=10000, help="CIFAR-10 test images in the database")
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args)
    layer = args.layer
    cli.check_channel(net, layer)
    args.image = cli.expand_folders(args.image) if args.image else cli.default_images(args)
    if max(args.queries or [0]) >= len(args.image) or args.k >= len(args.image):
        raise ValueError(f"--queries and --k must be below the number of images, {len(args.image)}")
    x, rgb = cli.load_inputs(net, args.image)
    x = backend.to_numpy(x)
    feats = net.features(x, layer, log=lambda s: print(s, end="\r", flush=True))
    print()
    queries = np.array(args.queries if args.queries else np.linspace(0, len(x) - 1, 6).astype(int))
    by_features = nearest_neighbors(feats[queries], feats, args.k, exclude=queries)
    by_pixels = nearest_neighbors(x[queries], x, args.k, exclude=queries)
    size = 96

    def tile(i):
        return render.thumbnail(rgb[i], size)
    rows = []
    for q, nf, npx in zip(queries, by_features, by_pixels):
        left = render.grid(np.stack([tile(q)]), ncols=1, pad=2)
        mid = render.grid(np.stack([tile(i) for i in nf]), ncols=args.k, pad=2)
        right = render.grid(np.stack([tile(i) for i in npx]), ncols=args.k, pad=2)
        rows.append(render.hstack([left, mid, right], pad=16))
    image = render.caption(render.vstack(rows, pad=2), f"query | {args.k} nearest in {layer} feature space "
                           f"| {args.k} nearest in pixel space ({len(x)} images, {args.model}, tile {size}px)")
    print(f"wrote {render.save(image, cli.output_path(args, 'neighbors'))}")


if __name__ == "__main__":
    cli.run(main)
