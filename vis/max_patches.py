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

Positions near the border see partly outside the image (zero padding, drawn grey);
with few images their patches would be mostly grey, so on SqueezeNet only positions
whose whole field lies inside the image are ranked (``inside``). Springenberg et al.
searched the 50,000 ImageNet validation images; with a few dozen, every image is
searched whole and, at twice the size, in four quadrants (``SCALES``), and each row
takes at most one patch per image, so that a row shows what its images have in common.

    python -m vis.max_patches --model squeezenet --layer fire5 --channels 0 1 2 3
    make max_patches           (both figures; their commands are in vis/gallery.py)
    python -m vis.max_patches --images my_photos/ --channels 7
"""
import numpy as np

from tinycnn import backend
from tinycnn.engine import memory
from tinycnn.io.images import deprocess, preprocess, resize_center_crop
from tinycnn.layers import AvgPool2d, Conv2d, MaxPool2d
from tinycnn.net import Concat, Container
from vis import _memory, cli, render


def _walk(layer, path, field):
    """Fold ``layer`` (up to ``path`` inside it, if given) into field = (size, jump, offset)."""
    size, jump, offset = field
    if isinstance(layer, (Conv2d, MaxPool2d, AvgPool2d)):
        return (size + (layer.kernel_size - 1) * jump, jump * layer.stride,
                offset + layer.padding * jump)
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


def inside_fraction(shape, size, jump, offset, image_size):
    """(H', W') fraction of each position's receptive field that lies inside the image."""
    def along(n, extent):
        first = np.arange(n) * jump - offset                       # first input row (column) seen
        return (np.minimum(first + size, extent) - np.maximum(first, 0)).clip(0) / size
    return np.outer(along(shape[0], image_size[0]), along(shape[1], image_size[1]))


def _batch_winners(a, k, one_per_image):
    """The k largest of a batch's activations a (n, H', W') (k=None: all n images' maxima with
    one_per_image), ranked where a lives; only they come back to the host:
    (values (k,), where (k, 3) rows of (image in batch, y, x))."""
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


def _best(values, where, k, groups):
    """The k largest values, ties to the earlier image; with groups (N,) at most one per group."""
    order = np.argsort(-values, kind="stable")
    order = order[values[order] > -np.inf]                  # positions ruled out by ``inside``
    if groups is not None:
        _, first = np.unique(groups[where[order, 0]], return_index=True)
        order = order[np.sort(first)]                       # each group's best, still ranked
    return values[order[:k]], where[order[:k]]


def top_patches(net, images, layer, channel, k=8, *, one_per_image=True, groups=None, inside=0.0,
                batch_size=64, log=None):
    """The k strongest activations of ``channel`` of ``layer`` over ``images`` and their patches.

    images: (N, C, H, W) NumPy, normalised as the model expects. one_per_image: use
    each image's strongest position only, so the k patches come from k images;
    groups (N,): images with the same group number (views of one photo) count as one.
    inside: rank only positions with at least this fraction of their receptive field
    inside the image (1.0: no padding in any patch). Returns (patches (k, C, size, size),
    values (k,), where (k, 3) rows of (image, y, x)); fewer than k if fewer qualify.
    Patch pixels outside the image are 0 (the mean pixel after normalisation).
    """
    size, jump, offset = receptive_field(net, layer)
    groups = None if groups is None else np.asarray(groups)
    best_values, best_where = np.empty(0), np.empty((0, 3), dtype=int)
    for start in range(0, len(images), batch_size):
        act = net.activations(backend.asarray(images[start:start + batch_size]), layer)[layer]
        if act.ndim != 4:
            raise ValueError(f"layer {layer!r} has no spatial positions (output {act.shape}); "
                             "pick a conv layer")
        a = act[:, channel]
        if inside > 0:
            fraction = inside_fraction(a.shape[1:], size, jump, offset, images.shape[2:])
            ok = fraction >= inside - 1e-9
            a = backend.get_array_module(a).where(backend.asarray(ok), a, -np.inf)
        # with groups each image's best comes back (n numbers): the merge keeps one per group
        every = groups is not None and one_per_image
        values, where = _batch_winners(a, None if every else k, one_per_image)
        values = np.concatenate([best_values, values])
        where = np.concatenate([best_where, where + [start, 0, 0]])
        best_values, best_where = _best(values, where, k, groups if one_per_image else None)
        if log:
            done = min(start + batch_size, len(images))
            log(f"{layer} channel {channel}: {done}/{len(images)} images")
    patches = np.stack([crop(images[i], y * jump - offset, x * jump - offset, size)
                        for i, y, x in best_where])
    return patches, best_values, best_where


SCALES = (1, 2)     # each photo whole (its centre square), and its quadrants at twice the size


def views(image, size, scales=SCALES, name="the image"):
    """size x size crops of a uint8 (H, W, 3) image: at scale s its short side becomes s*size
    and the centre square is cut into s x s tiles. -> list of uint8 (size, size, 3)."""
    out = []
    for s in scales:
        big = resize_center_crop(image, s * size, name=name)
        out += [big[i * size:(i + 1) * size, j * size:(j + 1) * size]
                for i in range(s) for j in range(s)]
    return out


def load_views(net, specs, scales):
    """(x (V, 3, S, S) NumPy normalised, groups (V,) the image each view comes from)."""
    if any(spec.startswith("cifar:") for spec in specs) or scales == (1,):
        x, _ = cli.load_inputs(net, specs)
        return backend.to_numpy(x), np.arange(len(specs))
    size, mean, std = net.meta["input_size"], net.meta["mean"], net.meta["std"]
    xs, groups = [], []
    for g, spec in enumerate(specs):
        for v in views(cli.read_image(spec), size, scales, name=spec):
            xs.append(preprocess(v, mean=mean, std=std))
            groups.append(g)
    return np.concatenate(xs), np.array(groups)


def _parser():
    default = cli.model_default
    p = cli.parser("Maximally activating patches of a few channels.", target=False,
                   layer="patches_layer")
    p.add_argument("--channels", type=cli.index, nargs="+", default=list(range(8)),
                   help="channels, one row each")
    p.add_argument("--k", type=cli.count, default=8,
                   help="patches per channel (default: %(default)s)")
    p.add_argument("--count", type=cli.count, default=2000,
                   help="CIFAR-10 test images to search (cifar10 model)")
    p.add_argument("--scales", type=cli.count, nargs="+", default=None,
                   help="search each image at these multiples of the input size, cut into tiles "
                        f"(default: {default('squeezenet', 'patch_scales')} on squeezenet, "
                        f"{default('cifar10', 'patch_scales')} on cifar10)")
    p.add_argument("--inside", type=float, default=None,
                   help="rank only positions with this fraction of the receptive field inside the "
                        f"image (default: {default('squeezenet', 'patch_inside')} on squeezenet, "
                        f"{default('cifar10', 'patch_inside')} on cifar10: its fields are most "
                        "of a 32-px image)")
    return p


def _check_memory(net, layer, specs, scales):
    """Refuse, before any image loads, a search whose views would not fit in memory."""
    views = (1,) if any(s.startswith("cifar:") for s in specs) else scales   # as load_views cuts
    need = _memory.max_patches_need(net, layer, len(specs), views)
    memory.check_fits("--scales", max(views), need)


def _row(net, patches, k, scale):
    """One channel's patches (k', C, size, size), normalised, as a row of enlarged pictures."""
    mean, std = net.meta["mean"], net.meta["std"]
    tiles = [render.upscale(deprocess(patch, mean=mean, std=std), scale) for patch in patches]
    return render.grid(np.stack(tiles), ncols=k, pad=2)


def _caption(args, *, images, views, scales, size, inside):
    searched = f"searched {images} images" + (
        f" ({views} views: {' and '.join(map(str, scales))} times the input size)"
        if views > images else "")
    where = ", all inside the image" if inside == 1 else ""
    return (f"{args.model} {args.layer}: top {args.k} patches of channels {args.channels} (rows), "
            f"at most one per image\n{searched}; {size}-px fields{where}")


def main(argv=None):
    args = cli.parse_args(_parser(), argv, __doc__)
    net = cli.load_net(args)
    scales = tuple(args.scales or cli.model_default(args.model, "patch_scales"))
    inside = cli.model_default(args.model, "patch_inside") if args.inside is None else args.inside
    if not 0 <= inside <= 1:
        raise ValueError(f"--inside {inside} is not a fraction between 0 and 1")
    specs = cli.expand_folders(args.image) if args.image else cli.default_images(args)
    cli.check_channel(net, args.layer, *args.channels)
    _check_memory(net, args.layer, specs, scales)
    x, groups = load_views(net, specs, scales)
    size = receptive_field(net, args.layer)[0]
    rows = []
    for c in args.channels:
        patches, _, _ = top_patches(net, x, args.layer, c, args.k, groups=groups, inside=inside,
                                    log=lambda s: print(s, end="\r", flush=True))
        rows.append(_row(net, patches, args.k, scale=max(1, 48 // size)))
    print()
    text = _caption(args, images=len(specs), views=len(x), scales=scales, size=size, inside=inside)
    image = render.caption(render.vstack(rows, pad=4), text)
    print(f"wrote {render.save(image, cli.output_path(args, 'max_patches'))}")


if __name__ == "__main__":
    cli.run(main)
