"""Saliency maps: which pixels, changed a little, would change the class score most.

Simonyan, Vedaldi & Zisserman (2014), "Deep Inside Convolutional Networks", sec. 3.
For an image x and the *unnormalised* score S_c of class c, the saliency of pixel
(i, j) is the largest absolute derivative over its colour channels:

    M[i, j] = max_ch | dS_c / dx[ch, i, j] |

one backward pass per image. The paper turns the map into an object segmentation
(sec. 3.1): the pixels above the 95 % quantile seed the foreground, those below the
30 % quantile the background, and GrabCut (Rother et al. 2004, ``vis/grabcut.py``)
grows them over the image: a Gaussian mixture of colours for each side, a minimum
cut that gives each pixel the likelier mixture unless a boundary there would cross
similar colours, repeated; the largest connected region is the object. ``segment``
does that, with three choices the paper leaves open or makes otherwise:

- the seeds come from a steadier map than one gradient: ``smooth_saliency_map``
  averages M over noisy copies of the image (SmoothGrad, Smilkov et al. 2017), then
  blurs it (SEED_BLUR). A deviation: the single map is speckle, and its lowest 30 %
  can fall inside the object, where hard background seeds would cut it apart.
- both seed sets are hard, and GrabCut starts as Rother et al. do (unknown_as_foreground):
  every pixel but the background seeds starts as foreground, so the first foreground
  colours are the whole object's, not only its most salient part's.
- whole photos: the quantiles assume some background in the picture (30 % of the pixels
  become background seeds, wherever the object leaves them), and the model's centre crop
  keeps little of it. ``--size`` gives the network (fully convolutional) the uncropped
  photo, as ``make saliency`` does at 300 px.

``segment_histogram``, the simpler stand-in GrabCut replaced (colour histograms, no
graph cut), is drawn beside it.

    python -m vis.saliency --image chelsea.png --size 300      (whole photos, as make saliency)
    python -m vis.saliency --model squeezenet --image chelsea.png      (the model's centre crop)
"""
import numpy as np
from scipy import ndimage

from tinycnn import backend
from tinycnn.engine import memory
from tinycnn.io.images import deprocess
from vis import _memory, cli, render
from vis.grabcut import grabcut
from vis.objectives import noisy_mean, score_gradient

# Gaussian blur of the map before its quantiles, as a fraction of the short side (10 px at 224):
# the raw map is speckled (single-pixel peaks, conv1's stride-2 grid) and GrabCut's seeds are
# hard, so raw seeds cut confetti; blurs of 8-20 px cut whole objects alike (chosen by looking)
SEED_BLUR = 1 / 22
# SmoothGrad (Smilkov et al. 2017, sec. 3): noise of 10-20 % of the input's range, n = 50 copies
# ("diminishing returns" past it)
SMOOTH_SAMPLES = 50
SMOOTH_NOISE = 0.15


def saliency_map(net, x, target):
    """(N, H, W) saliency: max over colour channels of |dS_target / dx|."""
    return backend.to_numpy(abs(score_gradient(net, x, target)).max(axis=1))


def smooth_saliency_map(net, x, target, *, n=SMOOTH_SAMPLES, noise=SMOOTH_NOISE, seed=0, log=None):
    """(N, H, W) saliency map averaged over n noisy copies x + N(0, sigma^2), sigma = noise *
    (max - min) of x (SmoothGrad, Smilkov et al. 2017): the seeds ``segment`` is given."""
    target = backend.get_array_module(x).asarray(target)
    def saliency(noisy):
        return abs(score_gradient(net, noisy, target)).max(axis=1)
    return backend.to_numpy(noisy_mean(saliency, x, n=n, noise=noise, seed=seed, log=log))


def seeds(saliency, *, foreground_quantile=0.95, background_quantile=0.30, blur=0.0):
    """(foreground, background) (H, W) bool: the pixels above and below two quantiles of the
    saliency map (Simonyan et al. 2014, sec. 3.1), after a Gaussian blur of ``blur`` px."""
    if blur:
        saliency = ndimage.gaussian_filter(saliency, blur)
    return (saliency >= np.quantile(saliency, foreground_quantile),
            saliency <= np.quantile(saliency, background_quantile))


def segment(image, saliency, *, foreground_quantile=0.95, background_quantile=0.30, blur=None,
            unknown_as_foreground=True, return_energies=False):
    """Foreground mask (H, W) bool: GrabCut from saliency seeds, then the largest connected
    region (Simonyan et al. 2014, sec. 3.1).

    image: uint8 (H, W, 3); saliency: (H, W), best ``smooth_saliency_map``'s. Quantiles from
    the paper; blur in pixels (default SEED_BLUR of the short side); unknown_as_foreground:
    GrabCut's first foreground colours are those of every pixel but the background seeds
    (Rother et al.'s unknown region T_U starts as foreground), else the foreground seeds'
    alone. With return_energies, also
    GrabCut's energy after each of its iterations.
    """
    blur = SEED_BLUR * min(saliency.shape) if blur is None else blur
    fg, bg = seeds(saliency, foreground_quantile=foreground_quantile,
                   background_quantile=background_quantile, blur=blur)
    mask, energies = grabcut(image, fg, bg, unknown_as_foreground=unknown_as_foreground,
                             return_energies=True)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))  # 8-connected, like GrabCut's graph
    mask = labels == np.bincount(labels[labels > 0]).argmax()
    return (mask, energies) if return_energies else mask


def segment_histogram(image, saliency, *, foreground_quantile=0.95, background_quantile=0.30,
                      bins=8):
    """Foreground mask (H, W) bool grown from saliency seeds by colour histograms alone.

    image: uint8 (H, W, 3); saliency: (H, W). Quantiles from the paper. Each pixel
    goes to foreground when its colour (a bins^3 histogram cell) is likelier under
    the foreground seeds' colours than the background seeds'; then small specks are
    opened away and only regions touching a foreground seed are kept, holes filled.
    """
    fg, bg = seeds(saliency, foreground_quantile=foreground_quantile,
                   background_quantile=background_quantile)
    q = (image.astype(np.int64) * bins) // 256                       # (H, W, 3) colour cell
    cell = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    # Laplace-smoothed colour likelihoods
    like_fg = (np.bincount(cell[fg], minlength=bins ** 3) + 1) / (fg.sum() + bins ** 3)
    like_bg = (np.bincount(cell[bg], minlength=bins ** 3) + 1) / (bg.sum() + bins ** 3)
    specks = max(1, round(min(saliency.shape) / 112))  # 2 px at 224, 1 px at 32
    mask = ndimage.binary_opening(like_fg[cell] > like_bg[cell], iterations=specks)
    labels, _ = ndimage.label(mask)
    keep = np.unique(labels[fg & mask])
    return ndimage.binary_fill_holes(np.isin(labels, keep[keep > 0]))


def main(argv=None):
    p = cli.parser("Saliency maps (Simonyan et al. 2014) and saliency-seeded segmentation.")
    cli.add_size_option(p)
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args)
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
        target = cli.targets(net, x, args.target)
        sal = saliency_map(net, x, target)
        smooth = smooth_saliency_map(net, x, target, seed=args.seed,
                                     log=lambda s: print(f"batch {k + 1}/{len(batches)}: {s}",
                                                         end="\r", flush=True))
        print()
        for image, s, sm, t in zip(backend.to_numpy(x), sal, smooth, target):
            image = deprocess(image, mean=mean, std=std)
            rows.append(figure_row(net, image, s, sm, t))
    path = render.save(render.vstack(rows), cli.output_path(args, "saliency"))
    print(f"wrote {path}")


def figure_row(net, image, sal, smooth, target):
    """One row of the figure: the photo, its saliency map, the averaged map, and the two
    segmentations."""
    mask, energies = segment(image, smooth, return_energies=True)
    cuts = [np.where(m[..., None], image, 255).astype(np.uint8)
            for m in (segment_histogram(image, smooth), mask)]
    scale = render.display_scale(image)
    row = [render.upscale(a, scale)
           for a in (image, render.robust_colormap(sal), render.robust_colormap(smooth), *cuts)]
    name = cli.short_name(net, target)
    text = (f"class: {name}  |  saliency  |  averaged over {SMOOTH_SAMPLES} noisy copies  |  "
            f"colour histograms  |  GrabCut, energy per iteration "
            + ", ".join(f"{e:.4g}" for e in energies))
    print(f"{name}: GrabCut energy per iteration " + ", ".join(f"{e:.6g}" for e in energies))
    return render.caption(render.hstack(row), text)


if __name__ == "__main__":
    cli.run(main)
