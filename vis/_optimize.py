"""One small driver for every technique that optimises an image.

An objective is a function ``x -> (loss, dloss/dx)`` to be *minimised* (ascent
techniques return the negative of what they maximise). Between steps, transforms
reshape the image: jitter (a random roll that is undone after the step, so no
position is favoured), Gaussian blur, clamping to the valid pixel range. Steps:

    "mean"        x <- x - lr * g / mean|g|              (DeepDream)
    "adam"        Kingma & Ba 2015 on the image (tinycnn.optim.adam_step)
    "sgd"         x <- x - lr * g                        (class visualisation)
    "lbfgs"       scipy.optimize's L-BFGS-B              (style transfer, inversion)

Progress is printed every ``log_every`` steps; ``snapshot_every`` keeps copies of
the image so a figure can show the optimisation unfold.

On a GPU everything but L-BFGS stays on the device: the image, the gradient, the
blur (cupyx.scipy.ndimage) and each step's loss, which is read back only on log
steps and once at the end, so the host never waits for the GPU mid-run. L-BFGS is
SciPy's and works on host vectors: each evaluation copies the image to the device
and the loss and gradient back (one synchronisation per evaluation, by design).
"""
import numpy as np
from scipy import optimize as sciopt

from tinycnn import backend
from tinycnn.io.images import NOT_FINITE
from tinycnn.optim import adam_step


# CS231n's style-transfer schedule (assignment 3), used by every Adam image synthesis
# here (style transfer, feature inversion): 200 steps at learning rate 3.0, 0.1 from step 180
SYNTHESIS_STEPS, SYNTHESIS_LR, SYNTHESIS_DECAYED_LR, SYNTHESIS_DECAY_AT = 200, 3.0, 0.1, 180


def synthesis_lr(step):
    """The learning rate of CS231n's schedule at ``step``."""
    return SYNTHESIS_LR if step < SYNTHESIS_DECAY_AT else SYNTHESIS_DECAYED_LR


def gaussian_blur(x, sigma):
    """Blur each channel of (N, C, H, W) with a Gaussian of std ``sigma`` px, where x lives.

    The blur is a symmetric linear filter (reflect boundary), applied to the image
    between steps, not inside a gradient, so no adjoint is needed here."""
    if sigma <= 0:
        return x
    return backend.ndimage(x).gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="reflect")


def pixel_range(net):
    """(lo, hi), each (1, 3, 1, 1) on the backend: the normalised values of pixels 0 and 1."""
    mean = np.asarray(net.meta["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(net.meta["std"], np.float32).reshape(1, 3, 1, 1)
    return backend.asarray(-mean / std), backend.asarray((1 - mean) / std)


def clamp(lo, hi):
    """A transform that keeps every pixel within [lo, hi] (arrays broadcastable to x)."""
    def transform(x, step):
        xp = backend.get_array_module(x)
        return xp.minimum(xp.maximum(x, lo), hi)
    return transform


def uniform_image(shape, lo, hi, seed):
    """Uniform noise between lo and hi: the usual starting point of image synthesis."""
    rng = np.random.default_rng(seed)
    return lo + backend.asarray(rng.random(shape).astype(np.float32)) * (hi - lo)


def jittered(objective, max_shift, rng):
    """The objective seen through a random roll of up to ``max_shift`` px (Mordvintsev et al. 2015)."""
    def wrapped(x):
        xp = backend.get_array_module(x)
        dy, dx = (int(v) for v in rng.integers(-max_shift, max_shift + 1, size=2))
        loss, grad = objective(xp.roll(x, (dy, dx), axis=(2, 3)))
        return loss, xp.roll(grad, (-dy, -dx), axis=(2, 3))
    return wrapped if max_shift else objective


def optimize(objective, x0, *, steps, lr=None, method="adam", transforms=(), jitter=0, seed=0,
             snapshot_every=None, log=None, log_every=10, betas=(0.9, 0.999), bounds=None):
    """Minimise ``objective`` from ``x0``; returns (x, snapshots, losses).

    transforms: functions (x, step) -> x applied after each step (blur, clamp, ...).
    lr: a number or a function step -> number (schedules); unused by L-BFGS.
    bounds: (lo, hi) arrays broadcastable to x, box constraints for L-BFGS-B.
    """
    rng = np.random.default_rng(seed)
    f = jittered(objective, jitter, rng)
    x = x0.copy()
    snapshots, losses = [], []
    if method == "lbfgs":
        if jitter or transforms:
            raise ValueError("L-BFGS needs a fixed objective: it takes no jitter and no transforms "
                             "between steps (use bounds= to keep pixels in range), or choose "
                             "method='adam'")
        return _lbfgs(objective, x, steps, log, log_every, bounds, snapshot_every)
    xp = backend.get_array_module(x)
    m = v = None
    for step in range(steps):
        try:
            loss, g = f(x)
        except ValueError:    # the network refuses a non-finite input: say why it is not finite
            if step and not bool(xp.isfinite(x).all()):
                raise ValueError(f"after step {step}: {NOT_FINITE}") from None
            raise
        rate = lr(step) if callable(lr) else lr
        if method == "mean":
            x = x - rate * g / (abs(g).mean() + 1e-12)
        elif method == "sgd":
            x = x - rate * g
        elif method == "adam":
            if m is None:                    # the moments, zero at first, shaped like the gradient
                m, v = xp.zeros_like(g), xp.zeros_like(g)
            x = x - adam_step(g, m, v, step + 1, rate, betas=betas)
        else:
            raise ValueError(f"unknown method {method!r}; choose mean, sgd, adam or "
                             "lbfgs")
        for t in transforms:
            x = t(x, step)
        losses.append(loss)                  # stays on the device until the end
        if snapshot_every and (step + 1) % snapshot_every == 0:
            snapshots.append(backend.to_numpy(x).copy())
        if log and (step % log_every == 0 or step == steps - 1):
            log(f"step {step + 1}/{steps}: loss {float(loss):.4g}")
    return x, snapshots, backend.to_floats(losses)


def _lbfgs(objective, x, steps, log, log_every, bounds, snapshot_every=None):
    shape, dtype = x.shape, x.dtype
    box = None
    if bounds is not None:
        lo, hi = (np.broadcast_to(backend.to_numpy(b), shape).ravel() for b in bounds)
        box = list(zip(lo.astype(np.float64), hi.astype(np.float64)))
    losses, count = [], [0]

    def fun(flat):
        loss, g = objective(backend.asarray(flat.reshape(shape).astype(dtype)))   # host -> device
        losses.append(float(loss))                                             # device -> host: the loss
        count[0] += 1
        if log and count[0] % log_every == 0:
            log(f"evaluation {count[0]}: loss {losses[-1]:.4g}")
        return losses[-1], backend.to_numpy(g).astype(np.float64).ravel()      # and the gradient
    snapshots, iterations = [], [0]

    def snapshot(flat):
        iterations[0] += 1
        if snapshot_every and iterations[0] % snapshot_every == 0:
            snapshots.append(flat.reshape(shape).astype(dtype))
    result = sciopt.minimize(fun, backend.to_numpy(x).astype(np.float64).ravel(), jac=True,
                             method="L-BFGS-B", bounds=box, callback=snapshot,
                             options={"maxiter": steps, "ftol": 0.0, "gtol": 0.0})  # run all the steps asked for
    return backend.asarray(result.x.reshape(shape).astype(dtype)), snapshots, losses
