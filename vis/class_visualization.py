"""Class and neuron visualisation: the image a class score (or a neuron) likes best.

Simonyan, Vedaldi & Zisserman (2014), sec. 2: start from a blank image and climb
the *unnormalised* class score with an L2 penalty,

    x* = argmax_x  S_c(x) - lambda ||x||_2^2 .

Yosinski et al. (2015), "Understanding Neural Networks Through Deep
Visualization", sec. 3, replace the lone L2 term by four regularisers applied
between steps: L2 decay x <- (1 - decay) x, a Gaussian blur every few steps, zeroing
pixels whose norm is below a percentile, and zeroing pixels whose contribution
|x * grad| is below a percentile. CS231n's exercise adds jitter (a random roll
undone after the step), which keeps the picture from locking onto one position.

Where to start: the lecture notes and Simonyan et al. start from the zero image
(zero in the normalised input, i.e. the data set's mean image; Simonyan et al. add
the mean back to the result), CS231n's exercise from standard normal noise
(``init="zeros"`` or ``"randn"``, the default). The zero start can be stuck: SqueezeNet's
class scores pass a ReLU (relu10) before their average, and where a class's conv10 map
is negative everywhere on the mean image (flamingo's is) the score is 0 and its
gradient exactly 0, so the image never moves; noise starts it where some unit is alive.

Olah, Mordvintsev & Schubert (2017), "Feature Visualization" (Distill), take the next step
of that story: change what is optimised, not only the penalty. Pixels are a poor
coordinate system for gradient ascent: the gradient is dominated by high frequencies,
which is where the noise comes from. ``regularizer="fourier"`` optimises instead the
amplitudes (a, b) of a Fourier basis, scaled so that every frequency f starts with a
weight 1/f (natural images' spectrum), in decorrelated colours:

    t_c(y, x) = sum_(ky, kx) w(ky, kx) [a_c cos(2 pi (ky y + kx x) / S) + b_c sin(...)]
    w = 1 / (4 S max(f, 1/S)),      f = |(ky, kx)| / S as signed frequencies
    image = sigmoid(M t)            M: the square root of ImageNet's colour covariance

with Adam on (a, b) and a random roll of the image each step (their "transformation
robustness"). The gradient reaches (a, b) through each step by hand, in reverse:
sigmoid' = s (1 - s), M^T, then the basis transposed (``fourier_image_backward``).

A neuron is visualised the same way, with S_c replaced by the activation of a
channel (averaged over positions) or of a single (channel, y, x) unit.

    python -m vis.class_visualization --model squeezenet --target tarantula
    make class_visualization         (its three figures; their commands are in vis/gallery.py)
"""
import numpy as np

from tinycnn import backend
from tinycnn.io.images import class_index, deprocess
from vis import cli, render
from vis._optimize import clamp, gaussian_blur, optimize, pixel_range
from vis.objectives import score_objective

# The four hyper-parameter sets of Yosinski et al. 2015, Table 1: L2 decay, blur sigma,
# blur every, pixel-norm clip percentile, contribution clip percentile, iterations,
# learning rate. Sets 1 and 4 grow their step size over the run for their Caffe model
# (to 100 and 1e8 on 0-255 pixels); here every set uses the step of CS231n's recipe.
YOSINSKI = {
    "yosinski1": dict(decay=0.0, blur_sigma=0.5, blur_every=4, norm_pct=50, contrib_pct=0,
                      steps=500),
    "yosinski2": dict(decay=0.3, blur_sigma=0.0, blur_every=0, norm_pct=20, contrib_pct=0,
                      steps=750),
    "yosinski3": dict(decay=1e-4, blur_sigma=1.0, blur_every=4, norm_pct=0, contrib_pct=0,
                      steps=1000),
    "yosinski4": dict(decay=0.0, blur_sigma=0.5, blur_every=4, norm_pct=0, contrib_pct=90,
                      steps=1000),
}
# CS231n 2017+ exercise (NetworkVisualization): L2 1e-3, lr 25, 100 iterations,
# blur sigma 0.5 every 10, jitter 16 px, clamp to the valid pixel range
CS231N = dict(l2=1e-3, lr=25.0, steps=100, blur_sigma=0.5, blur_every=10, jitter=16)
# Olah et al. 2017 through Lucid, their library: Adam at 0.05 from amplitudes of sd 0.01, and
# the colour matrix (the square root of ImageNet's colour covariance, by SVD), scaled so that
# its largest column has norm 1
FOURIER = dict(lr=0.05, steps=256, init_sd=0.01, jitter=8)
COLOR_CORRELATION = np.array([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLORS = COLOR_CORRELATION / np.linalg.norm(COLOR_CORRELATION, axis=0).max()
REGULARIZERS = ("l2", "cs231n", *YOSINSKI, "fourier")
INITS = ("randn", "zeros")      # CS231n's exercise; the lecture notes and Simonyan et al. sec. 2


def start_image(init, shape, seed=0):
    """The first image (on the backend), normalised: "randn" CS231n's standard normal noise
    from ``seed``, "zeros" the zero image, which is zero in the normalised input space (the data
    set's mean image once deprocessed), not black."""
    if init == "randn":
        noise = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
        return backend.asarray(noise)
    if init == "zeros":
        return backend.asarray(np.zeros(shape, np.float32))
    raise ValueError(f"unknown init {init!r}; choose {' or '.join(INITS)}")


def default_steps(regularizer):
    """The regulariser's own number of steps: CS231n's 100 for "l2" and "cs231n", Yosinski et
    al.'s Table 1 for theirs, 256 for "fourier"."""
    if regularizer == "fourier":
        return FOURIER["steps"]
    return YOSINSKI[regularizer]["steps"] if regularizer in YOSINSKI else CS231N["steps"]


# -- the Fourier, decorrelated-colour parameterisation (Olah et al. 2017) --------------------
def fourier_basis(size, dtype=np.float32):
    """(cos_y, sin_y, cos_x, sin_x, w) for size x size images, on the backend:
    cos_y[y, ky] = cos(2 pi ky y / S) for ky < S, cos_x[x, kx] for kx <= S / 2 (the other
    half of kx repeats these), and the weights w (S, S // 2 + 1) = 1 / (4 S max(f, 1/S))."""
    pixel, ky, kx = np.arange(size)[:, None], np.arange(size), np.arange(size // 2 + 1)
    angle_y, angle_x = 2 * np.pi * pixel * ky / size, 2 * np.pi * pixel * kx / size
    f = np.hypot(np.fft.fftfreq(size)[:, None], np.fft.rfftfreq(size)[None, :])
    w = 1 / (4 * size * np.maximum(f, 1 / size))
    return tuple(backend.asarray(a.astype(dtype))
                 for a in (np.cos(angle_y), np.sin(angle_y), np.cos(angle_x), np.sin(angle_x), w))


def fourier_image(p, basis, mean, std):
    """Amplitudes p (2, 3, S, S // 2 + 1), (a, b) -> the normalised image (1, 3, S, S), and
    the cache for the backward pass. mean, std: the network's, (1, 3, 1, 1) arrays."""
    cos_y, sin_y, cos_x, sin_x, w = basis
    A, B = w * p[0], w * p[1]                                       # (3, S, S/2 + 1) each
    # sum A cos(ty + tx) + B sin(ty + tx), by cos(u + v) = cos u cos v - sin u sin v, ...
    t = (cos_y @ A @ cos_x.T - sin_y @ A @ sin_x.T + sin_y @ B @ cos_x.T
         + cos_y @ B @ sin_x.T)                                    # (3, S, S)
    colors = backend.asarray(COLORS.astype(p.dtype))
    rgb = (colors @ t.reshape(3, -1)).reshape(1, *t.shape)         # M t at every pixel
    s = 1 / (1 + backend.get_array_module(p).exp(-rgb))            # sigmoid: pixels in (0, 1)
    return (s - mean) / std, (s, std, colors, basis)


def fourier_image_backward(dx, cache):
    """dL/dx (1, 3, S, S) of the normalised image -> dL/dp (2, 3, S, S // 2 + 1)."""
    s, std, colors, (cos_y, sin_y, cos_x, sin_x, w) = cache
    d_rgb = dx[0] / std[0] * s[0] * (1 - s[0])         # through (s - mean) / std, the sigmoid
    dt = (colors.T @ d_rgb.reshape(3, -1)).reshape(d_rgb.shape)
    dA = cos_y.T @ dt @ cos_x - sin_y.T @ dt @ sin_x
    dB = sin_y.T @ dt @ cos_x + cos_y.T @ dt @ sin_x
    return backend.get_array_module(dx).stack([w * dA, w * dB])


def fourier_objective(objective, basis, mean, std, *, jitter=0, seed=0):
    """p -> (loss, dloss/dp): ``objective`` of the image the amplitudes p describe, rolled by up
    to ``jitter`` pixels each call (a random roll of a periodic image: no edge to hide)."""
    rng = np.random.default_rng(seed)
    xp = backend.get_array_module(mean)

    def f(p):
        x, cache = fourier_image(p, basis, mean, std)
        dy, dx = rng.integers(-jitter, jitter + 1, 2) if jitter else (0, 0)
        loss, g = objective(xp.roll(x, (int(dy), int(dx)), axis=(2, 3)))
        return loss, fourier_image_backward(xp.roll(g, (-int(dy), -int(dx)), axis=(2, 3)), cache)
    return f


def fourier_visualization(net, target, *, size, steps, lr, seed, snapshot_every=None, log=None):
    """Olah et al.'s visualisation of ``target``: Adam on the amplitudes from small noise;
    the normalised image (1, 3, S, S) and the snapshots."""
    basis = fourier_basis(size)
    mean, std = (backend.asarray(np.asarray(net.meta[k], np.float32).reshape(1, 3, 1, 1))
                 for k in ("mean", "std"))
    p0 = np.random.default_rng(seed).normal(0, FOURIER["init_sd"], (2, 3, size, size // 2 + 1))
    jitter = max(1, round(FOURIER["jitter"] * size / 224))
    f = fourier_objective(score_objective(net, target), basis, mean, std, jitter=jitter,
                          seed=seed)
    p, snapshots, _ = optimize(f, backend.asarray(p0.astype(np.float32)), steps=steps, lr=lr,
                               method="adam", snapshot_every=snapshot_every, log=log)
    return fourier_image(p, basis, mean, std)[0], snapshots


def class_visualization(net, target, *, regularizer="cs231n", init="randn", steps=None,
                        lr=None, seed=0, x0=None, snapshot_every=None, log=None):
    """The image (1, 3, S, S), normalised, that maximises ``target``; and the snapshots.

    regularizer: "l2" (Simonyan et al.), "cs231n" (L2 + jitter + blur + clamp) or
    "yosinski1".."yosinski4" (Yosinski et al.'s Table 1 sets, with jitter and clamp).
    init: the start, "randn" (CS231n) or "zeros" (the lecture, Simonyan et al.): see start_image.
    x0: the starting image (1, 3, S, S) on the backend, instead of ``init``.
    lr: the step size (default: CS231n's 25, or Lucid's 0.05 for "fourier").
    """
    size = x0.shape[-1] if x0 is not None else net.meta["input_size"]
    if regularizer == "fourier":
        x, snapshots = fourier_visualization(net, target, size=size, seed=seed,
                                             lr=lr or FOURIER["lr"],
                                             steps=steps or default_steps(regularizer),
                                             snapshot_every=snapshot_every, log=log)
        return backend.to_numpy(x), snapshots
    lr = lr or CS231N["lr"]
    jitter_px = max(1, round(CS231N["jitter"] * size / 224))  # CS231n's 16 px are for 224x224
    lo, hi = pixel_range(net)
    if x0 is None:
        x0 = start_image(init, (1, 3, size, size), seed)

    keep_in_range = clamp(lo, hi)
    if regularizer == "l2":
        objective, jitter = score_objective(net, target, CS231N["l2"]), 0
        transforms = [keep_in_range]
    elif regularizer == "cs231n":
        def blur(x, step):
            if step % CS231N["blur_every"] == 0:
                return gaussian_blur(x, CS231N["blur_sigma"])
            return x
        objective = score_objective(net, target, CS231N["l2"])
        transforms, jitter = [keep_in_range, blur], jitter_px
    elif regularizer in YOSINSKI:
        objective, jitter = score_objective(net, target), jitter_px
        transforms = [keep_in_range] + _yosinski_transforms(objective, **YOSINSKI[regularizer])
    else:
        raise ValueError(f"unknown regularizer {regularizer!r}; choose {', '.join(REGULARIZERS)}")
    x, snapshots, _ = optimize(objective, x0, steps=steps or default_steps(regularizer), lr=lr,
                               method="sgd", transforms=transforms, jitter=jitter, seed=seed,
                               snapshot_every=snapshot_every, log=log)
    return backend.to_numpy(x), snapshots


def _yosinski_transforms(objective, *, decay, blur_sigma, blur_every, norm_pct, contrib_pct,
                         steps):
    """Yosinski et al.'s four regularisers as between-step transforms."""
    def regularize(x, step):
        xp = backend.get_array_module(x)
        if decay:
            x = x * (1 - decay)
        if blur_sigma and blur_every and step % blur_every == 0:
            x = gaussian_blur(x, blur_sigma)
        if norm_pct:
            norm = xp.sqrt((x * x).sum(axis=1, keepdims=True))
            x = x * (norm >= xp.percentile(norm, norm_pct))
        if contrib_pct:
            _, g = objective(x)
            contribution = abs((x * -g).sum(axis=1, keepdims=True))
            x = x * (contribution >= xp.percentile(contribution, contrib_pct))
        return x
    return [regularize]


def targets_of(net, model, *, classes=None, layer=None, channels=()):
    """(targets, labels) to visualise: (layer, channel) pairs of ``layer``'s ``channels``, else
    the class indices of ``classes`` (names or indices; default: the model's MODEL_DEFAULTS
    classes, or every class)."""
    if layer:
        return [(layer, c) for c in channels], [f"{layer}:{c}" for c in channels]
    names = classes or cli.model_default(model, "classes") or list(net.meta["classes"])
    targets = [class_index(t, net.meta["classes"]) for t in names]
    return targets, [cli.short_name(net, t) for t in targets]


def _parser():
    p = cli.parser("Class / neuron visualisation by gradient ascent.", target=False, image=False)
    p.add_argument("--target", nargs="+", default=None,
                   help="classes (index or name); default: flamingo, billiard table, goose, "
                        "tarantula (squeezenet) or all ten classes (cifar10)")
    p.add_argument("--layer", default=None,
                   help="visualise channels of this layer instead of classes")
    p.add_argument("--channels", type=cli.index, nargs="+", default=[0, 1, 2, 3],
                   help="channels of --layer, one image each (default: %(default)s)")
    p.add_argument("--regularizer", nargs="+", default=["cs231n"], choices=REGULARIZERS,
                   metavar="NAME",
                   help="l2, cs231n, yosinski1 .. yosinski4, fourier; several: one row each, "
                        "same classes")
    p.add_argument("--init", nargs="+", default=["randn"], choices=INITS, metavar="INIT",
                   help="start from randn (CS231n) or zeros (the mean image; the lecture, "
                        "Simonyan et al.): one for every row, or one per --regularizer")
    p.add_argument("--steps", type=cli.count, default=None,
                   help="gradient-ascent steps (default: the regulariser's own)")
    p.add_argument("--lr", type=cli.positive, default=None,
                   help="step size (default: CS231n's 25 for squeezenet; 1 for cifar10, chosen "
                        "by looking: vis.cli.MODEL_DEFAULTS; 0.05 for fourier, Lucid's)")
    return p


def _tile(net, x, label):
    """A visualisation (1, 3, S, S), normalised, as a captioned picture."""
    image = deprocess(x[0], mean=net.meta["mean"], std=net.meta["std"])
    return render.caption(render.thumbnail(image, 224 if image.shape[0] > 32 else 128), label)


# what each regulariser does, for a row's caption
DESCRIPTIONS = {
    "l2": "L2 penalty alone (Simonyan et al.)",
    "cs231n": "L2, jitter, blur, clamp (CS231n)",
    **{name: f"Yosinski et al.'s set {name[-1]}" for name in YOSINSKI},
    "fourier": "Fourier amplitudes in decorrelated colours (Olah et al.)",
}


def _row_title(model, regularizer, init, *, steps, several, mixed_inits):
    """A row's caption: the regulariser, with its steps where rows differ, and its start."""
    text = f"{model}, {DESCRIPTIONS[regularizer]}"
    if several:
        text += f" ({steps or default_steps(regularizer)} steps)"
    if mixed_inits:
        text += ", from small noise" if regularizer == "fourier" else \
            {"randn": ", from noise", "zeros": ", from zeros (the mean image)"}[init]
    return text


def main(argv=None):
    p = _parser()
    args = cli.parse_args(p, argv, __doc__)
    if len(args.init) not in (1, len(args.regularizer)):
        p.error(f"argument --init: give one, or one per --regularizer ({len(args.regularizer)})")
    inits = args.init * len(args.regularizer) if len(args.init) == 1 else args.init
    net = cli.load_net(args)
    if args.layer:
        cli.check_channel(net, args.layer, *args.channels)
    # the model's step for pixels; Fourier amplitudes take their own (FOURIER)
    pixel_lr = args.lr or cli.model_default(args.model, "class_lr")
    targets, labels = targets_of(net, args.model, classes=args.target, layer=args.layer,
                                 channels=args.channels)
    rows = []
    for regularizer, init in zip(args.regularizer, inits):
        tiles = []
        for target, label in zip(targets, labels):
            x, _ = class_visualization(net, target, regularizer=regularizer, init=init,
                                       steps=args.steps, seed=args.seed,
                                       lr=args.lr if regularizer == "fourier" else pixel_lr,
                                       log=lambda s, label=label: print(f"{label}: {s}", end="\r"))
            stuck = init == "zeros" and regularizer != "fourier" and not x.any()
            tiles.append(_tile(net, x, label + (": gradient 0, never moved" if stuck else "")))
        title = _row_title(args.model, regularizer, init, steps=args.steps,
                           several=len(args.regularizer) > 1, mixed_inits=len(set(inits)) > 1)
        rows.append(render.caption(render.hstack(tiles), title))
    print()
    out = rows[0] if len(rows) == 1 else render.vstack(rows)
    print(f"wrote {render.save(out, cli.output_path(args, 'class_visualization'))}")


if __name__ == "__main__":
    cli.run(main)
