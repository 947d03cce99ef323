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
from vis._optimize import optimize
from vis.objectives import score_objective

# CS231n: learning rate 1 on normalised gradients; usually under 100 iterations
LR, MAX_STEPS = 1.0, 100


def fooling_image(net, x, target, *, lr=LR, max_steps=MAX_STEPS, log=None):
    """(x_fool (1, C, H, W) NumPy, steps taken): ``x`` changed until ``net`` predicts ``target``.

    Raises RuntimeError if ``max_steps`` steps do not suffice.
    """
    objective = score_objective(net, target)
    for step in range(max_steps + 1):
        if int(net(x)[0].argmax()) == target:     # the one synchronisation per step
            return backend.to_numpy(x), step
        if step == max_steps:
            break
        x, _, losses = optimize(objective, x, steps=1, lr=lr, method="normalized")
        if log:  # the loss is minus the score before the step
            log(f"step {step + 1}: score {-losses[0]:.2f}")
    raise RuntimeError(f"the network still does not predict class {target} after {max_steps} steps")


def main(argv=None):
    from tinycnn.io.images import class_index, deprocess
    p = cli.parser("Fooling images: imperceptible changes that flip the prediction.", target=False)
    p.add_argument("--target", default=None, help="class to fool towards (default: "
                   + ", ".join(f"{row['fool_target']} on {m}" for m, row in cli.MODEL_DEFAULTS.items()) + ")")
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args)
    x, rgb = cli.load_inputs(net, args.image)
    x = x[:1]
    target = class_index(args.target or cli.model_default(args.model, "fool_target"), net.meta["classes"])
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
                           f"{cli.short_name(net, before)} -> {cli.short_name(net, target)} in {steps} steps; "
                           f"change: L-inf {np.abs(pixel_diff).max():.1f}, L2 {np.linalg.norm(pixel_diff):.0f} "
                           "(0-255 pixel units)\nimage | fooled image | difference, magnified")
    print(f"wrote {render.save(image, cli.output_path(args, 'fooling'))}")


if __name__ == "__main__":
    cli.run(main)
