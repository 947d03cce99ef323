"""Texture synthesis: a new image with the same Gram matrices as a texture.

Gatys, Ecker & Bethge (2015), "Texture Synthesis Using Convolutional Neural
Networks". The Gram matrix G_l = F_l F_l^T of a layer's activations records which
features occur together, but not where. Starting from noise, match them:

    E = sum_l w_l E_l,    E_l = sum_ij (G_l - A_l)_ij^2 / (4 C_l^2 (H_l W_l)^2)

(with the normalised Grams of vis.objectives, E_l is a quarter of their squared
difference; layers weighted equally, as in the paper). Matching only the first
layer reproduces colours and fine grain; adding deeper layers brings back larger
structures (bricks, blades of grass).

Equal weights only balance the layers because Gatys et al. first rescaled VGG so
that every filter's mean activation is 1. SqueezeNet's activations grow with depth
(mean 0.4 at relu1, 16 at fire7 on the brick texture), and E_l grows with the fourth
power of the activations, so unscaled the deepest layer would outweigh the first
by 10^6 and leave coloured noise. The same rescaling, per layer, is a weight:

    w_l = 1 / (4 mean(|F_l(texture)|)^4)      (layer_weights)

    python -m vis.texture_synthesis --texture textures/brick.png   (make texture_synthesis)
"""

import time

from tinycnn import backend
from tinycnn.engine import memory
from vis import _memory, cli, render
from vis._optimize import optimize, pixel_range, uniform_image
from vis.objectives import style_targets_of, synthesis_objective

STEPS = 200     # L-BFGS iterations per image (Gatys et al. ran theirs to convergence)
LARGE = 1.5     # the lecture's point: a new image of the texture, larger than the sample
LAYER_SETS = (("relu1",), ("relu1", "fire2"), ("relu1", "fire2", "fire3"),
              ("relu1", "fire2", "fire3", "fire5"), ("relu1", "fire2", "fire3", "fire5", "fire7"))


def layer_weights(net, texture, layers):
    """{layer: 1 / (4 m^4)} with m the layer's mean absolute activation on the texture:
    E_l weighted as if the layer were rescaled to mean activation 1 (Gatys et al.)."""
    acts = net.activations(texture, list(layers))
    return {k: 0.25 / max(float(abs(acts[k]).mean()), 1e-12) ** 4 for k in layers}


def synthesize_texture(net, texture, layers, *, size=None, steps=STEPS, seed=0, log=None):
    """A (1, 3, S, S) NumPy image, from noise, whose Grams at ``layers`` match ``texture``'s.

    Optimised with L-BFGS (within the valid pixel range), as Gatys et al. did."""
    targets = style_targets_of(net, texture, layers)
    objective = synthesis_objective(net, style_targets=targets, style_weights=layer_weights(net, texture, layers))
    lo, hi = pixel_range(net)
    S = size or texture.shape[-1]
    x0 = uniform_image((1, 3, S, S), lo, hi, seed)

    out, _, _ = optimize(objective, x0, steps=steps, method="lbfgs", bounds=(lo, hi), log=log)
    return backend.to_numpy(out)


def main(argv=None):
    from tinycnn.io.images import deprocess
    p = cli.parser("Gram-matrix texture synthesis with progressively more layers.", target=False, image=False)
    p.add_argument("--texture", nargs="+", default=["textures/brick.png", "styles/starry_night.jpg"],
                   help="texture images, relative to images/ (or $TINYCNN_IMAGES_DIR), or paths")
    p.add_argument("--size", type=cli.count, default=160, help="side of the texture crop and the output in pixels (default: %(default)s)")
    p.add_argument("--steps", type=cli.count, default=STEPS, help="L-BFGS steps per image (default: %(default)s)")
    p.add_argument("--large", type=float, default=LARGE,
                   help="the last column (every layer) at this multiple of --size (default: %(default)s)")
    args = cli.parse_args(p, argv, __doc__)
    if not 0 < args.large <= 8:
        raise ValueError(f"--large {args.large}: give a multiple of --size between 0 and 8")
    net = cli.load_net(args, "squeezenet")
    memory.check_fits("--size", args.size, _memory.texture_synthesis_need(net, LAYER_SETS[-1], args.large))
    for side, option in ((args.size, "--size"), (round(args.large * args.size), "--large times --size")):
        cli.check_side(net, side, side, LAYER_SETS[-1][-1], f"make {option} larger")
    for t in args.texture:
        cli.find_image(t)       # every file is there before the first (long) synthesis starts
    rows = []
    for t in args.texture:
        texture = cli.load_one(net, cli.find_image(t), args.size, crop=True)
        tiles = [render.caption(deprocess(backend.to_numpy(texture)[0], mean=net.meta["mean"], std=net.meta["std"]),
                                str(t).split("/")[-1])]
        for layers in LAYER_SETS:
            # the last column, every layer, is larger than the sample: Grams forget where
            # things are, so any size has the same statistics
            side = round(args.large * args.size) if layers == LAYER_SETS[-1] else args.size
            start = time.perf_counter()
            out = synthesize_texture(net, texture, layers, size=side, steps=args.steps, seed=args.seed,
                                     log=lambda s, layers=layers: print(f"{t} up to {layers[-1]}: {s}", end="\r"))
            seconds = time.perf_counter() - start
            tiles.append(render.caption(deprocess(out[0], mean=net.meta["mean"], std=net.meta["std"]),
                                        f"up to {layers[-1]}{f', {side}x{side}' if side != args.size else ''}, "
                                        f"{seconds:.0f} s"))
        rows.append(render.hstack(tiles))
    print()
    print(f"wrote {render.save(render.vstack(rows), args.out or 'figures/texture_synthesis.png')}")


if __name__ == "__main__":
    cli.run(main)
