"""Saliency maps: which pixels, changed a little, would change the class score most.

Simonyan, Vedaldi & Zisserman (2014), "Deep Inside Convolutional Networks", sec. 3.
For an image x and the *unnormalised* score S_c of class c, the saliency of pixel
(i, j) is the largest absolute derivative over its colour channels:

    M[i, j] = max_ch | dS_c / dx[ch, i, j] |

one backward pass per image. The strides of conv1 and its max pool lay a 4-pixel grid over
every such map; ``gridless_saliency_map`` averages the maps of the 16 shifts of the image
by 0-3 pixels, which keeps the photo's structure and removes the net's grid.

The paper turns the map into an object segmentation (sec. 3.1): the pixels above the 95 %
quantile seed the foreground, those below the 30 % quantile the background, and GrabCut
(Rother et al. 2004, ``vis/grabcut.py``) grows them over the image: a Gaussian mixture of
colours for each side, a minimum cut that gives each pixel the likelier mixture unless a
boundary there would cross similar colours, repeated; the object is the connected region
the foreground seeds are in. ``segment`` does that, with choices the paper leaves open or
makes otherwise:

- the seeds come from a steadier map than one gradient: ``smooth_saliency_map``
  averages M over noisy copies of the image (SmoothGrad, Smilkov et al. 2017), then
  blurs it (SEED_BLUR). The single map is speckle, and its lowest quantile can fall inside
  the object, where hard background seeds would cut it apart.
- ``seed_map`` multiplies that map by the class's Grad-CAM map (Selvaraju et al. 2017,
  ``vis/attribution.py``): saliency is sharp but also lights textures away from the object
  (wood grain, a flag), Grad-CAM is coarse (a cell per 16 pixels) but lies on the class; the
  product keeps the sharp map only where the class is, as guided Grad-CAM does for guided
  backprop.
- the quantiles (FOREGROUND_QUANTILE, BACKGROUND_QUANTILE) are measured against object
  masks drawn by hand (``images/masks``, ``intersection_over_union``).
- both seed sets are hard, and GrabCut starts as Rother et al. do (unknown_as_foreground):
  every pixel but the background seeds starts as foreground, so the first foreground
  colours are the whole object's, not only its most salient part's.
- whole photos: the quantiles assume some background in the picture, and the model's
  centre crop keeps little of it. ``--size`` gives the network (fully convolutional) the
  uncropped photo, as ``make saliency`` does at 300 px.

    python -m vis.saliency --image chelsea.png --size 300      (whole photos, as make saliency)
    python -m vis.saliency --image coffee.png rocket.jpg --size 300 --target espresso 657
                                                         (one class per photo: 657 is 'missile')
    python -m vis.saliency --model squeezenet --image chelsea.png      (the model's centre crop)
"""
import filecmp
import itertools

import numpy as np
from PIL import Image
from scipy import ndimage

from tinycnn import backend
from tinycnn.engine import memory
from tinycnn.io.images import class_index, deprocess
from vis import _memory, cli, render
from vis.attribution import grad_cam, upsample
from vis.grabcut import grabcut
from vis.objectives import grid_shifts, noisy_mean, score_gradient, shifted_gradient

# The seeds (a deviation from the paper's 95 % and 30 % quantiles of the raw map of a 224-px crop):
# the averaged map blurred by a tenth of the short side, times Grad-CAM's map, its top 20 %
# foreground and bottom 20 % background. Chosen on the five shipped photos against the object
# masks drawn by hand for them (images/masks; the figure's captions give each IoU).
# Raw seeds are speckle (single-pixel peaks) and hard, so they cut confetti; a whole photo holds
# more background than a crop, and an object's plain parts (a suit, a cat's chest) have low
# saliency too, so fewer background seeds fall on them
SEED_BLUR = 1 / 10
FOREGROUND_QUANTILE, BACKGROUND_QUANTILE = 0.80, 0.20
# SmoothGrad (Smilkov et al. 2017, sec. 3): noise of 10-20 % of the input's range, n = 50 copies
# ("diminishing returns" past it)
SMOOTH_SAMPLES = 48    # 3 at each of the 16 SHIFTS below
SMOOTH_NOISE = 0.15
# conv1 (3x3, stride 2) sees every second pixel in two of its windows and the others in one, and
# the max pool after it (3x3, stride 2) does the same to conv1's outputs: the gradient at the
# pixels repeats a pattern every 4 pixels (the checkerboard of Odena et al. 2016, met backwards).
# Over the 16 shifts of the photo by 0-3 pixels down and across each pixel takes each place once
GRID = 4
SHIFTS = grid_shifts(GRID)


def saliency_map(net, x, target):
    """(N, H, W) saliency: max over colour channels of |dS_target / dx|."""
    return backend.to_numpy(abs(score_gradient(net, x, target)).max(axis=1))


def shifted_saliency(net, x, target, shift):
    """(N, H, W) on x's device: the saliency of x moved ``shift`` = (dy, dx) pixels down and
    across inside a frame of GRID - 1 mirrored pixels, read back at x's own pixels
    (``shifted_gradient``; the mirror continues the photo: no seam for the gradient to light)."""
    return abs(shifted_gradient(net, x, target, shift, GRID)).max(axis=1)


def gridless_saliency_map(net, x, target):
    """(N, H, W) saliency map averaged over the shifts of x by 0-3 pixels (SHIFTS): the grid of
    conv1's and its pool's strides, which belongs to the net and not to the photo, averages
    out."""
    target = backend.get_array_module(x).asarray(target)
    maps = [shifted_saliency(net, x, target, shift) for shift in SHIFTS]
    return backend.to_numpy(sum(maps) / len(SHIFTS))


def smooth_saliency_map(net, x, target, *, n=SMOOTH_SAMPLES, noise=SMOOTH_NOISE, seed=0, log=None):
    """(N, H, W) saliency map averaged over n noisy copies x + N(0, sigma^2), sigma = noise *
    (max - min) of x (SmoothGrad, Smilkov et al. 2017), the k-th copy at the k-th of the
    SHIFTS in turn, so that the net's grid averages out too: the seeds ``segment`` is given."""
    target = backend.get_array_module(x).asarray(target)
    shifts = itertools.cycle(SHIFTS)
    def saliency(noisy):
        return shifted_saliency(net, noisy, target, next(shifts))
    return backend.to_numpy(noisy_mean(saliency, x, n=n, noise=noise, seed=seed, log=log))


def seeds(saliency, *, foreground_quantile=0.95, background_quantile=0.30):
    """(foreground, background) (H, W) bool: the pixels above and below two quantiles of the
    saliency map (Simonyan et al. 2014, sec. 3.1; ``segment`` gives it ``seed_map``'s)."""
    return (saliency >= np.quantile(saliency, foreground_quantile),
            saliency <= np.quantile(saliency, background_quantile))


def seed_map(saliency, cam=None, *, blur=None):
    """(H, W): the saliency map blurred by ``blur`` px (default SEED_BLUR of the short side),
    times the class's Grad-CAM map ``cam`` (H, W, upsampled) when given, each scaled to [0, 1]:
    what ``segment`` takes its seeds from."""
    blur = SEED_BLUR * min(saliency.shape) if blur is None else blur
    blurred = ndimage.gaussian_filter(saliency, blur) if blur else saliency
    if cam is None:
        return blurred
    def unit(a):
        return (a - a.min()) / max(a.max() - a.min(), np.finfo(float).tiny)
    return unit(blurred) * unit(cam)


def segment(image, seeding, *, foreground_quantile=FOREGROUND_QUANTILE,
            background_quantile=BACKGROUND_QUANTILE, unknown_as_foreground=True,
            return_energies=False):
    """Foreground mask (H, W) bool: GrabCut from the seeds, then the connected region that
    holds the most foreground seeds (Simonyan et al. 2014, sec. 3.1, keep the largest).

    image: uint8 (H, W, 3); seeding: (H, W), best ``seed_map``'s. Quantiles as above;
    unknown_as_foreground: GrabCut's first foreground colours are those of every pixel but the
    background seeds (Rother et al.'s unknown region T_U starts as foreground), else the
    foreground seeds' alone. With return_energies, also GrabCut's energy after each of its
    iterations.
    """
    fg, bg = seeds(seeding, foreground_quantile=foreground_quantile,
                   background_quantile=background_quantile)
    mask, energies = grabcut(image, fg, bg, unknown_as_foreground=unknown_as_foreground,
                             return_energies=True)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))  # 8-connected, like GrabCut's graph
    mask = labels == np.bincount(labels[fg & (labels > 0)]).argmax()   # fg seeds are in the mask
    return (mask, energies) if return_energies else mask


def intersection_over_union(mask, reference):
    """|mask & reference| / |mask | reference| of two (H, W) bool masks: 1 when they agree."""
    return float((mask & reference).sum() / max(1, (mask | reference).sum()))


def main(argv=None):
    p = cli.parser("Saliency maps (Simonyan et al. 2014) and saliency-seeded segmentation.",
                   target="per_image")
    cli.add_size_option(p)
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args)
    specs = cli.expand_folders(args.image or [cli.DEFAULT_PHOTO])
    wanted = cli.one_target_per_image(p, args.target, len(specs))
    for t in set(wanted) - {None, cli.PREDICTED}:   # a wrong name fails before any photo is read
        class_index(t, net.meta["classes"])
    layer = cli.model_default(args.model, "attribution_layer")
    if args.size:      # refused in one line before any photo is read if it cannot fit
        specs = cli.check_uncropped(net, args.image, args.size, classify=True)
        photos = cli.image_shapes(specs)
        memory.check_fits("--size", args.size, _memory.saliency_need(net, photos))
    if args.size:      # one batch per photo: their shapes differ
        batches = cli.load_uncropped(net, args.image, args.size, classify=True)
    else:
        batches = [cli.load_inputs(net, args.image)[0]]
    mean, std = net.meta["mean"], net.meta["std"]
    rows = []
    for k, x in enumerate(batches):
        target = cli.targets(net, x, wanted[len(rows):len(rows) + len(x)])
        sal = gridless_saliency_map(net, x, target)
        cams = upsample(grad_cam(net, x, target, layer), x.shape[2:])
        smooth = smooth_saliency_map(net, x, target, seed=args.seed,
                                     log=lambda s, k=k: print(f"batch {k + 1}/{len(batches)}: {s}",
                                                              end="\r", flush=True))
        print()
        for image, s, sm, cam, t in zip(backend.to_numpy(x), sal, smooth, cams, target):
            image = deprocess(image, mean=mean, std=std)
            name = specs[len(rows)] if len(specs) == len(batches) * len(x) else None
            rows.append(figure_row(net, image, s, sm, cam, t, hand_mask(name, image.shape[:2])))
    figure = render.vstack(render.columns_aligned(rows))
    print(f"wrote {render.save(figure, cli.output_path(args, 'saliency'))}")


def hand_mask(spec, shape):
    """The object mask drawn by hand for photo ``spec``: masks/<its name>.png in the photo's
    folder or the one above it (images/masks for images/photos), or the repository's when the
    photo is byte for byte the one shipped (found through $TINYCNN_IMAGES_DIR, say), resized
    to ``shape``; None when there is none."""
    if spec is None:
        return None
    try:
        photo = cli.find_image(spec)
    except (FileNotFoundError, IsADirectoryError):
        return None
    places = [folder / "masks" / f"{photo.stem}.png" for folder in photo.parents[:2]]
    shipped = cli.PROJECT_IMAGES / "photos" / photo.name
    if shipped.is_file() and filecmp.cmp(shipped, photo, shallow=False):
        places.append(cli.PROJECT_IMAGES / "masks" / f"{photo.stem}.png")
    path = next((p for p in places if p.is_file()), None)
    if path is None:
        return None
    mask = cli.read_image(path)[..., 0]
    (h, w), (mh, mw) = shape, mask.shape
    if abs(mh * w - mw * h) > 0.01 * mw * h:
        raise ValueError(f"{path}: a mask of {mw}x{mh} px cannot be its photo's, whose sides "
                         f"are {w}:{h}")
    return np.asarray(Image.fromarray(mask).resize((w, h), Image.BILINEAR)) >= 128


def figure_row(net, image, sal, smooth, cam, target, reference=None):
    """One row of the figure, a list of captioned panels: the photo, its saliency map, the
    averaged map, the seeds it and Grad-CAM's ``cam`` give (foreground green, background red)
    and GrabCut's segmentation (with its IoU against ``reference``)."""
    seeding = seed_map(smooth, cam)
    fg, bg = seeds(seeding, foreground_quantile=FOREGROUND_QUANTILE,
                   background_quantile=BACKGROUND_QUANTILE)
    mask, energies = segment(image, seeding, return_energies=True)
    tint = np.where(fg[..., None], (0, 200, 0), np.where(bg[..., None], (220, 0, 0), image))
    shown = (image, render.robust_colormap(sal), render.robust_colormap(smooth),
             (0.45 * image + 0.55 * tint).astype(np.uint8),
             np.where(mask[..., None], image, 255).astype(np.uint8))
    pictures = [render.upscale(a, render.display_scale(image)) for a in shown]
    name = cli.short_name(net, target)
    labels = [f"class: {name}", f"saliency, {len(SHIFTS)} shifts",
              f"mean of {SMOOTH_SAMPLES} noisy copies", "seeds: blurred mean x Grad-CAM",
              "GrabCut"]
    if reference is not None:
        labels[4] += f", IoU {intersection_over_union(mask, reference):.2f}"
    print(f"{name}: GrabCut energy per iteration " + ", ".join(f"{e:.6g}" for e in energies))
    return [render.caption(p, label) for p, label in zip(pictures, labels)]


if __name__ == "__main__":
    cli.run(main)
