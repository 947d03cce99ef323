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

    python -m vis.style_transfer --content chelsea.png --style starry_night   (make style_transfer)
    python -m vis.style_transfer --style starry_night the_scream --mix 1,0 0.5,0.5 0,1
    python -m vis.style_transfer --style starry_night --colour none luminance histogram
    python -m vis.style_transfer --style the_scream --content-scale 0.1 1 10
"""

import difflib
import math
from pathlib import Path

import numpy as np
from PIL import Image

from tinycnn import backend
from tinycnn.io.images import check_min_side, load_image
from vis import cli, render
from vis._optimize import SYNTHESIS_STEPS, clamp, optimize, pixel_range, synthesis_lr, uniform_image
from vis.objectives import mixed_style_targets, synthesis_objective

CONTENT_LAYER = "fire2"
STYLE_LAYERS = ("relu1", "fire3", "fire4", "fire5")
# CS231n's TV weights leave per-pixel rainbow speckle: relu1's Gram (weight 3e5) is
# matched by pixel-level noise, and Adam moves every pixel by about the step (3.0 in
# normalised units, most of the range) whatever its gradient, so a weak smoothness
# term cannot hold it. PyTorch's autograd with the same recipe (bench.loops's torch loop,
# run on chelsea.png and Starry Night) draws the same speckle. Of 10x, 50x and 200x, 50x is the
# smallest that removes the speckle and keeps the brush strokes (chosen by looking).
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


def style_transfer(net, content, style, *, content_weight, style_weights, tv_weight, content_layer=CONTENT_LAYER,
                   style_layers=STYLE_LAYERS, mix=None, steps=SYNTHESIS_STEPS, init="content", method="adam",
                   seed=0, snapshot_every=None, log=None):
    """The stylised image (1, 3, H, W) NumPy, normalised like ``content``; and snapshots.

    content, style: normalised images on the active backend (any sizes); style may be
    a list of images, blended with the weights ``mix`` (default: equal).
    init: "content" or "noise". method: "adam" (CS231n's schedule) or "lbfgs" (Gatys).
    """
    weights = dict(zip(style_layers, style_weights))
    styles = style if isinstance(style, (list, tuple)) else [style]
    targets = mixed_style_targets(net, styles, [1.0] * len(styles) if mix is None else mix, style_layers)
    objective = synthesis_objective(
        net, content_target=net.activations(content, content_layer)[content_layer], content_layer=content_layer,
        content_weight=content_weight, style_targets=targets, style_weights=weights, tv_weight=tv_weight)
    lo, hi = pixel_range(net)
    x0 = uniform_image(content.shape, lo, hi, seed) if init == "noise" else content.copy()
    x, snapshots, _ = optimize(objective, x0, steps=steps, method=method, seed=seed,
                               lr=synthesis_lr, bounds=(lo, hi),
                               transforms=[] if method == "lbfgs" else [clamp(lo, hi)],   # L-BFGS: bounds
                               snapshot_every=snapshot_every, log=log)
    return backend.to_numpy(x), snapshots


# -- keeping the photo's colours (Gatys et al. 2017, sec. 5) ---------------------------------
YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])   # NTSC RGB -> YIQ


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
    """The style's grey luminance shifted and scaled to the content's mean and spread (sec. 5.2)."""
    ls, lc = luminance(style), luminance(content)
    return ((ls - ls.mean()) * lc.std() / max(ls.std(), 1e-8) + lc.mean()).clip(0, 1)


def with_chroma(grey, content):
    """RGB with the luminance of ``grey`` and the chroma (I, Q) of ``content``, both (H, W, 3)."""
    yiq = content @ YIQ.T
    yiq[..., 0] = grey @ YIQ[0]
    return (yiq @ np.linalg.inv(YIQ).T).clip(0, 1)


COLOUR_MODES = ("none", "luminance", "histogram")


def _variants(args):
    """One (caption, styles, mix, colour mode, content factor) per column of the figure."""
    if sum(bool(v) for v in (args.mix, args.colour, args.content_scale)) > 1:
        raise ValueError("choose one of --mix, --colour and --content-scale: each draws its own row")
    if args.mix:
        if len(args.style) < 2:
            raise ValueError("--mix blends several styles: give two or more with --style")
        out = []
        for text in args.mix:
            try:
                mix = [float(w) for w in text.split(",")]
            except ValueError:
                raise ValueError(f"--mix {text!r}: give comma-separated weights, one per style, e.g. 0.5,0.5") from None
            if len(mix) != len(args.style) or not all(map(math.isfinite, mix)) or min(mix) < 0 or max(mix) <= 0:
                raise ValueError(f"--mix {text!r}: need {len(args.style)} non-negative weights, not all zero")
            mix = [w / max(mix) for w in mix]     # only the ratios matter; 1e308,1e308 would sum to infinity
            label = " + ".join(f"{w / sum(mix):.2g} {_name(s)}" for w, s in zip(mix, args.style) if w > 0)
            out.append((label, args.style, mix, "none", 1.0))
        return out
    if args.colour:
        return [(f"{_name(s)}, colours: {c}", [s], None, c, 1.0) for s in args.style for c in args.colour]
    if args.content_scale:
        return [(f"{_name(s)}, content weight x{f:g}", [s], None, "none", f)
                for s in args.style for f in args.content_scale]
    return [(_name(s), [s], None, "none", 1.0) for s in args.style]


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
                                f"({', '.join(PRESETS)}) or give an image file of a painting") from None


def main(argv=None):
    from tinycnn.io.images import deprocess, preprocess, resize_short_side
    p = cli.parser("Neural style transfer (Gatys et al. 2016) with CS231n's presets.", target=False, image=False)
    p.add_argument("--content", nargs="+", default=[cli.DEFAULT_PHOTO], help="content photos (in photos/ or paths)")
    p.add_argument("--style", nargs="+", default=list(PRESETS), help=f"presets: {', '.join(PRESETS)}; or a style image (with starry_night's weights)")
    p.add_argument("--mix", nargs="+", default=None, metavar="W,W",
                   help="blend all the styles into one: one column per set of weights, e.g. 0.5,0.5")
    p.add_argument("--colour", nargs="+", default=None, choices=COLOUR_MODES,
                   help="keep the photo's colours: one column per mode, for each style")
    p.add_argument("--content-scale", nargs="+", type=float, default=None, metavar="FACTOR",
                   help="multiply the content weight: one column per factor, for each style")
    p.add_argument("--steps", type=cli.count, default=SYNTHESIS_STEPS, help="optimisation steps (default: %(default)s)")
    p.add_argument("--init", default="content", choices=["content", "noise"], help="start from the content image or from noise")
    p.add_argument("--method", default="adam", choices=["adam", "lbfgs"], help="Adam (CS231n) or L-BFGS (Gatys et al.)")
    args = cli.parse_args(p, argv, __doc__)
    variants = _variants(args)
    if args.content_scale and not all(math.isfinite(f) and f > 0 for f in args.content_scale):
        raise ValueError("--content-scale factors must be positive numbers")
    for image in args.content:      # every image is there and big enough before the long work
        check_min_side(load_image(cli.find_image(image)), image)
    for style in args.style:
        check_min_side(load_image(style_file(style)), style)
    net = cli.load_net(args, "squeezenet")
    mean, std = net.meta["mean"], net.meta["std"]
    total = len(args.content) * len(variants)
    rows = []
    for c in args.content:
        row = []
        for label, styles, mix, colour, factor in variants:
            presets = [PRESETS.get(s, PRESETS["starry_night"]) for s in styles]
            w = np.ones(len(styles)) / len(styles) if mix is None else np.asarray(mix) / sum(mix)
            def blend(key):   # the styles' preset parameters, weighted like their Grams
                return [float(v) for v in np.tensordot(w, np.array([q[key] for q in presets], float), 1).ravel()]
            photo = resize_short_side(load_image(cli.find_image(c)), presets[0]["image_size"], name=c)
            paintings = [resize_short_side(load_image(style_file(s)), q["style_size"])
                         for s, q in zip(styles, presets)]
            if colour == "histogram":
                paintings = [match_colours(pt / 255.0, photo / 255.0) * 255 for pt in paintings]
            elif colour == "luminance":
                paintings = [match_luminance(pt / 255.0, photo / 255.0) * 255 for pt in paintings]
            def normalised(rgb):
                return backend.asarray(preprocess(np.rint(rgb).astype(np.uint8), mean=mean, std=std))
            start = luminance(photo / 255.0) * 255 if colour == "luminance" else photo
            x, _ = style_transfer(net, normalised(start), [normalised(pt) for pt in paintings], mix=list(w),
                                  content_weight=blend("content_weight")[0] * factor,
                                  style_weights=blend("style_weights"), tv_weight=blend("tv_weight")[0],
                                  steps=args.steps, init=args.init, method=args.method, seed=args.seed,
                                  log=lambda msg, k=len(rows) * len(variants) + len(row) + 1:
                                      print(f"image {k}/{total}: {msg}", end="\r", flush=True))
            out = deprocess(x[0], mean=mean, std=std)
            if colour == "luminance":
                out = np.rint(with_chroma(out / 255.0, photo / 255.0) * 255).astype(np.uint8)
            row.append(render.caption(out, label))
        rows.append(render.hstack([render.caption(photo, _name(c))] + row))
    print()
    print(f"wrote {render.save(render.vstack([style_row(args.style)] + rows), cli.output_path(args, 'style_transfer'))}")


def style_row(styles, height=160):
    """The style images themselves, side by side at one height, each captioned with its name."""
    tiles = []
    for s in styles:
        painting = load_image(style_file(s))
        h, w = painting.shape[:2]
        small = np.asarray(Image.fromarray(painting).resize((max(1, round(w * height / h)), height), Image.LANCZOS))
        tiles.append(render.caption(small, f"style: {str(s).split('/')[-1]}"))
    return render.hstack(tiles)


if __name__ == "__main__":
    cli.run(main)
