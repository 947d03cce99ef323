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
200 steps.

    python -m vis.style_transfer --content chelsea.png --style starry_night   (make style_transfer)
"""

import numpy as np

from tinycnn import backend
from vis import cli, render
from vis._optimize import SYNTHESIS_STEPS, clamp, optimize, pixel_range, synthesis_lr, uniform_image
from vis.objectives import style_targets_of, synthesis_objective

CONTENT_LAYER = "fire2"
STYLE_LAYERS = ("relu1", "fire3", "fire4", "fire5")
# CS231n (assignment 3, StyleTransfer): image size, style size, content weight,
# style weights (for STYLE_LAYERS), TV weight
PRESETS = {
    "composition_vii": dict(image_size=192, style_size=512, content_weight=5e-2,
                            style_weights=(20000, 500, 12, 1), tv_weight=5e-2),
    "the_scream": dict(image_size=192, style_size=224, content_weight=3e-2,
                       style_weights=(200000, 800, 12, 1), tv_weight=2e-2),
    "starry_night": dict(image_size=192, style_size=192, content_weight=6e-2,
                         style_weights=(300000, 1000, 15, 3), tv_weight=2e-2),
}


def style_transfer(net, content, style, *, content_weight, style_weights, tv_weight, content_layer=CONTENT_LAYER,
                   style_layers=STYLE_LAYERS, steps=SYNTHESIS_STEPS, init="content", method="adam", seed=0,
                   snapshot_every=None, log=None):
    """The stylised image (1, 3, H, W) NumPy, normalised like ``content``; and snapshots.

    content, style: normalised images on the active backend (any sizes).
    init: "content" or "noise". method: "adam" (CS231n's schedule) or "lbfgs" (Gatys).
    """
    weights = dict(zip(style_layers, style_weights))
    objective = synthesis_objective(
        net, content_target=net.activations(content, content_layer)[content_layer], content_layer=content_layer,
        content_weight=content_weight, style_targets=style_targets_of(net, style, style_layers),
        style_weights=weights, tv_weight=tv_weight)
    lo, hi = pixel_range(net)
    x0 = uniform_image(content.shape, lo, hi, seed) if init == "noise" else content.copy()
    x, snapshots, _ = optimize(objective, x0, steps=steps, method=method, seed=seed,
                               lr=synthesis_lr, bounds=(lo, hi),
                               transforms=[] if method == "lbfgs" else [clamp(lo, hi)],   # L-BFGS: bounds
                               snapshot_every=snapshot_every, log=log)
    return backend.to_numpy(x), snapshots


def main(argv=None):
    from tinycnn.images import deprocess
    p = cli.parser("Neural style transfer (Gatys et al. 2016) with CS231n's presets.", target=False, image=False)
    p.add_argument("--content", nargs="+", default=["tubingen.jpg"], help="content photos (in photos/ or paths)")
    p.add_argument("--style", nargs="+", default=list(PRESETS), help=f"presets: {', '.join(PRESETS)}; or a style image (with starry_night's weights)")
    p.add_argument("--steps", type=cli.count, default=SYNTHESIS_STEPS, help="optimisation steps (default: %(default)s)")
    p.add_argument("--init", default="content", choices=["content", "noise"], help="start from the content image or from noise")
    p.add_argument("--method", default="adam", choices=["adam", "lbfgs"], help="Adam (CS231n) or L-BFGS (Gatys et al.)")
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args, "squeezenet")
    mean, std = net.meta["mean"], net.meta["std"]
    for image in args.content + [f"styles/{s}.jpg" if s in PRESETS else s for s in args.style]:
        cli.find_image(image)   # every file is there before the first (long) optimisation starts
    rows = []
    for c in args.content:
        row = []
        for s in args.style:
            preset = PRESETS.get(s, PRESETS["starry_night"])
            content = cli.load_one(net, cli.find_image(c), preset["image_size"])
            style = cli.load_one(net, cli.find_image(f"styles/{s}.jpg" if s in PRESETS else s), preset["style_size"])
            x, _ = style_transfer(net, content, style, content_weight=preset["content_weight"],
                                  style_weights=preset["style_weights"], tv_weight=preset["tv_weight"],
                                  steps=args.steps, init=args.init, method=args.method, seed=args.seed,
                                  log=lambda msg, s=s: print(f"{s}: {msg}", end="\r"))
            row.append(render.caption(deprocess(x[0], mean=mean, std=std), s))
        first = render.caption(deprocess(backend.to_numpy(content)[0], mean=mean, std=std), str(c).split("/")[-1])
        rows.append(render.hstack([first] + row))
    print()
    print(f"wrote {render.save(render.vstack([style_row(args.style)] + rows), args.out or 'figures/style_transfer.png')}")


def style_row(styles, height=160):
    """The style images themselves, side by side at one height, each captioned with its name."""
    from PIL import Image
    from tinycnn.images import load_image
    tiles = []
    for s in styles:
        painting = load_image(cli.find_image(f"styles/{s}.jpg" if s in PRESETS else s))
        h, w = painting.shape[:2]
        small = np.asarray(Image.fromarray(painting).resize((max(1, round(w * height / h)), height), Image.LANCZOS))
        tiles.append(render.caption(small, f"style: {str(s).split('/')[-1]}"))
    return render.hstack(tiles)


if __name__ == "__main__":
    cli.run(main)
