"""Last-layer nearest neighbours: feature space against pixel space.

Krizhevsky et al. (2012), fig. 4: images whose last-layer features are close to a
query's show the same kind of object even when their pixels are far apart (a dog
facing left next to one facing right), while neighbours in pixel space share
colours and layout, not content. Distance is Euclidean in both spaces,

    d(q, x)^2 = |f(q)|^2 + |f(x)|^2 - 2 f(q).f(x)

with f the layer's flattened activations (features) or the raw pixels. Where the images have
labels (CIFAR-10's test set), the figure measures the difference instead of arguing it: each
neighbour is framed green when its class is the query's and red when not, and the title
gives the share of same-class neighbours over many queries in either space (the accuracy of
a k-nearest-neighbour vote, before the vote).

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


def same_class_share(labels, neighbours, queries):
    """The share of the neighbours (Q, k) whose label is their query's (queries (Q,))."""
    labels = np.asarray(labels)
    return float((labels[neighbours] == labels[np.asarray(queries)][:, None]).mean())


TILE = 96       # px: each image's side in the figure
FRAME = 4       # px: the green (same class as the query) or red (another) frame of a neighbour
SCORED = 1000   # queries, evenly spread, over which the title's same-class shares are measured


def _strip(rgb, indices, same=None):
    """The uint8 images rgb[indices] as one row of thumbnails; same (len(indices),) bool, when
    given, frames each green (True) or red (False)."""
    tiles = np.stack([render.thumbnail(rgb[i], TILE) for i in indices])
    if same is not None:
        for tile, ok in zip(tiles, same):
            colour = (0, 170, 0) if ok else (220, 0, 0)
            tile[:FRAME], tile[-FRAME:], tile[:, :FRAME], tile[:, -FRAME:] = (colour,) * 4
    return render.grid(tiles, ncols=len(indices), pad=2)


def _scored(labels, n):
    """The SCORED queries, evenly spread over n images, whose neighbours measure the title's
    shares; none without labels."""
    return (np.zeros(0, int) if labels is None else
            np.linspace(0, n - 1, min(SCORED, n)).astype(int))


def _shares(labels, scored, by_features, by_pixels, k):
    """The title's line: the share of same-class neighbours of the ``scored`` queries, whose
    neighbours are the last rows of by_features and by_pixels."""
    shares = [same_class_share(labels, n[len(n) - len(scored):], scored)
              for n in (by_features, by_pixels)]
    return (f"framed green: the query's class; of the {k} nearest to each of {len(scored)} "
            f"queries, {shares[0]:.0%} share it in feature space, {shares[1]:.0%} in pixel space")


def _labels(specs):
    """The CIFAR-10 test labels of ``specs`` when every spec is a cifar:<index>, else None."""
    if not all(s.startswith("cifar:") for s in specs):
        return None
    from tinycnn.io.data import load_cifar10
    return load_cifar10("test")[1][[int(s[6:]) for s in specs]]


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
    labels = _labels(specs)
    scored = _scored(labels, len(x))
    by_features, by_pixels = feature_and_pixel_neighbors(
        net, x, args.layer, np.concatenate([queries, scored]), args.k,
        log=lambda s: print(s, end="\r", flush=True))
    print()
    same = (lambda n, q: None) if labels is None else (lambda n, q: labels[n] == labels[q])
    rows = [render.hstack([_strip(rgb, [q]), _strip(rgb, nf, same(nf, q)),
                           _strip(rgb, npx, same(npx, q))], pad=16)
            for q, nf, npx in zip(queries, by_features, by_pixels)]
    text = (f"query | {args.k} nearest in {args.layer} feature space | {args.k} nearest in pixel "
            f"space ({len(x)} images, {args.model}, tile {TILE}px)")
    if labels is not None:
        text += "\n" + _shares(labels, scored, by_features, by_pixels, args.k)
    image = render.caption(render.vstack(rows, pad=2), text)
    print(f"wrote {render.save(image, cli.output_path(args, 'neighbors'))}")


if __name__ == "__main__":
    cli.run(main)
