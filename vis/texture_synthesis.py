"""Texture synthesis: a new image with the same Gram matrices as a texture.

Gatys, Ecker & Bethge (2015), "Texture Synthesis Using Convolutional Neural
Networks". The Gram matrix G_l = F_l F_l^T of a layer's activations records which
features occur together, but not where. Starting from noise, match them:

    E = sum_l w_l E_l,    E_l = sum_ij (G_l - A_l)_ij^2 / (4 C_l^2 (H_l W_l)^2)

(with the normalised Grams of vis.objectives, E_l is a quarter of their squared
difference; layers weighted equally, as in the paper). Matching only the first
layer reproduces colours and fine grain; adding deeper layers brings back larger
structures (stones, brush strokes).

Equal weights only balance the layers because Gatys et al. first rescaled VGG so
that every filter's mean activation is 1. SqueezeNet's activations grow with depth
(mean 0.4 at relu1, 16 at fire7 on the brick texture), and E_l grows with the fourth
power of the activations, so unscaled the deepest layer would outweigh the first
by 10^6 and leave coloured noise. The same rescaling, per layer, is a weight:

    w_l = 1 / (4 mean(|F_l(texture)|)^4)      (layer_weights)

The start is the texture's mean colour plus a little uniform noise (NOISE), not noise over
the whole pixel range: few filter windows see the border pixels, so the optimisation barely
moves them, and full-range noise left a fringe of random colours around every image (and
colour specks on a grey texture).

    python -m vis.texture_synthesis --texture textures/brick.png   (make texture_synthesis)
"""

import argparse
import math
import time

from tinycnn import backend
from tinycnn.engine import memory
from tinycnn.io.images import deprocess
from vis import _memory, cli, render
from vis._optimize import optimize, pixel_range, uniform_image
from vis.objectives import style_targets_of, synthesis_objective

STEPS = 200     # L-BFGS iterations per image (Gatys et al. ran theirs to convergence)
NOISE = 0.2     # the start's noise, a fraction of the pixel range around the texture's mean
LARGE = 1.5     # the lecture's point: a new image of the texture, larger than the sample
MAX_LARGE = 8   # --large's bound: the last image at most 8 times the sample's side
MAX_ZOOM = 4    # --zoom's bound: the sample cut from the texture shrunk to 4 times its side
# Deeper than fire5 is left out: fire7's Gram, estimated from the sample's 9 x 9 positions,
# paints grass as a fine speckle, not blades, at 160 px as at 240 px.
LAYER_SETS = (("relu1",), ("relu1", "fire2"), ("relu1", "fire2", "fire3"),
              ("relu1", "fire2", "fire3", "fire5"))


def layer_weights(net, texture, layers):
    """{layer: 1 / (4 m^4)} with m the layer's mean absolute activation on the texture:
    E_l weighted as if the layer were rescaled to mean activation 1 (Gatys et al.)."""
    acts = net.activations(texture, list(layers))
    return {k: 0.25 / max(float(abs(acts[k]).mean()), 1e-12) ** 4 for k in layers}


def synthesize_texture(net, texture, layers, *, size=None, steps=STEPS, seed=0, log=None):
    """A (1, 3, S, S) NumPy image, from noise, whose Grams at ``layers`` match ``texture``'s.

    Optimised with L-BFGS (within the valid pixel range), as Gatys et al. did."""
    targets = style_targets_of(net, texture, layers)
    objective = synthesis_objective(net, style_targets=targets,
                                    style_weights=layer_weights(net, texture, layers))
    lo, hi = pixel_range(net)
    S = size or texture.shape[-1]
    x0 = start_image(texture, (1, 3, S, S), lo, hi, seed)

    out, _, _ = optimize(objective, x0, steps=steps, method="lbfgs", bounds=(lo, hi), log=log)
    return backend.to_numpy(out)


def start_image(texture, shape, lo, hi, seed, noise=NOISE):
    """Noise of ``noise`` times the range [lo, hi] centred on the texture's mean colour, within
    the range: where the synthesis starts."""
    xp = backend.get_array_module(texture)
    mean = texture.mean(axis=(2, 3), keepdims=True)
    x = mean + (uniform_image(shape, lo, hi, seed) - (lo + hi) / 2) * noise
    return xp.minimum(xp.maximum(x, lo), hi).astype(texture.dtype)


def layer_series(net, texture, *, size, large=LARGE, steps=STEPS, seed=0, log=None):
    """[(layers, image (1, 3, S, S) NumPy, seconds)]: the texture synthesised from each of
    LAYER_SETS, S = size, and for the last (every layer) S = large * size: Grams forget where
    things are, so an image of any size has the same statistics."""
    series = []
    for layers in LAYER_SETS:
        side = round(large * size) if layers == LAYER_SETS[-1] else size
        start = time.perf_counter()
        say = None if log is None else (lambda s, last=layers[-1]: log(f"up to {last}: {s}"))
        x = synthesize_texture(net, texture, layers, size=side, steps=steps, seed=seed, log=say)
        series.append((layers, x, time.perf_counter() - start))
    return series


def multiple(text, low=0, high=MAX_LARGE, closed=False):
    """--large's type: a multiple of --size, above 0 and at most MAX_LARGE (--zoom's: from 1
    to MAX_ZOOM, closed)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (low <= value if closed else low < value) or not value <= high:
        raise argparse.ArgumentTypeError(f"{text!r} is not a multiple of --size between {low} "
                                         f"and {high}")
    return value


def main(argv=None):
    p = cli.parser("Gram-matrix texture synthesis with progressively more layers.", target=False,
                   image=False)
    p.add_argument("--texture", nargs="+",
                   default=["textures/brick.png", "styles/starry_night.jpg"],
                   help="texture images, relative to images/ (or $TINYCNN_IMAGES_DIR), or paths")
    p.add_argument("--size", type=cli.count, default=160,
                   help="side of the texture crop and the output in pixels (default: %(default)s)")
    p.add_argument("--steps", type=cli.count, default=STEPS,
                   help="L-BFGS steps per image (default: %(default)s)")
    p.add_argument("--large", type=multiple, default=LARGE,
                   help="the last column (every layer) at this multiple of --size "
                   "(default: %(default)s)")
    p.add_argument("--zoom", type=lambda t: multiple(t, 1, MAX_ZOOM, closed=True), default=1,
                   help="the sample: a --size square cut from the texture shrunk to this "
                   "multiple of --size on its short side, not the whole texture (default: "
                   "%(default)s: the whole width; larger keeps fine grain the net can see)")
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args, "squeezenet")
    memory.check_fits("--size", args.size,
                      _memory.texture_synthesis_need(net, LAYER_SETS[-1], args.large))
    large = round(args.large * args.size)
    for side, option in ((args.size, "--size"), (large, "--large times --size")):
        cli.check_side(net, side, side, LAYER_SETS[-1][-1], f"make {option} larger")
    for t in args.texture:
        cli.find_image(t)       # every file is there before the first (long) synthesis starts
    rows = []
    for t in args.texture:
        texture = sample(net, cli.find_image(t), args.size, args.zoom)
        series = layer_series(net, texture, size=args.size, large=args.large, steps=args.steps,
                              seed=args.seed, log=lambda s, t=t: print(f"{t} {s}", end="\r"))
        rows.append(series_row(net, str(t).split("/")[-1], texture, series))
    print()
    print(f"wrote {render.save(render.vstack(rows), args.out or 'figures/texture_synthesis.png')}")


def sample(net, path, size, zoom=1):
    """(1, 3, size, size): the centre square of the texture at ``path`` shrunk to ``zoom`` *
    size on its short side."""
    texture = cli.load_one(net, path, round(zoom * size), crop=True)
    top = (texture.shape[-1] - size) // 2
    return texture[:, :, top:top + size, top:top + size]


def series_row(net, name, texture, series):
    """The texture, then each synthesised image, captioned with its layers, size and time."""
    def picture(x):
        return deprocess(backend.to_numpy(x)[0], mean=net.meta["mean"], std=net.meta["std"])
    tiles = [render.caption(picture(texture), name)]
    for layers, x, seconds in series:
        side = x.shape[-1]
        larger = f", {side}x{side}" if side != texture.shape[-1] else ""
        tiles.append(render.caption(picture(x), f"up to {layers[-1]}{larger}, {seconds:.0f} s"))
    return render.hstack(tiles)


if __name__ == "__main__":
    cli.run(main)
