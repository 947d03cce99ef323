"""Guided backpropagation and deconvnet: which pixels drive one intermediate neuron.

Pick a neuron (layer, channel, position) and send a gradient from it back to the
image. The three ReLU backward rules give three pictures (Springenberg et al. 2015,
"Striving for Simplicity", fig. 1; Zeiler & Fergus 2014, "Visualizing and
Understanding Convolutional Networks"):

    backprop   dx = (x > 0) * dout                the true gradient: noisy
    deconvnet  dx = (dout > 0) * dout             ignores the forward pass
    guided     dx = (x > 0) * (dout > 0) * dout   both masks: sharp, image-like

Only positive influence flows back through each ReLU under the guided rule, which
is why guided backprop images look like the part of the picture the neuron detects.

The strides of conv1 and its pool add a colour speckle that repeats every 4 pixels (the
net's, not the picture's: ``vis/saliency.py``). ``gridless_guided_backprop`` averages the
gradient over the image moved by 0-3 pixels down and across (``--grid 4``, SqueezeNet's
default; ``--grid 1``: one gradient, no shifts), the neuron kept where it fires most in
the unmoved image.

    python -m vis.guided_backprop --model squeezenet --layer fire6 --channel 330
    make guided_backprop       (the gallery's figure, on two photos)
"""
import numpy as np

from tinycnn import backend
from vis import cli, render
from vis.objectives import grid_shifts, select, shifted

MAX_GRID = 8      # --grid: grid^2 backward passes per rule and image


def strongest_channel(net, x, layer):
    """The channel of ``layer`` with the largest activation anywhere in the first image."""
    act = backend.to_numpy(net.activations(x[:1], layer)[layer])[0]
    return int(act.reshape(act.shape[0], -1).max(axis=1).argmax())


def guided_backprop(net, x, layer, channel, rule="guided", position=None):
    """Gradient of one neuron of ``layer`` with respect to the images, by ``rule``.

    x: (N, C, H, W). position: (y, x) of the neuron, None for the position where the
    channel is most active in each image, or "channel" for the whole channel's sum.
    Returns (N, C, H, W) as a NumPy array.
    """
    out, cache = net.forward(x, until=layer)
    where = {None: "strongest", "channel": "all"}.get(position, position)
    dx, _ = net.backward(select(out, channel, where), cache, rule=rule, param_grads=False)
    return backend.to_numpy(dx)


def gridless_guided_backprop(net, x, layer, channel, rule="guided", *, grid):
    """(N, C, H, W) NumPy: ``guided_backprop`` of one image x (1, C, H, W) averaged over the
    grid^2 moves of x by 0 to grid - 1 pixels (``shifted``), for the neuron at the position
    where the channel fires most in x itself."""
    act = backend.to_numpy(net.activations(x, layer)[layer])[0, channel]
    position = tuple(int(p) for p in np.unravel_index(act.argmax(), act.shape))
    def gradient(z):
        return guided_backprop(net, z, layer, channel, rule, position)
    shifts = grid_shifts(grid)
    return sum(shifted(gradient, x, s, grid) for s in shifts) / len(shifts)


def support(grads):
    """(top, left, side) of the smallest square holding every pixel the (C, H, W)
    gradients reach (the neuron's receptive field), kept inside the image."""
    H, W = grads[0].shape[1:]
    rows, cols = np.nonzero(np.abs(np.stack(grads)).sum(axis=(0, 1)))
    if rows.size == 0:
        return 0, 0, min(H, W)
    side = min(max(rows.max() - rows.min(), cols.max() - cols.min()) + 1, H, W)
    return min(rows.min(), H - side), min(cols.min(), W - side), side


def main(argv=None):
    p = cli.parser("Backprop vs deconvnet vs guided backprop for one neuron.", target=False,
                   layer="neuron_layer", channel=True)
    p.add_argument("--grid", type=cli.count, default=None,
                   help="average over the image moved by 0 to GRID - 1 pixels (default: the "
                        "model's stride grid; 1: a single gradient)")
    args = cli.parse_args(p, argv, __doc__)
    grid = args.grid or cli.model_default(args.model, "stride_grid")
    if grid > MAX_GRID:
        raise ValueError(f"--grid {grid}: at most {MAX_GRID} (it costs grid^2 backward passes "
                         "per rule; a stride grid is 4 pixels on SqueezeNet, 2 on the CIFAR-10 "
                         "net)")
    net = cli.load_net(args)
    cli.check_channel(net, args.layer, args.channel)
    x, rgb = cli.load_inputs(net, args.image)
    channel = args.channel if args.channel is not None else strongest_channel(net, x, args.layer)
    size = max(rgb[0].shape[0], 128)
    rows = []
    for n, image in enumerate(rgb):
        grads = [gridless_guided_backprop(net, x[n:n + 1], args.layer, channel, rule,
                                          grid=grid)[0]
                 for rule in ("backprop", "deconvnet", "guided")]
        box = support(grads)                         # the neuron's receptive field, enlarged below
        pictures = [render.zoomed(render.framed(image, box), (0, 0, image.shape[0]), size),
                    render.zoomed(image, box, size)]
        pictures += [render.zoomed(render.as_image(g), box, size) for g in grads]
        rows.append(render.hstack(pictures))
    image = render.caption(render.vstack(rows),
                           f"{args.model} {args.layer} channel {channel} at its strongest "
                           "position: image (white: receptive field) | field enlarged | "
                           "backprop | deconvnet | guided"
                           + (f", each averaged over {grid * grid} shifts" if grid > 1 else ""))
    print(f"wrote {render.save(image, cli.output_path(args, 'guided_backprop'))}")


if __name__ == "__main__":
    cli.run(main)
