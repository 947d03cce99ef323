"""DeepDream: amplify whatever a layer already sees in a photo.

Mordvintsev, Olah & Tyka (2015), "Inceptionism". Gradient *ascent* on

    L(x) = 1/2 ||a(x)||^2,      a = the layer's activations,

whose gradient at the layer is the activation itself, dL/da = a. Each step is
normalised by the gradient's mean magnitude (x <- x + lr * g / mean|g|), jittered by a
random roll, and clipped to the valid pixel range. Octaves: the image is processed
from small to full size, each octave adding the detail the previous ones dreamt.
Defaults from the original DeepDream notebook: 4 octaves at scale 1.4, 10 steps per
octave, step 1.5 (in 0-255 pixel units; converted with the model's std), jitter 32 px.

One change from the notebook keeps the dream vivid on this network: the step follows
the gradient blurred by a Gaussian G of 1 px, x <- x + lr * G*g / mean|G*g|, not g
itself. SqueezeNet's gradient is mostly pixel-sized specks (a 1 px blur removes almost
nine tenths of fire9's on the rocket photo): followed as it is, the specks grow into a
fine grey film over the photo while the shapes behind them stay faint outlines. The
blur boosts the step's low frequencies, as the DeepDream tutorial's Laplacian-pyramid
gradient normalisation does (Mordvintsev, tensorflow/examples/tutorials/deepdream),
and keeps it an ascent direction: G is symmetric with positive eigenvalues, so
<g, G*g> > 0.

What appears depends on the layer: shallow layers amplify colours and strokes, middle
ones swirls and eye-like spots, the deepest the parts of the animals that fill
ImageNet (a layer sweep: ``--layer`` with several names draws one panel each). The
deepest layers need more steps than the notebook's 10 to draw whole heads: ``--steps``
takes one value per layer. The network sees the whole photo, uncropped, at any
``--size``: larger images leave room for more, smaller objects, as in the blog post's
pictures.

    python -m vis.deepdream --model squeezenet --image rocket.jpg --layer fire5
    python -m vis.deepdream --image rocket.jpg --size 320 --layer fire7 fire9 --steps 20 30
    make deepdream    (the gallery's figure: relu1 fire3 fire5 fire7 fire9, --steps 10 10 10 20 30)
"""
import numpy as np

from tinycnn import backend
from tinycnn.engine import memory
from vis import _memory, cli, render
from vis._optimize import clamp, gaussian_blur, optimize, pixel_range
from vis.objectives import dream_objective

OCTAVES, OCTAVE_SCALE, STEPS, LR, JITTER = 4, 1.4, 10, 1.5, 32
SMOOTH = 1.0   # px, the gradient's blur, by eye: 0.5 leaves a film of specks, 2 blurs eyes away


def _resize(x, shape):
    """Bilinear resize of (1, C, H, W) to spatial ``shape``, where x lives (host or GPU)."""
    factors = (1, 1, shape[0] / x.shape[2], shape[1] / x.shape[3])
    return backend.ndimage(x).zoom(x, factors, order=1)


def smoothed(objective, sigma):
    """``objective`` whose gradient is blurred by a Gaussian of ``sigma`` px (0: unchanged)."""
    def wrapped(x):
        loss, grad = objective(x)
        return loss, gaussian_blur(grad, sigma)
    return wrapped


def deepdream(net, x, layer, *, octaves=OCTAVES, octave_scale=OCTAVE_SCALE, steps=STEPS, lr=LR,
              jitter=JITTER, smooth=SMOOTH, seed=0, log=None):
    """The dreamt image (1, C, H, W) NumPy, normalised like ``x``; the octaves stay on x's
    device."""
    xp = backend.get_array_module(x)
    base = x.astype(np.float32)
    pyramid = [base]
    for _ in range(octaves - 1):
        h, w = pyramid[-1].shape[2:]
        smaller = (max(1, round(h / octave_scale)), max(1, round(w / octave_scale)))
        pyramid.append(_resize(pyramid[-1], smaller))
    cli.check_side(net, *pyramid[-1].shape[2:], layer,   # the smallest octave must pass the layers
                   f"{octaves} octaves (--octaves) shrink the image that far: use fewer or a "
                   "larger image (--size)")
    lo, hi = pixel_range(net)
    step = lr / (255.0 * float(np.mean(net.meta["std"])))     # 0-255 pixel units -> normalised
    objective = smoothed(dream_objective(net, layer), smooth)
    detail = xp.zeros_like(pyramid[-1])
    for k, octave in enumerate(reversed(pyramid)):
        detail = _resize(detail, octave.shape[2:])
        img, _, _ = optimize(objective, octave + detail, steps=steps, lr=step, method="mean",
                             transforms=[clamp(lo, hi)], jitter=min(jitter, octave.shape[2] // 4),
                             seed=seed + k)
        detail = img - octave
        if log:
            log(f"octave {k + 1}/{octaves} ({octave.shape[2]}x{octave.shape[3]}) done")
    return backend.to_numpy(base + detail)


def _parser():
    p = cli.parser("DeepDream: amplify a layer's activations.", target=False, layer="dream_layer",
                   layers=True)
    p.add_argument("--octaves", type=cli.count, default=OCTAVES,
                   help="image scales, each 1.4x the last (default: %(default)s)")
    p.add_argument("--steps", type=cli.count, nargs="+", default=[STEPS],
                   help="steps per octave: one for every layer, or one per --layer "
                        "(default: %(default)s)")
    cli.add_size_option(p)
    return p


def _panels(pictures, labels):
    """The photo and its dreams, captioned, in one row, or two columns for more than three."""
    scale = render.display_scale(pictures[0])
    panels = [render.caption(render.upscale(pic, scale), label)
              for pic, label in zip(pictures, labels)]
    columns = 2 if len(panels) > 3 else len(panels)
    return render.vstack([render.hstack(panels[i:i + columns])
                          for i in range(0, len(panels), columns)])


def main(argv=None):
    from tinycnn.io.images import deprocess
    p = _parser()
    args = cli.parse_args(p, argv, __doc__)
    if len(args.steps) not in (1, len(args.layer)):
        p.error(f"argument --steps: give one, or one per --layer ({len(args.layer)})")
    steps = args.steps * len(args.layer) if len(args.steps) == 1 else args.steps
    net = cli.load_net(args)
    for layer in args.layer:
        cli.check_channel(net, layer)
    if args.size:      # refused in one line before the photo is read if it cannot fit
        specs = cli.check_uncropped(net, args.image, args.size)[:1]
        photo = cli.image_shapes(specs)
        memory.check_fits("--size", args.size, _memory.deepdream_need(net, photo, args.layer))
    if args.size:
        first = cli.expand_folders(args.image)[:1] if args.image else None
        x = cli.load_uncropped(net, first, args.size)[0]
    else:
        x, _ = cli.load_inputs(net, args.image)
    mean, std = net.meta["mean"], net.meta["std"]
    pictures, labels = [deprocess(backend.to_numpy(x)[0], mean=mean, std=std)], ["photo"]
    for layer, n in zip(args.layer, steps):
        dreamt = deepdream(net, x[:1], layer, octaves=args.octaves, steps=n, seed=args.seed,
                           log=lambda s, layer=layer: print(f"{layer}: {s}", end="\r", flush=True))
        pictures.append(deprocess(dreamt[0], mean=mean, std=std))
        labels.append(f"{layer}, {n} steps" if len(set(steps)) > 1 else layer)
    print()
    size = f"{x.shape[2]}x{x.shape[3]}"
    per_octave = f"{steps[0]} steps" if len(set(steps)) == 1 else "the steps below"
    text = f"DeepDream on {args.model} at {size}: {args.octaves} octaves x {per_octave}"
    image = render.caption(_panels(pictures, labels), text)
    print(f"wrote {render.save(image, cli.output_path(args, 'deepdream'))}")


if __name__ == "__main__":
    cli.run(main)
