"""Saliency maps: which pixels, changed a little, would change the class score most.

Simonyan, Vedaldi & Zisserman (2014), "Deep Inside Convolutional Networks", sec. 3.
For an image x and the *unnormalised* score S_c of class c, the saliency of pixel
(i, j) is the largest absolute derivative over its colour channels:

    M[i, j] = max_ch | dS_c / dx[ch, i, j] |

one backward pass per image. The paper turns the map into an object segmentation:
the pixels above the 95 % quantile seed the foreground, those below the 30 %
quantile the background, and GrabCut grows them over the image. GrabCut is not in
NumPy or SciPy; its core idea is: learn the colours of each seed set, give every
pixel to the set whose colours it matches, keep the regions that hold foreground
seeds. That is what ``segment`` does, with colour histograms and SciPy's
morphology standing in for GrabCut's Gaussian mixtures and graph cut. Like GrabCut
it needs an object whose colours differ from its surroundings: a face that fills the
frame (chelsea.png) breaks into patches, an eagle by the water comes out whole.

    python -m vis.saliency --model squeezenet --image chelsea.png      (make saliency)
"""
import numpy as np
from scipy import ndimage

from tinycnn import backend
from vis import cli, render
from vis.objectives import score_gradient


def saliency_map(net, x, target):
    """(N, H, W) saliency: max over colour channels of |dS_target / dx|."""
    return backend.to_numpy(abs(score_gradient(net, x, target)).max(axis=1))


def segment(image, saliency, *, foreground_quantile=0.95, background_quantile=0.30, bins=8):
    """Foreground mask (H, W) bool grown from saliency seeds (Simonyan et al. 2014, sec. 3.1).

    image: uint8 (H, W, 3); saliency: (H, W). Quantiles from the paper. Each pixel
    goes to foreground when its colour (a bins^3 histogram cell) is likelier under
    the foreground seeds' colours than the background seeds'; then small specks are
    opened away and only regions touching a foreground seed are kept, holes filled.
    """
    fg = saliency >= np.quantile(saliency, foreground_quantile)
    bg = saliency <= np.quantile(saliency, background_quantile)
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
        mask = segment(image, s)
        cut = np.where(mask[..., None], image, 255).astype(np.uint8)
        row = [render.upscale(a, scale) for a in (image, render.robust_colormap(s), cut)]
        rows.append(render.caption(render.hstack(row), f"class: {cli.short_name(net, t)}  |  saliency  |  segmentation"))
    path = render.save(render.vstack(rows), cli.output_path(args, "saliency"))
    print(f"wrote {path}")


if __name__ == "__main__":
    cli.run(main)
