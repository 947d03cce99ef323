"""Saliency maps: which pixels, changed a little, would change the class score most.

Simonyan, Vedaldi & Zisserman (2014), "Deep Inside Convolutional Networks", sec. 3.
For an image x and the *unnormalised* score S_c of class c, the saliency of pixel
(i, j) is the largest absolute derivative over its colour channels:

    M[i, j] = max_ch | dS_c / dx[ch, i, j] |

one backward pass per image. The paper turns the map into an object segmentation
(sec. 3.1): the pixels above the 95 % quantile seed the foreground, those below the
30 % quantile the background, and GrabCut (Rother et al. 2004, ``vis/grabcut.py``)
grows them over the image: a Gaussian mixture of each seed set's colours, a minimum
cut that gives each pixel the likelier mixture unless a boundary there would cross
similar colours, repeated; the largest connected region is the object. ``segment``
does that, from a slightly blurred map (SEED_BLUR); ``segment_histogram``, the simpler
stand-in it replaced (colour histograms, no graph cut), is drawn beside it. Both need
an object whose colours differ from its surroundings, and some surroundings: a face
that fills the frame (chelsea.png) puts the 30 % background seeds on the face.

    python -m vis.saliency --model squeezenet --image chelsea.png      (make saliency)
"""
import numpy as np
from scipy import ndimage

from tinycnn import backend
from vis import cli, render
from vis.grabcut import grabcut
from vis.objectives import score_gradient

# Gaussian blur of the map before its quantiles, as a fraction of the image side (4 px at 224):
# the raw map is speckled (single-pixel peaks, conv1's stride-2 grid) and GrabCut's seeds are
# hard, so raw seeds cut confetti; on the figure's photos 2, 4 and 8 px cut the same objects
SEED_BLUR = 1 / 56


def saliency_map(net, x, target):
    """(N, H, W) saliency: max over colour channels of |dS_target / dx|."""
    return backend.to_numpy(abs(score_gradient(net, x, target)).max(axis=1))


def seeds(saliency, *, foreground_quantile=0.95, background_quantile=0.30, blur=0.0):
    """(foreground, background) (H, W) bool: the pixels above and below two quantiles of the
    saliency map (Simonyan et al. 2014, sec. 3.1), after a Gaussian blur of ``blur`` px."""
    if blur:
        saliency = ndimage.gaussian_filter(saliency, blur)
    return (saliency >= np.quantile(saliency, foreground_quantile),
            saliency <= np.quantile(saliency, background_quantile))


def segment(image, saliency, *, foreground_quantile=0.95, background_quantile=0.30, blur=None,
            return_energies=False):
    """Foreground mask (H, W) bool: GrabCut from saliency seeds, then the largest connected
    region (Simonyan et al. 2014, sec. 3.1).

    image: uint8 (H, W, 3); saliency: (H, W). Quantiles from the paper; blur in pixels
    (default SEED_BLUR of the image side). With return_energies, also GrabCut's energy
    after each of its iterations.
    """
    blur = SEED_BLUR * min(saliency.shape) if blur is None else blur
    fg, bg = seeds(saliency, foreground_quantile=foreground_quantile, background_quantile=background_quantile,
                   blur=blur)
    mask, energies = grabcut(image, fg, bg, return_energies=True)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))      # 8-connected, like GrabCut's graph
    mask = labels == np.bincount(labels[labels > 0]).argmax()
    return (mask, energies) if return_energies else mask


def segment_histogram(image, saliency, *, foreground_quantile=0.95, background_quantile=0.30, bins=8):
    """Foreground mask (H, W) bool grown from saliency seeds by colour histograms alone.

    image: uint8 (H, W, 3); saliency: (H, W). Quantiles from the paper. Each pixel
    goes to foreground when its colour (a bins^3 histogram cell) is likelier under
    the foreground seeds' colours than the background seeds'; then small specks are
    opened away and only regions touching a foreground seed are kept, holes filled.
    """
    fg, bg = seeds(saliency, foreground_quantile=foreground_quantile, background_quantile=background_quantile)
    q = (image.astype(np.int64) * bins) // 256                       # (H, W, 3) colour cell
    cell = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
    like_fg = (np.bincount(cell[fg], minlength=bins ** 3) + 1) / (fg.sum() + bins ** 3)  # Laplace-smoothed
    like_bg = (np.bincount(cell[bg], minlength=bins ** 3) + 1) / (bg.sum() + bins ** 3)
    specks = max(1, round(min(saliency.shape) / 112))  # 2 px at 224, 1 px at 32
    mask = ndimage.binary_opening(like_fg[cell] > like_bg[cell], iterations=specks)
    labels, _ = ndimage.label(mask)
    keep = np.unique(labels[fg & mask])
    return ndimage.binary_fill_holes(np.isin(labels, keep[keep > 0]))


def main(argv=None):
    args = cli.parse_args(cli.parser("Saliency maps (Simonyan et al. 2014) and saliency-seeded segmentation."), argv,
                          __doc__)
    net = cli.load_net(args)
    x, rgb = cli.load_inputs(net, args.image)
    target = cli.targets(net, x, args.target)
    sal = saliency_map(net, x, target)
    scale = render.display_scale(rgb[0])
    rows = []
    for image, s, t in zip(rgb, sal, target):
        mask, energies = segment(image, s, return_energies=True)
        cuts = [np.where(m[..., None], image, 255).astype(np.uint8) for m in (segment_histogram(image, s), mask)]
        row = [render.upscale(a, scale) for a in (image, render.robust_colormap(s), *cuts)]
        text = (f"class: {cli.short_name(net, t)}  |  saliency  |  colour histograms  |  GrabCut, energy "
                f"{energies[0]:.4g} -> {energies[-1]:.4g} in {len(energies)} iterations")
        rows.append(render.caption(render.hstack(row), text))
        print(f"{cli.short_name(net, t)}: GrabCut energy per iteration " + ", ".join(f"{e:.6g}" for e in energies))
    path = render.save(render.vstack(rows), cli.output_path(args, "saliency"))
    print(f"wrote {path}")


if __name__ == "__main__":
    cli.run(main)
