"""Fooling images: a change too small to see that makes the network say another class.

Szegedy et al. (2014), "Intriguing properties of neural networks"; CS231n's
exercise. Climb the target class's score with normalised gradient steps until it
becomes the network's prediction:

    x <- x + lr * g / ||g||_2,      g = dS_target / dx,      until argmax f(x) = target

The difference x' - x, magnified, looks like noise.

    python -m vis.fooling --model squeezenet --image chelsea.png --target stingray   (make fooling)
"""
import numpy as np

from tinycnn import backend
from vis import cli, render
from vis.objectives import score_gradient

# CS231n: learning rate 1 on normalised gradients; usually under 100 iterations
LR, MAX_STEPS = 1.0, 100


def fooling_image(net, x, target, *, lr=LR, max_steps=MAX_STEPS, log=None):
    """(x_fool (1, C, H, W) NumPy, steps taken): ``x`` changed until ``net`` predicts ``target``.

    Each step moves the image a distance ``lr`` (L2, in normalised pixel units) up the
    target score's gradient: dX = lr * g / ||g||_2 (the 1e-12 guards against a zero
    gradient). RuntimeError if ``max_steps`` steps do not suffice.
    """
    xp = backend.get_array_module(x)
    for step in range(max_steps + 1):
        scores = net(x)
        if int(scores[0].argmax()) == target:     # the one synchronisation per step
            return backend.to_numpy(x), step
        if step == max_steps:
            break
        g = score_gradient(net, x, target)                   # dS_target / dx, (1, C, H, W)
        x = x + lr * g / (xp.sqrt((g ** 2).sum()) + 1e-12)
        if log:
            log(f"step {step + 1}: score {float(scores[0, target]):.2f}")   # before the step
    raise RuntimeError(f"the network still does not predict class {target} after {max_steps} "
                       "steps")


def main(argv=None):
    from tinycnn.io.images import class_index, deprocess
    p = cli.parser("Fooling images: imperceptible changes that flip the prediction.", target=False)
    defaults = ", ".join(f"{row['fool_target']} on {m}" for m, row in cli.MODEL_DEFAULTS.items())
    p.add_argument("--target", default=None, help=f"class to fool towards (default: {defaults})")
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args)
    x, rgb = cli.load_inputs(net, args.image)
    x = x[:1]
    target = class_index(args.target or cli.model_default(args.model, "fool_target"),
                         net.meta["classes"])
    before = int(backend.to_numpy(net(x)).argmax())
    fooled, steps = fooling_image(net, x, target, log=lambda s: print(s, end="\r"))
    print()
    diff = fooled[0] - backend.to_numpy(x)[0]
    mean, std = net.meta["mean"], net.meta["std"]
    pixel_diff = diff * np.reshape(std, (3, 1, 1)) * 255                   # in 0-255 pixel units
    pictures = [rgb[0], deprocess(fooled[0], mean=mean, std=std),
                render.to_uint8(diff.transpose(1, 2, 0), -np.abs(diff).max(), np.abs(diff).max())]
    scale = render.display_scale(rgb[0])
    image = render.caption(render.hstack([render.upscale(im, scale) for im in pictures]),
                           f"{cli.short_name(net, before)} -> {cli.short_name(net, target)} in "
                           f"{steps} steps; change: L-inf {np.abs(pixel_diff).max():.1f}, "
                           f"L2 {np.linalg.norm(pixel_diff):.0f} "
                           "(0-255 pixel units)\nimage | fooled image | difference, magnified")
    print(f"wrote {render.save(image, cli.output_path(args, 'fooling'))}")


if __name__ == "__main__":
    cli.run(main)
