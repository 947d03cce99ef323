"""Beyond the lecture: Grad-CAM, guided Grad-CAM, SmoothGrad, integrated gradients.

Grad-CAM (Selvaraju et al. 2017): weight each channel k of a late conv layer A by
the spatial mean of the class score's gradient, sum, keep the positive part:

    alpha_k = mean_ij dS_c / dA^k_ij,     L = ReLU(sum_k alpha_k A^k)      (H', W')

Guided Grad-CAM multiplies guided backprop (vis.guided_backprop) by L upsampled to
the image: sharp edges, but only where the class is.

SmoothGrad (Smilkov et al. 2017): average the gradient over n noisy copies,
x + N(0, sigma^2), sigma = 15 % of the input's range (the paper's recommended level). Each
copy is also shifted by a few pixels in turn (``shifted_gradient``), so that the grid the
strides of the first layers lay over every gradient (vis/saliency.py) averages out too.

Integrated gradients (Sundararajan et al. 2017): integrate the gradient along the
straight path from a baseline x' (black image) to x,

    IG(x) = (x - x') * integral_0^1 dS_c/dx (x' + a (x - x')) da,

approximated by the midpoint rule with ``steps`` points. Completeness: the
attributions sum to S_c(x) - S_c(x'); ``integrated_gradients`` returns the gap so
callers can check it (it shrinks as steps grow).

    python -m vis.attribution --model squeezenet --image chelsea.png
    python -m vis.attribution --image rocket.jpg coffee.png --target 657 predicted
                                  (make attribution: class 657, missile, for the rocket)
"""
import itertools

import numpy as np
from PIL import Image

from tinycnn import backend
from vis import cli, render
from vis.objectives import grid_shifts, noisy_mean, score_gradient, select, shifted_gradient


def grad_cam(net, x, target, layer):
    """(N, H', W') Grad-CAM maps of class ``target`` (one per image) at conv ``layer``."""
    xp = backend.get_array_module(x)
    scores, cache = net.forward(x, keep=[layer])
    grad, _ = net.backward(select(scores, target), cache, stop=layer,
                           param_grads=False)                         # dS/dA: (N, K, H', W')
    A = cache.activations[layer]
    if A.ndim != 4:
        raise ValueError(f"Grad-CAM needs a layer with spatial positions; {layer!r} outputs "
                         f"{A.shape}: pick a conv layer")
    alpha = grad.mean(axis=(2, 3), keepdims=True)                       # (N, K, 1, 1)
    return backend.to_numpy(xp.maximum((alpha * A).sum(axis=1), 0))


def upsample(maps, size):
    """(N, h, w) maps -> (N, size, size), or (N, H, W) for size = (H, W); bilinear."""
    height, width = (size, size) if np.ndim(size) == 0 else size
    return np.stack([np.asarray(Image.fromarray(m.astype(np.float32))
                                .resize((width, height), Image.BILINEAR)) for m in maps])


def guided_grad_cam(net, x, target, layer):
    """(N, C, H, W): guided backprop of the class score times the upsampled Grad-CAM map."""
    cam = upsample(grad_cam(net, x, target, layer), x.shape[-1])
    guided = backend.to_numpy(score_gradient(net, x, target, rule="guided"))
    return guided * cam[:, None]


def smooth_grad(net, x, target, *, n=50, noise=0.15, grid=1, seed=0, log=None):
    """(N, C, H, W) mean gradient over n noisy copies; noise is sigma / (max - min) of x. The
    k-th copy is shifted by the k-th of the grid^2 shifts by 0 to grid - 1 pixels, in turn
    (grid=1: none, the paper's SmoothGrad)."""
    target = backend.get_array_module(x).asarray(target)  # moved once, not on every sample
    shifts = itertools.cycle(grid_shifts(grid))
    def gradient(noisy):
        return shifted_gradient(net, noisy, target, next(shifts), grid)
    return backend.to_numpy(noisy_mean(gradient, x, n=n, noise=noise, seed=seed, log=log))


def integrated_gradients(net, x, target, *, baseline=None, steps=64, log=None):
    """(attributions (N, C, H, W), gap (N,)): IG and S(x) - S(x') - sum(IG), the completeness gap.

    baseline: default the all-black image (in the model's normalised coordinates, if
    ``net.meta`` gives a mean and std), else zeros. log: called with "step k/steps" after each.
    """
    xp = backend.get_array_module(x)
    if baseline is None:
        mean, std = net.meta.get("mean"), net.meta.get("std")
        black = -np.asarray(mean) / np.asarray(std) if mean is not None else np.zeros(x.shape[1])
        baseline = xp.asarray(np.broadcast_to(black.reshape(1, -1, 1, 1), x.shape).astype(x.dtype))
    total, target = xp.zeros_like(x), xp.asarray(target)
    for k, a in enumerate((np.arange(steps) + 0.5) / steps):     # midpoint rule on [0, 1]
        a = float(a)    # a Python float keeps float32 work in float32 (NumPy's float64 promotes)
        total += score_gradient(net, baseline + a * (x - baseline), target)
        if log:
            log(f"step {k + 1}/{steps}")
    ig = (x - baseline) * total / steps
    rows, cols = xp.arange(len(x)), target
    gap = net(x)[rows, cols] - net(baseline)[rows, cols] - ig.reshape(len(x), -1).sum(axis=1)
    return backend.to_numpy(ig), backend.to_numpy(gap)


def _parser():
    p = cli.parser("Grad-CAM, guided Grad-CAM, SmoothGrad and integrated gradients.",
                   layer="attribution_layer", target="per_image")
    p.add_argument("--steps", type=cli.count, default=64,
                   help="integrated-gradients steps (default: %(default)s)")
    p.add_argument("--samples", type=cli.count, default=32,
                   help="SmoothGrad samples (default: %(default)s)")
    return p


def _row(net, image, target, cam, ggc, sg, ig, gap, *, layer, steps, scale):
    """One image's row of the figure, captioned with integrated gradients' completeness."""
    pictures = [image, render.overlay(image, cam), render.as_image(ggc),
                render.robust_colormap(sg), render.robust_colormap(np.abs(ig).sum(axis=0))]
    total = ig.sum()
    labels = [f"class: {cli.short_name(net, target)}", f"Grad-CAM ({layer})", "guided Grad-CAM",
              "SmoothGrad", "integrated gradients"]
    text = (f"completeness: the integrated gradients sum to {total:.3f}, "
            f"S(x) - S(black) = {total + gap:.3f} ({steps} steps)")
    return render.caption(render.hstack([render.caption(render.upscale(im, scale), label)
                                         for im, label in zip(pictures, labels)]), text)


def main(argv=None):
    p = _parser()
    args = cli.parse_args(p, argv, __doc__)
    net = cli.load_net(args)
    cli.check_channel(net, args.layer)
    side = net.meta["input_size"]     # Grad-CAM's own layer check, before any image is loaded
    grad_cam(net, backend.asarray(np.zeros((1, 3, side, side), np.float32)), 0, args.layer)
    x, rgb = cli.load_inputs(net, args.image)
    target = cli.targets(net, x, cli.one_target_per_image(p, args.target, len(rgb)))
    scale, grid = render.display_scale(rgb[0]), cli.model_default(args.model, "stride_grid")
    rows = []
    for n, image in enumerate(rgb):
        xn, t = x[n:n + 1], target[n:n + 1]
        cam = upsample(grad_cam(net, xn, t, args.layer), image.shape[0])[0]
        ggc = guided_grad_cam(net, xn, t, args.layer)[0]
        def progress(what, label=f"image {n + 1}/{len(rgb)}"):
            return lambda s: print(f"{label}: {what}: {s}", end="\r", flush=True)
        sg = smooth_grad(net, xn, t, n=args.samples, grid=grid, seed=args.seed,
                         log=progress("SmoothGrad"))
        ig, gap = integrated_gradients(net, xn, t, steps=args.steps,
                                       log=progress("integrated gradients"))
        print()
        rows.append(_row(net, image, t[0], cam, ggc, np.abs(sg[0]).max(axis=0), ig[0], gap[0],
                         layer=args.layer, steps=args.steps, scale=scale))
    print(f"wrote {render.save(render.vstack(rows), cli.output_path(args, 'attribution'))}")


if __name__ == "__main__":
    cli.run(main)
