"""Neural style transfer: the content of one image painted in the style of another.

Gatys, Ecker & Bethge (2016), "Image Style Transfer Using Convolutional Neural
Networks". Content is a layer's activations, style is the Gram matrices (channel
correlations, which forget where things are) of several layers. From the content
image (or noise), minimise

    L(x) = w_c ||F_c(x) - F_c(content)||^2 + sum_l w_l ||G_l(x) - G_l(style)||^2 + w_tv TV(x)

with G = F F^T / (H W C) and TV the sum of squared neighbour differences
(vis.objectives). All terms come from one forward pass; one backward pass carries the
gradients of every layer at once. Presets are the three parameter sets of CS231n's
exercise on SqueezeNet 1.1: content layer fire2, style layers relu1, fire3, fire4,
fire5 (torchvision features 3; 1, 4, 6, 7), Adam at 3.0 then 0.1 from step 180,
200 steps; but with 50 times its TV weights (TV_BOOST says why).

The controls of Gatys et al. (2017), "Controlling Perceptual Factors in Neural Style
Transfer", and the 2016 paper's trade-off of content against style, each a row of pictures:

- ``--mix``: several styles at once, their Gram targets blended, G = sum_i w_i G_i (and
  the styles' preset weights, content, style and TV, blended with the same w_i);
- ``--colour``: keep the photo's colours, either by *luminance-only transfer* (style
  both images' luminance Y of YIQ, the style's matched to the photo's mean and
  spread; then put the photo's chroma I, Q back) or by *colour histogram matching*
  (recolour the painting first, x' = A (x - mu_s) + mu_c with A = Sc^1/2 Ss^-1/2, so
  that its pixels have the photo's mean and covariance);
- ``--content-scale``: the content weight times each factor: more photo or more paint.

Each control is an argument of a function: ``style_transfer(..., mix=, colour=)`` on
normalised images, ``blend_presets`` for the blended weights, and ``stylize_photo(net,
photo, paintings, presets, mix=, colour=, content_scale=)`` from uint8 pictures to one.

    python -m vis.style_transfer --content chelsea.png --style starry_night   (make style_transfer)
    python -m vis.style_transfer --style starry_night the_scream --mix 1,0 0.5,0.5 0,1
    python -m vis.style_transfer --style starry_night --colour none luminance histogram
    python -m vis.style_transfer --style the_scream --content-scale 0.1 1 10
"""

import argparse
import difflib
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from tinycnn import backend
from tinycnn.io.images import check_min_side, deprocess, preprocess, resize_short_side
from vis import cli, render
from vis._optimize import (SYNTHESIS_STEPS, clamp, optimize, pixel_range, synthesis_lr,
                           uniform_image)
from vis.objectives import mixed_style_targets, synthesis_objective

CONTENT_LAYER = "fire2"
STYLE_LAYERS = ("relu1", "fire3", "fire4", "fire5")
# CS231n's TV weights leave per-pixel rainbow speckle: relu1's Gram (weight 3e5) is
# matched by pixel-level noise, and Adam moves every pixel by about the step (3.0 in
# normalised units, most of the range) whatever its gradient, so a weak smoothness
# term cannot hold it. PyTorch's autograd with the same recipe (bench.loops's torch loop,
# run on chelsea.png and Starry Night) draws the same speckle. Of 10x, 50x and 200x, 50x is
# the smallest that removes the speckle and keeps the brush strokes (chosen by looking).
TV_BOOST = 50
# CS231n (assignment 3, StyleTransfer): image size, style size, content weight,
# style weights (for STYLE_LAYERS), TV weight (times TV_BOOST)
PRESETS = {
    "composition_vii": dict(image_size=192, style_size=512, content_weight=5e-2,
                            style_weights=(20000, 500, 12, 1), tv_weight=5e-2 * TV_BOOST),
    "the_scream": dict(image_size=192, style_size=224, content_weight=3e-2,
                       style_weights=(200000, 800, 12, 1), tv_weight=2e-2 * TV_BOOST),
    "starry_night": dict(image_size=192, style_size=192, content_weight=6e-2,
                         style_weights=(300000, 1000, 15, 3), tv_weight=2e-2 * TV_BOOST),
}
COLOUR_MODES = ("none", "luminance", "histogram")


def style_transfer(net, content, style, *, content_weight, style_weights, tv_weight,
                   content_layer=CONTENT_LAYER, style_layers=STYLE_LAYERS, mix=None, colour="none",
                   steps=SYNTHESIS_STEPS, init="content", method="adam", seed=0,
                   snapshot_every=None, log=None):
    """The stylised image (1, 3, H, W) NumPy, normalised like ``content``; and snapshots.

    content, style: normalised images on the active backend (any sizes); style may be
    a list of images, blended with the weights ``mix`` (default: equal).
    colour: "none"; "luminance" (style the luminance alone, then put the content's chroma
    back) or "histogram" (recolour the style images to the content's colours first), as in
    keep_colours. init: "content" or "noise". method: "adam" (CS231n's schedule) or
    "lbfgs" (Gatys). Snapshots are of the optimised image (with "luminance": grey).
    """
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    content, styles, restore = keep_colours(net, content, styles, colour)
    targets = mixed_style_targets(net, styles, [1.0] * len(styles) if mix is None else mix,
                                  style_layers)
    objective = synthesis_objective(
        net, content_target=net.activations(content, content_layer)[content_layer],
        content_layer=content_layer, content_weight=content_weight, style_targets=targets,
        style_weights=dict(zip(style_layers, style_weights)), tv_weight=tv_weight)
    lo, hi = pixel_range(net)
    x0 = uniform_image(content.shape, lo, hi, seed) if init == "noise" else content.copy()
    transforms = [] if method == "lbfgs" else [clamp(lo, hi)]      # L-BFGS keeps to the bounds
    x, snapshots, _ = optimize(objective, x0, steps=steps, method=method, seed=seed,
                               lr=synthesis_lr, bounds=(lo, hi), transforms=transforms,
                               snapshot_every=snapshot_every, log=log)
    return restore(backend.to_numpy(x)), snapshots


# -- keeping the photo's colours (Gatys et al. 2017, sec. 5) ---------------------------------
YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])   # NTSC


def keep_colours(net, content, styles, colour):
    """(content, styles, restore): what style transfer starts from and matches, and what it
    does to its result, to keep the content's colours (normalised images, as style_transfer's).

    "none": all as they are. "histogram": each style image recoloured by match_colours.
    "luminance": each style image's luminance matched to the content's (match_luminance),
    the content's luminance as content; restore(x) then puts the content's chroma back
    (with_chroma). Images pass through uint8 RGB, as the figure shows them."""
    if colour not in COLOUR_MODES:
        raise ValueError(f"unknown colour mode {colour!r}; choose {', '.join(COLOUR_MODES)}")
    if colour == "none":
        return content, styles, lambda x: x
    photo = _rgb(net, content) / 255.0
    recolour = match_luminance if colour == "luminance" else match_colours
    styles = [_normalised(net, recolour(_rgb(net, s) / 255.0, photo) * 255) for s in styles]
    if colour == "histogram":
        return content, styles, lambda x: x

    def restore(x):
        return backend.to_numpy(_normalised(net, with_chroma(_rgb(net, x) / 255.0, photo) * 255))
    return _normalised(net, luminance(photo) * 255), styles, restore


def _rgb(net, x):
    """The normalised image (1, 3, H, W) as uint8 RGB (H, W, 3)."""
    return deprocess(backend.to_numpy(x)[0], mean=net.meta["mean"], std=net.meta["std"])


def _normalised(net, rgb):
    """RGB (H, W, 3) in 0-255, rounded to uint8, as a normalised (1, 3, H, W) on the backend."""
    pixels = np.rint(rgb).astype(np.uint8)
    return backend.asarray(preprocess(pixels, mean=net.meta["mean"], std=net.meta["std"]))


def _covariance_power(pixels, power):
    """(3, 3) symmetric power of the colour covariance of pixels (n, 3), by eigendecomposition."""
    w, v = np.linalg.eigh(np.cov(pixels, rowvar=False))
    return (v * np.maximum(w, 1e-8) ** power) @ v.T


def match_colours(style, content):
    """The style image (H, W, 3) in [0, 1] recoloured so that its pixels' mean and covariance
    are the content's (colour histogram matching): x' = Sc^1/2 Ss^-1/2 (x - mu_s) + mu_c."""
    s, c = style.reshape(-1, 3).astype(np.float64), content.reshape(-1, 3).astype(np.float64)
    a = _covariance_power(c, 0.5) @ _covariance_power(s, -0.5)
    return ((s - s.mean(0)) @ a.T + c.mean(0)).reshape(style.shape).clip(0, 1)


def luminance(image):
    """Y of YIQ of (H, W, 3) RGB in [0, 1], as a grey (H, W, 3) image."""
    return np.repeat((image @ YIQ[0])[..., None], 3, axis=2)


def match_luminance(style, content):
    """The style's grey luminance shifted and scaled to the content's mean and spread
    (sec. 5.2)."""
    ls, lc = luminance(style), luminance(content)
    return ((ls - ls.mean()) * lc.std() / max(ls.std(), 1e-8) + lc.mean()).clip(0, 1)


def with_chroma(grey, content):
    """RGB with the luminance of ``grey`` and the chroma (I, Q) of ``content``, both (H, W, 3)."""
    yiq = content @ YIQ.T
    yiq[..., 0] = grey @ YIQ[0]
    return (yiq @ np.linalg.inv(YIQ).T).clip(0, 1)


# -- several styles, and a photo painted with presets ----------------------------------------
def preset(style):
    """The preset of a style name; a style image of one's own gets starry_night's."""
    return PRESETS.get(style, PRESETS["starry_night"])


def blend_presets(presets, mix=None):
    """(parameters, w): the presets' content weight, style weights and TV weight blended like
    their Gram targets, p = sum_i w_i p_i with w = mix / sum(mix) (default: equal weights)."""
    w = np.ones(len(presets)) / len(presets) if mix is None else np.asarray(mix, float) / sum(mix)
    def blend(key):
        return np.tensordot(w, np.array([q[key] for q in presets], float), 1)
    return dict(content_weight=float(blend("content_weight")), tv_weight=float(blend("tv_weight")),
                style_weights=[float(v) for v in blend("style_weights")]), list(w)


def stylize_photo(net, photo, paintings, presets, *, mix=None, colour="none", content_scale=1.0,
                  **options):
    """``photo`` (H, W, 3) uint8 painted in the style of ``paintings`` (uint8, one preset each,
    blended with ``mix``): uint8 (H', W', 3) at the first preset's image size, the paintings at
    their style sizes, the content weight times ``content_scale`` (Gatys et al. 2016, fig. 3).
    options: style_transfer's (steps, init, method, seed, log)."""
    weights, w = blend_presets(presets, mix)
    x = _normalised(net, resize_short_side(photo, presets[0]["image_size"]))
    styles = [_normalised(net, resize_short_side(painting, q["style_size"]))
              for painting, q in zip(paintings, presets)]
    out, _ = style_transfer(net, x, styles, mix=w, colour=colour,
                            content_weight=weights["content_weight"] * content_scale,
                            style_weights=weights["style_weights"], tv_weight=weights["tv_weight"],
                            **options)
    return _rgb(net, out)


# -- the command line and its figure ---------------------------------------------------------
def mix_weights(text):
    """--mix's type: comma-separated weights, one per style, non-negative, with a positive sum
    that is a number (only their ratios count: 1e308,1e308 would sum to infinity)."""
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        weights = []
    if not (weights and all(w >= 0 for w in weights) and 0 < sum(weights) < math.inf):
        raise argparse.ArgumentTypeError(f"{text!r} is not comma-separated non-negative weights "
                                         "with a positive, finite sum, e.g. 0.5,0.5")
    return weights


class Variant(NamedTuple):
    """One picture of a row: its caption, styles, blend, colour mode and content weight factor."""
    label: str
    styles: list
    mix: list = None
    colour: str = "none"
    content_scale: float = 1.0


def variants(styles, *, mix=None, colour=None, content_scale=None):
    """The row's pictures: each style; or one per --mix blend of all the styles; or each style
    in each --colour mode; or each style at each --content-scale factor."""
    if sum(bool(v) for v in (mix, colour, content_scale)) > 1:
        raise ValueError("choose one of --mix, --colour and --content-scale: each draws its own "
                         "row")
    if mix:
        if len(styles) < 2:
            raise ValueError("--mix blends several styles: give two or more with --style")
        if any(len(m) != len(styles) for m in mix):
            raise ValueError(f"--mix: give {len(styles)} weights, one per style, in each blend")
        return [Variant(" + ".join(f"{w / sum(m):.2g} {_name(s)}" for w, s in zip(m, styles)
                                   if w > 0), styles, m) for m in mix]
    if colour:
        return [Variant(f"{_name(s)}, colours: {c}", [s], colour=c)
                for s in styles for c in colour]
    if content_scale:
        return [Variant(f"{_name(s)}, content weight x{f:g}", [s], content_scale=f)
                for s in styles for f in content_scale]
    return [Variant(_name(s), [s]) for s in styles]


def _name(style):
    return str(style).split("/")[-1]


def style_file(style):
    """The painting of a preset (styles/<name>.jpg), else the image file ``style``; a bare name
    that is neither is an error listing the presets (and the closest one)."""
    if style in PRESETS:
        return cli.find_image(f"styles/{style}.jpg")
    try:
        return cli.find_image(style)
    except FileNotFoundError:
        if "/" in style or Path(style).suffix.lower() in Image.registered_extensions():
            raise                         # meant as a file: find_image says where it looked
        close = difflib.get_close_matches(style.lower(), PRESETS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise FileNotFoundError(f"unknown style {style!r}{hint}; choose a preset "
                                f"({', '.join(PRESETS)}) or give an image file of a painting"
                                ) from None


def _parser():
    p = cli.parser("Neural style transfer (Gatys et al. 2016) with CS231n's presets.",
                   target=False, image=False)
    p.add_argument("--content", nargs="+", default=[cli.DEFAULT_PHOTO],
                   help="content photos (in photos/ or paths)")
    p.add_argument("--style", nargs="+", default=list(PRESETS),
                   help=f"presets: {', '.join(PRESETS)}; or a style image (with starry_night's "
                   "weights)")
    p.add_argument("--mix", nargs="+", type=mix_weights, default=None, metavar="W,W",
                   help="blend all the styles into one: one column per set of weights, e.g. "
                   "0.5,0.5")
    p.add_argument("--colour", nargs="+", default=None, choices=COLOUR_MODES,
                   help="keep the photo's colours: one column per mode, for each style")
    p.add_argument("--content-scale", nargs="+", type=cli.positive, default=None, metavar="FACTOR",
                   help="multiply the content weight: one column per factor, for each style")
    p.add_argument("--steps", type=cli.count, default=SYNTHESIS_STEPS,
                   help="optimisation steps (default: %(default)s)")
    p.add_argument("--init", default="content", choices=["content", "noise"],
                   help="start from the content image or from noise")
    p.add_argument("--method", default="adam", choices=["adam", "lbfgs"],
                   help="Adam (CS231n) or L-BFGS (Gatys et al.)")
    return p


def _checked(path, name):
    """The image at ``path``, refused (naming it) if too small: told before the long work."""
    image = cli.read_image(path)
    check_min_side(image, name)
    return image


def main(argv=None):
    args = cli.parse_args(_parser(), argv, __doc__)
    columns = variants(args.style, mix=args.mix, colour=args.colour,
                       content_scale=args.content_scale)
    photos = [(c, _checked(cli.find_image(c), c)) for c in args.content]
    paintings = {s: _checked(style_file(s), s) for s in args.style}
    net = cli.load_net(args, "squeezenet")
    rows, total = [], len(photos) * len(columns)
    for c, photo in photos:
        pictures = []
        for v in columns:
            k = len(rows) * len(columns) + len(pictures) + 1
            pictures.append(stylize_photo(
                net, photo, [paintings[s] for s in v.styles], [preset(s) for s in v.styles],
                mix=v.mix, colour=v.colour, content_scale=v.content_scale, steps=args.steps,
                init=args.init, method=args.method, seed=args.seed,
                log=lambda msg, k=k: print(f"image {k}/{total}: {msg}", end="\r", flush=True)))
        rows.append(picture_row(_name(c), photo, pictures, [v.label for v in columns]))
    print()
    if [v.styles for v in columns] == [[s] for s in args.style]:   # one style a column: above it
        blank = np.full((1, rows[0][0].shape[1], 3), 255, np.uint8)      # over the photos
        figure = render.vstack(render.columns_aligned([[blank] + style_tiles(args.style)] + rows))
    else:
        figure = render.vstack([render.hstack(style_tiles(args.style))] +
                               [render.hstack(row) for row in rows])
    print(f"wrote {render.save(figure, cli.output_path(args, 'style_transfer'))}")


def picture_row(name, photo, pictures, labels):
    """The panels of a row: the photo, at the pictures' size, then each picture, all
    captioned."""
    small = resize_short_side(photo, min(pictures[-1].shape[:2]))
    return ([render.caption(small, name)] +
            [render.caption(p, label) for p, label in zip(pictures, labels)])


def style_tiles(styles, height=160):
    """The style images themselves, at one height, each captioned with its name."""
    tiles = []
    for s in styles:
        painting = cli.read_image(style_file(s))
        h, w = painting.shape[:2]
        small = Image.fromarray(painting).resize((max(1, round(w * height / h)), height),
                                                 Image.LANCZOS)
        tiles.append(render.caption(np.asarray(small), f"style: {_name(s)}"))
    return tiles


if __name__ == "__main__":
    cli.run(main)
