"""Maximally activating patches: the image regions a channel responds to most.

Run many images through the network, record one channel's activation at every
position, keep the k strongest, and crop from each image the exact receptive
field of that position (CS231n lecture "Visualizing and Understanding";
Springenberg et al. 2015 fig. 4; Girshick et al. 2014).

The receptive field follows from the kernel sizes, strides and paddings below the
layer. Walking up from the input with size r = 1, jump j = 1, offset o = 0, every
convolution or pooling with kernel k, stride s, padding p does

    r <- r + (k - 1) * j,     o <- o + p * j,     j <- j * s

and output (y, x) then sees input rows y*j - o ... y*j - o + r - 1 (likewise columns).
A Fire module's branches are nested windows, so its field is the widest branch's.

    python -m vis.max_patches --model squeezenet --layer fire5 --channels 0 1 2 3   (make max_patches)
"""
import numpy as np

from tinycnn import backend
from tinycnn.layers import AvgPool2d, Conv2d, MaxPool2d
from tinycnn.net import Concat, Container
from vis import cli, render


def _walk(layer, path, field):
    """Fold ``layer`` (up to ``path`` inside it, if given) into field = (size, jump, offset)."""
    size, jump, offset = field
    if isinstance(layer, (Conv2d, MaxPool2d, AvgPool2d)):
        return size + (layer.kernel_size - 1) * jump, jump * layer.stride, offset + layer.padding * jump
    if isinstance(layer, Concat):
        if path:
            return _walk(layer.layers[path[0]], path[1:], field)
        fields = [_walk(branch, (), field) for branch in layer.layers.values()]
        return max(fields)  # centred branches: the largest window contains the others
    if isinstance(layer, Container):
        for name, child in layer.layers.items():
            field = _walk(child, path[1:] if path and path[0] == name else (), field)
            if path and path[0] == name:
                break
        return field
    return field  # ReLU, dropout: the field is unchanged


def receptive_field(net, layer):
    """(size, jump, offset) of ``layer``'s units: output (y, x) sees the input square
    with top-left corner (y*jump - offset, x*jump - offset) and side ``size``."""
    net.layer(layer)  # unknown names fail with suggestions
    return _walk(net, tuple(layer.split(".")), (1, 1, 0))


def crop(image, top, left, size, fill=0.0):
    """The size x size window of a (C, H, W) image at (top, left); outside is ``fill``."""
    C, H, W = image.shape
    out = np.full((C, size, size), fill, dtype=image.dtype)
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + size, H), min(left + size, W)
    if t1 > t0 and l1 > l0:
        out[:, t0 - top:t1 - top, l0 - left:l1 - left] = image[:, t0:t1, l0:l1]
    return out


def _batch_winners(a, k, one_per_image):
    """The k largest of a batch's activations a (n, H', W'), ranked where a lives; only
    they come back to the host: (values (k,), where (k, 3) rows of (image in batch, y, x))."""
    xp = backend.get_array_module(a)
    n, H, W = a.shape
    flat = a.reshape(n, H * W)
    if one_per_image:
        pos = flat.argmax(axis=1)                                 # each image's strongest position
        index = xp.arange(n) * (H * W) + pos
    else:
        index = xp.arange(n * H * W)
    values = flat.ravel()[index]
    # NumPy's default sort is not stable; a stable one keeps ties in image order, as the
    # host merge does (CuPy's sort is stable already)
    order = (xp.argsort(-values, kind="stable") if xp is np else xp.argsort(-values))[:k]
    index = index[order]
    where = xp.stack([index // (H * W), index % (H * W) // W, index % W], axis=1)
    return backend.to_numpy(values[order]), backend.to_numpy(where).astype(int)


def top_patches(net, images, layer, channel, k=8, *, one_per_image=True, batch_size=64, log=None):
    """The k strongest activations of ``channel`` of ``layer`` over ``images`` and their patches.

    images: (N, C, H, W) NumPy, normalised as the model expects. one_per_image: use
    each image's strongest position only, so the k patches come from k images.
    Returns (patches (k, C, size, size), values (k,), where (k, 3) rows of (image, y, x)).
    Patch pixels outside the image are 0 (the mean pixel after normalisation).
    """
    size, jump, offset = receptive_field(net, layer)
    best_values, best_where = np.empty(0), np.empty((0, 3), dtype=int)
    for start in range(0, len(images), batch_size):
        act = net.activations(backend.asarray(images[start:start + batch_size]), layer)[layer]
        if act.ndim != 4:
            raise ValueError(f"layer {layer!r} has no spatial positions (output {act.shape}); pick a conv layer")
        values, where = _batch_winners(act[:, channel], k, one_per_image)   # ranked on the device
        values = np.concatenate([best_values, values])
        where = np.concatenate([best_where, where + [start, 0, 0]])
        keep = np.argsort(-values, kind="stable")[:k]       # ties: the earlier image wins
        best_values, best_where = values[keep], where[keep]
        if log:
            log(f"{layer} channel {channel}: {min(start + batch_size, len(images))}/{len(images)} images")
    patches = np.stack([crop(images[i], y * jump - offset, x * jump - offset, size) for i, y, x in best_where])
    return patches, best_values, best_where


def main(argv=None):
    from tinycnn.images import deprocess
    p = cli.parser("Maximally activating patches of a few channels.", target=False, layer="patches_layer")
    p.add_argument("--channels", type=cli.index, nargs="+", default=list(range(8)), help="channels, one row each")
    p.add_argument("--k", type=cli.count, default=8, help="patches per channel (default: %(default)s)")
    p.add_argument("--count", type=cli.count, default=2000, help="CIFAR-10 test images to search (cifar10 model)")
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args)
    args.image = args.image or cli.default_images(args)
    cli.check_channel(net, args.layer, *args.channels)
    x, _ = cli.load_inputs(net, args.image)
    x = backend.to_numpy(x)
    size = receptive_field(net, args.layer)[0]
    scale = max(1, 48 // size)
    rows = []
    for c in args.channels:
        patches, values, _ = top_patches(net, x, args.layer, c, args.k,
                                         log=lambda s: print(s, end="\r", flush=True))
        tiles = [render.upscale(deprocess(pt, mean=net.meta["mean"], std=net.meta["std"]), scale) for pt in patches]
        rows.append(render.grid(np.stack(tiles), ncols=len(tiles), pad=2))
    print()
    image = render.caption(render.vstack(rows, pad=4), f"{args.model} {args.layer}: top {args.k} patches "
                           f"({size}x{size} px receptive field) for channels {args.channels}")
    print(f"wrote {render.save(image, cli.output_path(args, 'max_patches'))}")


if __name__ == "__main__":
    cli.run(main)
