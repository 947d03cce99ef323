"""Feature inversion: which image has these features? What a layer keeps and loses.

Mahendran & Vedaldi (2015), "Understanding Deep Image Representations by Inverting
Them". Given the features Phi_0 = Phi(x0) of an image at one layer, find

    x* = argmin_x ||Phi(x) - Phi_0||^2 / ||Phi_0||^2 + lambda_alpha ||x||_alpha^alpha + lambda_TV R_TV(x)

from noise. R_TV is the total variation of vis.losses (beta = 2); the alpha-norm
(alpha = 6) keeps pixels in range, here also enforced by clamping. Shallow layers
give back the photo almost exactly; deeper ones keep the objects' parts and
layout but lose colour and detail. The optimiser and its schedule are CS231n's
(Adam at 3.0, then 0.1 from step 180, 200 steps, from uniform noise).

    python -m vis.feature_inversion --image kitten.jpg        (make feature_inversion)
"""

from tinycnn import backend
from vis import cli, render
from vis._optimize import clamp, optimize, pixel_range, uniform_image
from vis.style_transfer import DECAY_AT, DECAYED_LR, LR, STEPS, synthesis_objective

LAYERS = ("relu1", "fire2", "fire3", "fire5", "fire7", "fire9")
# TV weight for normalised images at 224x224, chosen here by looking at the results:
# Mahendran & Vedaldi's published lambdas are for 0-255 Caffe images.
TV_WEIGHT = 1e-4
ALPHA_WEIGHT = 0.0


def invert_features(net, x, layer, *, tv_weight=TV_WEIGHT, alpha_weight=ALPHA_WEIGHT, steps=STEPS, seed=0,
                    log=None):
    """The image (1, 3, H, W) NumPy whose ``layer`` features best match those of ``x``."""
    target = net.activations(x, layer)[layer]
    objective = synthesis_objective(net, content_target=target, content_layer=layer,
                                    content_weight=1.0 / float((target * target).sum()),
                                    tv_weight=tv_weight, alpha_weight=alpha_weight)
    lo, hi = pixel_range(net)
    out, _, _ = optimize(objective, uniform_image(x.shape, lo, hi, seed), steps=steps, method="adam", seed=seed,
                         transforms=[clamp(lo, hi)],
                         lr=lambda step: LR if step < DECAY_AT else DECAYED_LR, log=log)
    return backend.to_numpy(out)


def main(argv=None):
    from tinycnn.images import deprocess
    p = cli.parser("Feature inversion from successively deeper layers.", target=False)
    p.add_argument("--layers", nargs="+", default=list(LAYERS))
    p.add_argument("--steps", type=int, default=STEPS)
    args = cli.parse_args(p, argv)
    net = cli.load_net(args)
    x, rgb = cli.load_inputs(net, args.image)
    tiles = [render.caption(rgb[0], "original")]
    for layer in args.layers:
        out = invert_features(net, x[:1], layer, steps=args.steps, seed=args.seed,
                              log=lambda s, layer=layer: print(f"{layer}: {s}", end="\r"))
        tiles.append(render.caption(deprocess(out[0], mean=net.meta["mean"], std=net.meta["std"]), layer))
    print()
    scale = 1 if rgb[0].shape[0] >= 128 else 4
    image = render.hstack([render.upscale(t, scale) for t in tiles])
    print(f"wrote {render.save(image, cli.output_path(args, 'feature_inversion'))}")


if __name__ == "__main__":
    cli.run(main)
