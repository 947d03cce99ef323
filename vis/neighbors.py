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
        raise ValueError(f"query features have {q.shape[1]} dimensions but the database has "
                         f"{f.shape[1]}")
    d2 = (q ** 2).sum(1)[:, None] + (f ** 2).sum(1)[None, :] - 2 * q @ f.T
    if exclude is not None:
        d2[np.arange(len(q)), exclude] = np.inf
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def feature_and_pixel_neighbors(net, x, layer, queries, k, *, log=None):
    """((Q, k), (Q, k)) indices into x (N, 3, S, S), normalised: each query's k nearest other
    images by ``layer``'s features, and by raw pixels."""
    features = net.features(x, layer, log=log)
    return (nearest_neighbors(features[queries], features, k, exclude=queries),
            nearest_neighbors(x[queries], x, k, exclude=queries))


TILE = 96       # px: each image's side in the figure


def _strip(rgb, indices):
    """The uint8 images rgb[indices] as one row of thumbnails."""
    tiles = np.stack([render.thumbnail(rgb[i], TILE) for i in indices])
    return render.grid(tiles, ncols=len(indices), pad=2)


def main(argv=None):
    p = cli.parser("Nearest neighbours in last-layer feature space vs pixel space.", target=False,
                   layer="feature_layer")
    p.add_argument("--queries", type=cli.index, nargs="+", default=None,
                   help="indices of the query images in the database (default: 6 spread evenly "
                        "over it)")
    p.add_argument("--k", type=cli.count, default=6,
                   help="neighbours per query (default: %(default)s)")
    p.add_argument("--count", type=cli.count, default=10000,
                   help="CIFAR-10 test images in the database")
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args)
    cli.check_channel(net, args.layer)
    specs = cli.expand_folders(args.image) if args.image else cli.default_images(args)
    if max(args.queries or [0]) >= len(specs) or args.k >= len(specs):
        raise ValueError(f"--queries and --k must be below the number of images, {len(specs)}")
    x, rgb = cli.load_inputs(net, specs)
    x = backend.to_numpy(x)
    queries = np.array(args.queries if args.queries else np.linspace(0, len(x) - 1, 6).astype(int))
    by_features, by_pixels = feature_and_pixel_neighbors(
        net, x, args.layer, queries, args.k, log=lambda s: print(s, end="\r", flush=True))
    print()
    rows = [render.hstack([_strip(rgb, [q]), _strip(rgb, nf), _strip(rgb, npx)], pad=16)
            for q, nf, npx in zip(queries, by_features, by_pixels)]
    text = (f"query | {args.k} nearest in {args.layer} feature space | {args.k} nearest in pixel "
            f"space ({len(x)} images, {args.model}, tile {TILE}px)")
    image = render.caption(render.vstack(rows, pad=2), text)
    print(f"wrote {render.save(image, cli.output_path(args, 'neighbors'))}")


if __name__ == "__main__":
    cli.run(main)
