"""Feature inversion: which image has these features? What a layer keeps and loses.

Mahendran & Vedaldi (2015), "Understanding Deep Image Representations by Inverting
Them". Given the features Phi_0 = Phi(x0) of an image at one layer, find

    x* = argmin_x ||Phi(x) - Phi_0||^2 / ||Phi_0||^2
                  + lambda_alpha ||x||_alpha^alpha + lambda_TV R_TV(x)

from noise. R_TV is the total variation of vis.objectives (beta = 2); the alpha-norm
(alpha = 6) keeps pixels in range, here also enforced by clamping. Shallow layers
give back the photo almost exactly; deeper ones keep the objects' parts and
layout but lose colour and detail. The optimiser and its schedule are CS231n's
(Adam at 3.0, then 0.1 from step 180, 200 steps, from uniform noise).

    python -m vis.feature_inversion --image astronaut.png       (make feature_inversion)
"""

from tinycnn import backend
from vis import cli, render
from vis._optimize import (SYNTHESIS_STEPS, clamp, optimize, pixel_range, synthesis_lr,
                           uniform_image)
from vis.objectives import synthesis_objective

LAYERS = ("relu1", "fire2", "fire3", "fire5", "fire7", "fire9")
# TV weight by depth, for normalised images at 224x224: like Mahendran & Vedaldi, who
# raise lambda_TV tenfold from shallow to deep layers, but the values are chosen here by
# looking at the results (theirs are for 0-255 Caffe images). Too much TV blurs what a
# shallow layer could give back exactly; too little leaves a deep layer's noise.
TV_BY_DEPTH = (("pool1", 1e-6), ("pool3", 3e-6), ("pool5", 1e-5))   # up to and including the layer
TV_DEEP = 1e-4
ALPHA_WEIGHT = 0.0


def tv_weight_for(net, layer):
    """The default total-variation weight for inverting ``layer`` (a top-level name or inside
    one)."""
    order = [n for n in net.names() if "." not in n]
    depth = order.index(layer.split(".")[0])
    for upto, weight in TV_BY_DEPTH:
        if upto in order and depth <= order.index(upto):
            return weight
    return TV_DEEP


def invert_features(net, x, layer, *, tv_weight=None, alpha_weight=ALPHA_WEIGHT,
                    steps=SYNTHESIS_STEPS, seed=0, log=None):
    """The image (1, 3, H, W) NumPy whose ``layer`` features best match those of ``x``.
    tv_weight: None for tv_weight_for(net, layer)."""
    target = net.activations(x, layer)[layer]
    tv_weight = tv_weight_for(net, layer) if tv_weight is None else tv_weight
    objective = synthesis_objective(net, content_target=target, content_layer=layer,
                                    content_weight=1.0 / float((target * target).sum()),
                                    tv_weight=tv_weight, alpha_weight=alpha_weight)
    lo, hi = pixel_range(net)
    out, _, _ = optimize(objective, uniform_image(x.shape, lo, hi, seed), steps=steps,
                         method="adam", seed=seed, transforms=[clamp(lo, hi)], lr=synthesis_lr,
                         log=log)
    return backend.to_numpy(out)


def main(argv=None):
    from tinycnn.io.images import deprocess
    p = cli.parser("Feature inversion from successively deeper layers.", target=False)
    p.add_argument("--layers", nargs="+", default=list(LAYERS),
                   help="layers to invert, one image each (default: %(default)s)")
    p.add_argument("--steps", type=cli.count, default=SYNTHESIS_STEPS,
                   help="Adam steps per layer (default: %(default)s)")
    p.add_argument("--tv-weight", type=cli.non_negative, default=None,
                   help="total-variation weight (default: by depth)")
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args)
    for layer in args.layers:
        cli.check_channel(net, layer)
    x, rgb = cli.load_inputs(net, args.image)
    tiles = [render.caption(rgb[0], "original")]
    for layer in args.layers:
        out = invert_features(net, x[:1], layer, tv_weight=args.tv_weight, steps=args.steps,
                              seed=args.seed,
                              log=lambda s, layer=layer: print(f"{layer}: {s}", end="\r"))
        picture = deprocess(out[0], mean=net.meta["mean"], std=net.meta["std"])
        tiles.append(render.caption(picture, layer))
    print()
    scale = render.display_scale(rgb[0])
    image = render.hstack([render.upscale(t, scale) for t in tiles])
    print(f"wrote {render.save(image, cli.output_path(args, 'feature_inversion'))}")


if __name__ == "__main__":
    cli.run(main)
