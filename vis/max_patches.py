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
searched whole and enlarged 2 (3, ...) times in tiles (``--scales``). A row takes at
most ``--per-image`` patches from one image, chosen greedily, strongest first, among
fields that share at most ``--overlap`` of the smaller one's area with a field already
chosen from that image (non-maximum suppression, in the photo's own coordinates, so
a tile's field and the whole view's field of the same stone count as overlapping).

Which channels? ``--pick N`` takes the N most selective: a channel's selectivity is
how far its row stands above its usual response,

    (mean of the row's k activations - mu_c) / sigma_c,

with mu_c, sigma_c the channel's mean and standard deviation over every ranked
position. A channel that fires a little everywhere (a colour) scores low; one that is
silent except on one shape (an eye, a stone) scores high. Two channels can answer to the
same thing (both to eyes) and then find the same crops: a channel half of whose crops
repeat a row already picked (``repeated``: the same photo, fields overlapping by more
than half) is passed over for the next. The caption measures how alike a row is: the
mean cosine similarity of the layer's feature vectors (all its channels) at the row's
positions, against that of random positions.

    python -m vis.max_patches --model squeezenet --layer fire5 --pick 5 --per-image 2 \
        --scales 1 2 3 --k 6
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


def field_boxes(shape, size, jump, offset, frame):
    """(H', W', 3) boxes (top, left, side) of each position's field in the photo's coordinates;
    a view at frame (scale, top, left) is the photo enlarged ``scale`` times, cut at (top, left).
    """
    scale, top, left = frame
    ys = (np.arange(shape[0]) * jump - offset + top) / scale
    xs = (np.arange(shape[1]) * jump - offset + left) / scale
    out = np.empty((shape[0], shape[1], 3))
    out[..., 0], out[..., 1], out[..., 2] = ys[:, None], xs[None, :], size / scale
    return out


def overlap(box, boxes):
    """Share of the smaller square that the two squares have in common: box (3,), boxes (n, 3)."""
    def along(a0, b0):
        return (np.minimum(a0 + box[2], b0 + boxes[:, 2]) - np.maximum(a0, b0)).clip(0)
    common = along(box[0], boxes[:, 0]) * along(box[1], boxes[:, 1])
    return common / np.minimum(box[2], boxes[:, 2]) ** 2


def suppress(values, boxes, m, limit):
    """Greedy non-maximum suppression: the indices of up to m of ``values`` (n,), largest first,
    each chosen only if its field overlaps every field chosen before by at most ``limit``."""
    alive = values > -np.inf
    chosen = []
    while len(chosen) < m and alive.any():
        i = int(np.argmax(np.where(alive, values, -np.inf)))        # ties: the earlier index
        chosen.append(i)
        alive &= overlap(boxes[i], boxes) <= limit
        alive[i] = False
    return np.array(chosen, dtype=int)


def _group_batches(groups, batch_size):
    """(start, stop) of batches of about batch_size views that never split a photo's views."""
    start, n = 0, len(groups)
    while start < n:
        stop = min(start + batch_size, n)
        while stop < n and groups[stop] == groups[stop - 1]:
            stop += 1
        yield start, stop
        start = stop


def _merge(best, values, where, features, k):
    """The k largest of best's and the new (values, where, features), ties to the earlier image."""
    values = np.concatenate([best[0], values])
    order = np.argsort(-values, kind="stable")[:k]
    return (values[order], np.concatenate([best[1], where])[order],
            np.concatenate([best[2], features])[order])


def search(net, images, layer, channels, k=8, *, per_image=1, limit=1.0, groups=None,
           frames=None, inside=0.0, batch_size=64, log=None):
    """Each channel's k strongest activations over ``images``, at most ``per_image`` from one
    photo (None: any number) and none whose field overlaps a stronger one's of the same photo by
    more than ``limit`` (``overlap``); channels None: all of them.

    groups, frames: as load_views returns them (None: every image its own photo, unscaled).
    Returns (best, sample, spread): best {channel: (values (k',), where (k', 3) rows of
    (image, y, x), features (k', C) the layer's activations there)}; sample (V, C) the
    activations at a random admitted position of each view; spread (C, 2) each channel's mean
    and standard deviation over all admitted positions (those ``inside`` lets through).
    """
    size, jump, offset = receptive_field(net, layer)
    groups = np.arange(len(images)) if groups is None else np.asarray(groups)
    frames = np.tile([1, 0, 0], (len(images), 1)) if frames is None else np.asarray(frames)
    best, rng, sample, moments = {}, np.random.default_rng(0), [], 0
    for start, stop in _group_batches(groups, batch_size):
        act = net.activations(backend.asarray(images[start:stop]), layer)[layer]
        if act.ndim != 4:
            raise ValueError(f"layer {layer!r} has no spatial positions (output {act.shape}); "
                             "pick a conv layer")
        act = backend.to_numpy(act)
        n, C, H, W = act.shape
        channels = range(C) if channels is None else channels
        ok = inside_fraction((H, W), size, jump, offset, images.shape[2:]) >= inside - 1e-9
        if not ok.any():
            raise ValueError(f"no position of layer {layer!r} has {inside:g} of its {size}-px "
                             "field inside the image; lower --inside")
        spots = np.argwhere(ok)[rng.integers(ok.sum(), size=n)]
        sample.append(act[np.arange(n), :, spots[:, 0], spots[:, 1]])
        admitted = act.transpose(1, 0, 2, 3)[:, :, ok].reshape(C, -1).astype(np.float64)
        moments = moments + np.stack([np.full(C, admitted.shape[1]), admitted.sum(1),
                                      (admitted ** 2).sum(1)], axis=1)
        boxes = np.stack([field_boxes((H, W), size, jump, offset, f) for f in frames[start:stop]])
        for g in np.unique(groups[start:stop]):
            views = np.flatnonzero(groups[start:stop] == g)
            for c in channels:
                values = np.where(ok, act[views, c], -np.inf).ravel()
                chosen = suppress(values, boxes[views].reshape(-1, 3), per_image or k, limit)
                v, y, x = np.unravel_index(chosen, (len(views), H, W))
                where = np.stack([views[v] + start, y, x], axis=1)
                old = best.get(c, (np.empty(0), np.empty((0, 3), int), np.empty((0, C))))
                best[c] = _merge(old, values[chosen], where, act[views[v], :, y, x], k)
        if log:
            log(f"{layer}: {stop}/{len(images)} images")
    count, total, squares = moments.T
    mean = total / count
    spread = np.stack([mean, np.sqrt(np.maximum(squares / count - mean ** 2, 0))], axis=1)
    return best, np.concatenate(sample), spread


def top_patches(net, images, layer, channel, k=8, **options):
    """The k strongest activations of ``channel`` of ``layer`` over ``images`` and their patches.

    images: (N, C, H, W) NumPy, normalised as the model expects; options: as ``search`` takes
    them (groups (N,): images with the same number are views of one photo; inside: rank only
    positions with at least this fraction of their receptive field inside the image).
    Returns (patches (k, C, size, size), values (k,), where (k, 3) rows of (image, y, x));
    fewer than k if fewer qualify. Patch pixels outside the image are 0 (the mean pixel).
    """
    values, where, _ = search(net, images, layer, [channel], k, **options)[0][channel]
    return patches_at(net, images, layer, where), values, where


def patches_at(net, images, layer, where):
    """The receptive-field crops (n, C, size, size) of the positions where (n, 3)."""
    size, jump, offset = receptive_field(net, layer)
    return np.stack([crop(images[i], y * jump - offset, x * jump - offset, size)
                     for i, y, x in where])


def consistency(features):
    """Mean cosine similarity of the rows of features (n, C), over all pairs of rows."""
    f = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    s = f @ f.T
    return float((s.sum() - np.trace(s)) / (len(f) * (len(f) - 1)))


def selectivity(values, spread):
    """How far a row's activations stand above the channel's usual response, in standard
    deviations: (mean(values) - mean) / std, spread = (mean, std) over every ranked position."""
    return (np.mean(values) - spread[0]) / max(spread[1], 1e-12)


def crop_boxes(net, layer, where, groups, frames):
    """(photo, box) of each crop at where (k, 3) rows of (view, y, x): the photo its view comes
    from and its field (top, left, side) in that photo's coordinates (``field_boxes``); frames
    None: every view is its photo, unscaled."""
    size, jump, offset = receptive_field(net, layer)
    return [(groups[v], field_boxes((y + 1, x + 1), size, jump, offset,
                                    (1, 0, 0) if frames is None else frames[v])[y, x])
            for v, y, x in where]


def repeated(row, other):
    """Share of ``row``'s crops (``crop_boxes``) that another row also crops: the same photo and
    fields overlapping by more than half (``overlap``)."""
    def found(photo, box):
        same = [b for p, b in other if p == photo]
        return bool(same) and overlap(box, np.array(same)).max() > 0.5
    return float(np.mean([found(photo, box) for photo, box in row]))


def pick(best, spread, n, k, boxes=None):
    """The n channels of ``search``'s result (best, spread) whose k patches are most selective
    (``selectivity``), most selective first; rows with fewer than k patches (too few images for
    the channel) come after the full ones. boxes: {channel: ``crop_boxes``}, to pass over a
    channel at least half of whose crops a row already picked has (``repeated``)."""
    score = {c: (len(v) < k, -selectivity(v, spread[c])) for c, (v, _, _) in best.items()
             if len(v)}
    chosen = []
    for c in sorted(score, key=score.get):
        if len(chosen) < n and (boxes is None or
                                all(repeated(boxes[c], boxes[d]) < 0.5 for d in chosen)):
            chosen.append(c)
    return chosen


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


def view_frames(size, scales=SCALES):
    """(scale, top, left) of each of ``views``'s tiles in the enlarged centre square."""
    return [(s, i * size, j * size) for s in scales for i in range(s) for j in range(s)]


def load_views(net, specs, scales):
    """(x (V, 3, S, S) NumPy normalised, groups (V,) the image each view comes from,
    frames (V, 3) or None: each view's (scale, top, left) as ``view_frames`` gives it)."""
    if any(spec.startswith("cifar:") for spec in specs) or scales == (1,):
        x, _ = cli.load_inputs(net, specs)
        return backend.to_numpy(x), np.arange(len(specs)), None
    size, mean, std = net.meta["input_size"], net.meta["mean"], net.meta["std"]
    xs, groups = [], []
    for g, spec in enumerate(specs):
        for v in views(cli.read_image(spec), size, scales, name=spec):
            xs.append(preprocess(v, mean=mean, std=std))
            groups.append(g)
    return np.concatenate(xs), np.array(groups), np.array(view_frames(size, scales) * len(specs))


def _parser():
    default = cli.model_default
    p = cli.parser("Maximally activating patches of a few channels.", target=False,
                   layer="patches_layer")
    p.add_argument("--channels", type=cli.index, nargs="+", default=list(range(8)),
                   help="channels, one row each")
    p.add_argument("--pick", type=cli.count, default=None, metavar="N",
                   help="instead of --channels, the N channels whose patches are most alike")
    p.add_argument("--k", type=cli.count, default=8,
                   help="patches per channel (default: %(default)s)")
    p.add_argument("--per-image", type=cli.count, default=1,
                   help="patches one image may give a row (default: %(default)s)")
    p.add_argument("--overlap", type=float, default=0.25,
                   help="with --per-image above 1: the largest share of the smaller field two "
                        "patches of one image may have in common (default: %(default)s)")
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


def _caption(args, channels, *, images, views, scales, size, inside, of, alike):
    times = ", ".join(map(str, scales[:-1])) + f" and {scales[-1]}" if len(scales) > 1 else ""
    searched = f"searched {images} images" + (
        f" ({views} views at {times} times the input size)" if views > images else "")
    where = ", all inside the image" if inside == 1 else ""
    chosen = (f"\n(rows; the {len(channels)} most selective of {of}, no two alike)" if args.pick
              else " (rows)")
    apart = "" if args.per_image == 1 else f" (fields overlapping at most {args.overlap:g})"
    return (f"{args.model} {args.layer}: top {args.k} patches of channels {channels}{chosen}"
            f"\nat most {args.per_image} per image{apart}; {size}-px fields{where}\n"
            f"{searched}\nmean cosine similarity of a row's {args.layer} features "
            f"{alike[0]:.2f}, of random patches' {alike[1]:.2f}")


def main(argv=None):
    args = cli.parse_args(_parser(), argv, __doc__)
    net = cli.load_net(args)
    scales = tuple(args.scales or cli.model_default(args.model, "patch_scales"))
    inside = cli.model_default(args.model, "patch_inside") if args.inside is None else args.inside
    for name, value in (("--inside", inside), ("--overlap", args.overlap)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} {value} is not a fraction between 0 and 1")
    specs = cli.expand_folders(args.image) if args.image else cli.default_images(args)
    cli.check_channel(net, args.layer, *([] if args.pick else args.channels))
    _check_memory(net, args.layer, specs, scales)
    x, groups, frames = load_views(net, specs, scales)
    best, sample, spread = search(net, x, args.layer, None if args.pick else args.channels, args.k,
                          per_image=args.per_image, limit=args.overlap, groups=groups,
                          frames=frames, inside=inside,
                          log=lambda s: print(s, end="\r", flush=True))
    channels = (pick(best, spread, args.pick, args.k,
                     {c: crop_boxes(net, args.layer, best[c][1], groups, frames) for c in best})
                if args.pick else args.channels)
    size = receptive_field(net, args.layer)[0]
    rows = [_row(net, patches_at(net, x, args.layer, best[c][1]), args.k, max(1, 48 // size))
            for c in channels]
    alike = (np.mean([consistency(best[c][2]) for c in channels]), consistency(sample))
    print()
    text = _caption(args, channels, images=len(specs), views=len(x), scales=scales, size=size,
                    inside=inside, of=len(spread), alike=alike)
    image = render.caption(render.vstack(rows, pad=4), text)
    print(f"wrote {render.save(image, cli.output_path(args, 'max_patches'))}")


if __name__ == "__main__":
    cli.run(main)
