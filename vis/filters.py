"""Filters: what the weights of a convolution look like.

The first layer's filters live in pixel space, so each (3, K, K) filter can be shown
as a small RGB image: a trained network's first layer learns oriented edges,
colour blobs and opposing-colour patterns, like Gabor filters (Krizhevsky et al.
2012, fig. 3; CS231n lecture "Visualizing and Understanding"). A higher layer's
filter has one K x K slice per input channel; those slices are not images, but
shown as grayscale tiles (one row per output channel, one column per input
channel) they reveal structure such as smoothness or dead filters.

Each tile is scaled on its own, w -> 255 * (w - min w) / (max w - min w).

``--sort`` orders first-layer filters by how much of each tile is a pattern in space
(an edge, a bar, a spot) rather than one flat colour: with m_c a filter's mean over the
window in colour channel c, and m its mean over everything,

    pattern share = sum (w - m_c)^2 / sum (w - m)^2

1 for a pattern whose every channel averages to the same, 0 for a flat colour: the edge
detectors come first, the colour detectors last.

    python -m vis.filters --model cifar10 --layer conv1      (make filters)
    python -m vis.filters --model squeezenet --layer conv1 --sort
"""

import numpy as np

from tinycnn.backend import to_numpy
from tinycnn.layers import Conv2d
from vis import cli, render


def pattern_share(w):
    """(F,) share of each filter of w (F, C, K, K) that is pattern in space, not flat colour:
    sum (w - channel means)^2 / sum (w - mean)^2 (0 where a filter is one constant)."""
    flat = w - w.mean(axis=(2, 3), keepdims=True)
    centred = w - w.mean(axis=(1, 2, 3), keepdims=True)
    total = (centred ** 2).sum(axis=(1, 2, 3))
    return np.where(total > 0, (flat ** 2).sum(axis=(1, 2, 3)) / np.maximum(total, 1e-300), 0.0)


def filter_grid(net, layer, *, max_out=64, max_in=16, scale=None, sort=False):
    """Picture of the filters of Conv2d layer ``layer``: uint8 (H, W, 3).

    3 input channels: an RGB tile per output filter (at most ``max_out``).
    Otherwise: grayscale tiles for the first ``max_out`` x ``max_in`` (output, input)
    pairs, one row per output channel. ``scale``: pixels per weight (default: tiles
    about 48 px wide). ``sort``: RGB tiles by ``pattern_share``, largest first.
    """
    conv = net.layer(layer)
    if not isinstance(conv, Conv2d):
        convs = [n for n, l in net.named_layers() if isinstance(l, Conv2d)]
        raise ValueError(f"layer {layer!r} is a {type(conv).__name__}, not a convolution; "
                         f"convolutions: {', '.join(convs)}")
    w = to_numpy(conv.params["weight"])                      # (F, C, K, K)
    F, C, K, _ = w.shape
    scale = scale or max(1, 48 // K)
    if sort and C != 3:
        raise ValueError(f"--sort orders RGB first-layer filters; {layer!r} has {C} input "
                         "channels")
    if C == 3:
        shown = w[np.argsort(-pattern_share(w), kind="stable")] if sort else w
        tiles = np.stack([render.to_uint8(f.transpose(1, 2, 0))
                          for f in shown[:max_out]])                # (F, K, K, 3)
        # wide rows, as in Krizhevsky et al.'s fig. 3
        ncols = min(len(tiles), 8 if len(tiles) <= 32 else 16)
    else:
        sub = w[:max_out, :max_in]                           # (F', C', K, K)
        tiles = np.stack([render.to_uint8(s) for f in sub for s in f])
        ncols = sub.shape[1]
    tiles = np.stack([render.upscale(t, scale) for t in tiles])
    return render.grid(tiles, ncols=ncols, pad=max(1, scale // 2))


def main(argv=None):
    p = cli.ArgumentParser(description="Draw a convolution's filters as a tile grid.",
                           module="vis.filters")
    p.add_argument("--model", default="cifar10", help="cifar10 or squeezenet")
    p.add_argument("--layer", default="conv1",
                   help="a Conv2d layer name, e.g. conv1 or fire2.expand.3x3.conv")
    p.add_argument("--max-out", type=cli.count, default=64, help="output channels to show")
    p.add_argument("--max-in", type=cli.count, default=16,
                   help="input channels to show (higher layers)")
    p.add_argument("--sort", action="store_true",
                   help="first layer: the filters most of pattern (edges, spots) first, flat "
                        "colours last")
    p.add_argument("--weights", default=None, help="weights .npz (default: the model's own)")
    p.add_argument("--out", default=None,
                   help="PNG to write (default figures/filters_<model>_<layer>.png)")
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args)
    image = filter_grid(net, args.layer, max_out=args.max_out, max_in=args.max_in,
                        sort=args.sort)
    F, C, K, _ = net.layer(args.layer).params["weight"].shape
    if C == 3:
        shown = "each scaled to its own range"
        if args.sort:
            shown += ",\nsorted from the most pattern in space (edges, spots) to flat colour"
        if F > args.max_out:
            shown = f"the first {args.max_out}, {shown}"
    else:
        shown = (f"rows: the first {min(F, args.max_out)} filters, columns: their first "
                 f"{min(C, args.max_in)} input channels")
    image = render.caption(image,
                           f"{args.model} {args.layer}: {F} filters of {C}x{K}x{K}, {shown}")
    path = render.save(image, args.out or f"figures/filters_{args.model}_{args.layer}.png")
    print(f"wrote {path}")


if __name__ == "__main__":
    cli.run(main)
