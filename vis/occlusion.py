"""Occlusion: cover part of the image and watch the class probability drop.

Zeiler & Fergus (2014), "Visualizing and Understanding Convolutional Networks",
sec. 4.2: slide a grey square over the image; at each position record the
probability of the correct class. Where the probability falls, the network was
looking. The grey square is the dataset mean, which is 0 after normalisation.

    P[i, j] = softmax(f(x with the patch at (i*stride, j*stride) filled))[target]

Patches are evaluated in batches, so a 224x224 map costs a few dozen forward passes.

    python -m vis.occlusion --model squeezenet --image chelsea.png     (make occlusion)
"""
import numpy as np
from PIL import Image

from tinycnn import backend
from tinycnn.im2col import out_size
from tinycnn.losses import softmax
from vis import cli, render


def occlusion_map(net, x, target, *, size=None, stride=None, fill=0.0, batch_size=32, log=None):
    """(H', W') probability of class ``target`` with the patch at each position.

    x: (1, C, H, W). size / stride default to H/4 and H/16 (a 56-px patch every 14 px
    at 224, 8 every 2 at 32): about the size of an object part, like the paper's grey
    squares; a smaller patch leaves a face that fills the frame nearly untouched (its
    other eye, its other ear still show). fill: the value the patch holds (0 = the mean pixel).
    """
    xp = backend.get_array_module(x)
    _, C, H, W = x.shape
    size = size or max(1, H // 4)
    stride = stride or max(1, H // 16)
    oh, ow = out_size(H, size, stride, 0), out_size(W, size, stride, 0)
    positions = [(i, j) for i in range(oh) for j in range(ow)]
    probs = []
    for start in range(0, len(positions), batch_size):
        chunk = positions[start:start + batch_size]
        batch = xp.repeat(x, len(chunk), axis=0)
        for k, (i, j) in enumerate(chunk):
            batch[k, :, i * stride:i * stride + size, j * stride:j * stride + size] = fill
        probs.append(softmax(net(batch))[:, target])                  # stays on the device
        if log:
            log(f"occlusion: {start + len(chunk)}/{len(positions)} positions")
    return backend.to_numpy(xp.concatenate(probs)).astype(np.float64).reshape(oh, ow)


def _row(image, heat, base, name, scale):
    """One image's row: the photo, the map of p with its colour bar, and where covering costs."""
    big = render.upscale(image, scale)
    side = big.shape[0]
    # the map itself, one cell per patch position, on a fixed probability scale with its colour bar
    cells = np.asarray(Image.fromarray(render.colormap(heat, 0.0, 1.0))
                       .resize(big.shape[1::-1], Image.NEAREST))
    drop = np.clip(base - heat, 0, None)          # how much covering each position costs
    pictures = [big, render.hstack([cells, render.colorbar(0.0, 1.0, side)], pad=4),
                render.overlay(big, drop, alpha=0.8, lo=0.0, hi=max(drop.max(), 1e-6), fade=True)]
    return render.caption(render.hstack(pictures),
                          f"{name}: p = {base:.2f} unoccluded | p with the grey square at each "
                          f"position ({heat.min():.2f} - {heat.max():.2f}) | where covering costs "
                          f"most (up to {drop.max():.2f})")


def main(argv=None):
    p = cli.parser("Occlusion sensitivity (Zeiler & Fergus 2014).")
    p.add_argument("--size", type=cli.count, default=None,
                   help="patch size in pixels (default: image size / 4)")
    p.add_argument("--stride", type=cli.count, default=None,
                   help="patch stride (default: image size / 16)")
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args)
    x, rgb = cli.load_inputs(net, args.image)
    target = cli.targets(net, x, args.target)
    scale = render.display_scale(rgb[0])
    rows = []
    for n, image in enumerate(rgb):
        base = float(backend.to_numpy(softmax(net(x[n:n + 1])))[0, target[n]])
        heat = occlusion_map(net, x[n:n + 1], target[n], size=args.size, stride=args.stride,
                             log=lambda s: print(s, end="\r", flush=True))
        print()
        rows.append(_row(image, heat, base, cli.short_name(net, target[n]), scale))
    print(f"wrote {render.save(render.vstack(rows), cli.output_path(args, 'occlusion'))}")


if __name__ == "__main__":
    cli.run(main)
