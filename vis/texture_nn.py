"""Texture synthesis by non-parametric sampling: every new pixel is copied from the
source window that looks most like the new pixel's already-filled neighbourhood.

Efros & Leung (1999), "Texture Synthesis by Non-parametric Sampling", the lecture's
texture method before Gram matrices. The output grows outward from a 3x3 seed cut at
random from the source. Each unfilled pixel p that touches filled ones (those with the
most filled neighbours first) is compared, through its window T_p, with every
window S_q lying wholly inside the source, counting only p's filled pixels (M = 1)
and nearer pixels more (a Gaussian G with sigma = window / 6.4):

    d(p, q) = sum_k G_k M_k ||T_p(k) - S_q(k)||^2 / sum_k G_k M_k

(pixels in [0, 1]; ||.||^2 over the colour channels divided by their number, so that
the thresholds below mean the same for grey and colour textures).

p takes the centre pixel of a window picked at random among the near-best,
d(p, q) <= (1 + epsilon) min_q d(p, q), epsilon = 0.1. If the picked window's distance
is above max_error (0.3) p waits for a later pass, and a pass that fills nothing
raises max_error by 10% (Efros's pseudo-code).

Which algorithm: the paper's own, pixel by pixel, with no speed-up. Expanding the
square, ||T - S||^2 = ||S||^2 - 2 T.S + ||T||^2, turns d against all N source windows
into two matrix-vector products with matrices built once (``window_distances``), so a
texture takes seconds, not hours (the figure's captions give each run's time). Wei &
Levoy (2000) would be faster still (a causal, raster-order window and tree-structured
vector quantisation), and Efros & Freeman's image quilting (2001) copies whole patches,
but both change what is being shown; the lecture shows Efros & Leung.

    python -m vis.texture_nn --texture textures/brick.png textures/grass.png
    make texture_synthesis          (both texture figures: Gram matrices, and this one)

Papers: https://people.eecs.berkeley.edu/~efros/research/NPS/efros-iccv99.pdf
(pseudo-code and parameters: https://people.eecs.berkeley.edu/~efros/research/NPS/alg.html);
Wei & Levoy 2000, https://graphics.stanford.edu/papers/texture-synthesis-sig00/;
Efros & Freeman 2001, https://people.eecs.berkeley.edu/~efros/research/quilting.html
"""
import time

import numpy as np
from scipy import ndimage

from tinycnn.engine import memory
from vis import _memory, cli, render

WINDOW = 11               # the method's one free parameter, about the texture's largest regular
                          # feature (Efros & Leung)
SIGMA_PER_WINDOW = 6.4    # Efros's pseudo-code: Sigma = WindowSize / 6.4
EPSILON = 0.1             # Efros & Leung sec. 2.1 (ErrThreshold): candidates within (1 + eps)
                          # of the best
MAX_ERROR = 0.3           # Efros's pseudo-code (MaxErrThreshold), raised by 10% after a pass
                          # with no progress
SEED_SIZE = 3             # the output grows from a 3x3 patch cut at random from the source
DISPLAY = 2               # the figure shows every pixel as 2x2: a 64 px source is small on screen
ROUND_OFF = 1e-12         # the expanded square is not exactly 0 for an exact match (d is O(1),
                          # its error ~1e-15)


def gaussian_window(window, sigma):
    """(window * window,) weights of a 2-D Gaussian centred on the window, flattened row by row."""
    r = np.arange(window) - window // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma ** 2))
    return g.ravel()


def source_windows(texture, window):
    """Every window x window patch wholly inside ``texture`` (H, W, C) in [0, 1]:
    patches (N, window * window, C) float64 and their centre pixels (N, C)."""
    H, W, C = texture.shape
    views = np.lib.stride_tricks.sliding_window_view(texture, (window, window),
                                                     axis=(0, 1))        # (H', W', C, k, k)
    patches = views.transpose(0, 1, 3, 4, 2).reshape(-1, window * window, C)
    return patches, patches[:, window * window // 2]


def window_distances(patches, squares, template, weight):
    """d(p, q) for every source window q: (N,) float64, a mean over colour channels.

    patches (N, K, C) and squares (N, K) = ||S_q(k)||^2 are fixed; template (K, C) is p's
    window (its unfilled pixels have weight 0); weight (K,) = G * M."""
    N, K, C = patches.shape
    w = weight / weight.sum()
    # sum_k w_k (||S_q(k)||^2 - 2 T(k).S_q(k) + ||T(k)||^2): two matrix-vector products.
    # einsum's own loop, not BLAS (@): a multithreaded gemv this small spends longer waking
    # threads than multiplying (ten times longer on a busy machine: bench/RESULTS.md)
    d = (np.einsum("nk,k->n", squares, w) - 2 * np.einsum("nj,j->n", patches.reshape(N, K * C),
                                                          (w[:, None] * template).ravel())
         + w @ (template ** 2).sum(1))
    return np.maximum(d, 0) / C


def near_best(d, epsilon):
    """Indices of the windows within (1 + epsilon) of the best distance (Efros & Leung's
    candidates)."""
    return np.flatnonzero(d <= d.min() * (1 + epsilon) + ROUND_OFF)


def frontier(filled, inside, rng):
    """(ys, xs) of the unfilled pixels ``inside`` the output that touch a filled one, most filled
    8-neighbours first, ties in random order (Efros's GetUnfilledNeighbors)."""
    neighbours = ndimage.convolve(filled.astype(np.int32), np.ones((3, 3), np.int32),
                                  mode="constant")
    ys, xs = np.nonzero(~filled & inside & (neighbours > 0))
    order = rng.permutation(len(ys))
    order = order[np.argsort(-neighbours[ys[order], xs[order]], kind="stable")]
    return ys[order], xs[order]


def check_sizes(shape, size, window):
    """ValueError in one line unless the window is odd and fits the texture and the seed fits
    the output."""
    if window < 3 or window % 2 == 0:
        raise ValueError(f"the window must be an odd number of pixels, at least 3 (got {window})")
    if min(shape[:2]) < window:
        raise ValueError(f"the texture ({shape[0]}x{shape[1]} px) is smaller than the "
                         f"{window}x{window} window; use a larger texture or a smaller --window")
    if size < SEED_SIZE:
        raise ValueError(f"the output must be at least {SEED_SIZE} px, the seed's size "
                         f"(got {size})")


def synthesize_nn(texture, size, *, window=WINDOW, epsilon=EPSILON, sigma=None,
                  max_error=MAX_ERROR, seed=0, log=None):
    """A size x size uint8 (size, size, C) texture grown from ``texture`` (H, W, C) uint8 by
    Efros & Leung's non-parametric sampling; every output pixel is a copy of a source pixel.

    sigma: of the Gaussian weighting the window (default window / 6.4, Efros's value).
    log: called with a progress line after each pass over the frontier."""
    texture = np.asarray(texture)
    check_sizes(texture.shape, size, window)
    H, W, C = texture.shape
    if C > 1 and (texture == texture[..., :1]).all():   # grey as RGB: the same d, a third the work
        grey = synthesize_nn(texture[..., :1], size, window=window, epsilon=epsilon, sigma=sigma,
                             max_error=max_error, seed=seed, log=log)
        return np.repeat(grey, C, axis=2)
    rng = np.random.default_rng(seed)
    patches, centres = source_windows(texture.astype(np.float64) / 255, window)
    squares = (patches ** 2).sum(axis=2)                                    # (N, K)
    gauss = gaussian_window(window, sigma or window / SIGMA_PER_WINDOW)

    h = window // 2     # the output is padded by h: border windows reach into never-filled pixels
    grown = np.zeros((size + 2 * h, size + 2 * h, C))
    filled = np.zeros(grown.shape[:2], bool)
    inside = np.zeros_like(filled)
    inside[h:h + size, h:h + size] = True
    y, x = rng.integers(H - SEED_SIZE + 1), rng.integers(W - SEED_SIZE + 1)
    c = h + (size - SEED_SIZE) // 2
    grown[c:c + SEED_SIZE, c:c + SEED_SIZE] = texture[y:y + SEED_SIZE, x:x + SEED_SIZE] / 255
    filled[c:c + SEED_SIZE, c:c + SEED_SIZE] = True

    threshold = max_error
    while not filled[inside].all():
        progress = False
        for py, px in zip(*frontier(filled, inside, rng)):
            win = np.s_[py - h:py + h + 1, px - h:px + h + 1]
            d = window_distances(patches, squares, grown[win].reshape(-1, C),
                                 gauss * filled[win].ravel())
            candidates = near_best(d, epsilon)
            pick = candidates[rng.integers(len(candidates))]
            if d[pick] <= threshold:
                grown[py, px] = centres[pick]
                filled[py, px] = progress = True
        if not progress:
            threshold *= 1.1
        if log:
            log(f"{filled[inside].sum()}/{size * size} pixels")
    return np.rint(grown[h:h + size, h:h + size] * 255).astype(np.uint8)


def load_texture(spec, size):
    """A texture file's centre crop, its short side resized to ``size``: uint8 (size, size, 3)."""
    from tinycnn.io.images import load_image, resize_center_crop
    return resize_center_crop(load_image(cli.find_image(spec)), size, name=spec)


def main(argv=None):
    p = cli.ArgumentParser(description="Efros & Leung texture synthesis: a larger texture grown "
                                       "pixel by pixel from a small source.",
                           module="vis.texture_nn")
    p.add_argument("--texture", nargs="+", default=["textures/brick.png", "textures/grass.png"],
                   help="texture images, relative to images/ (or $TINYCNN_IMAGES_DIR), or paths")
    p.add_argument("--size", type=cli.count, default=64, help="side of the source crop in pixels")
    p.add_argument("--scale", type=cli.count, default=2,
                   help="the output's side in multiples of --size")
    p.add_argument("--window", type=cli.count, default=WINDOW,
                   help="side of the compared window, odd")
    p.add_argument("--epsilon", type=cli.non_negative, default=EPSILON,
                   help="candidates within (1 + epsilon) of the best match (Efros & Leung: 0.1)")
    p.add_argument("--out", default="figures/texture_nn.png", help="PNG to write")
    p.add_argument("--seed", type=cli.index, default=0, help="random seed (default: %(default)s)")
    args = cli.parse_args(p, argv, __doc__)
    check_sizes((args.size, args.size), args.size * args.scale, args.window)
    memory.check_fits("--size", args.size, _memory.texture_nn_need(args.window, args.scale),
                      lowest=args.window)
    textures = [load_texture(t, args.size) for t in args.texture]   # all read before the first
    rows = []
    for name, texture in zip(args.texture, textures):
        start = time.perf_counter()
        out = synthesize_nn(texture, args.size * args.scale, window=args.window,
                            epsilon=args.epsilon, seed=args.seed,
                            log=lambda s, name=name: print(f"{name}: {s}", end="\r"))
        seconds = time.perf_counter() - start
        # both enlarged alike (nearest neighbour), so that the output's larger size shows, and
        # its pixels
        source = f"{name.split('/')[-1]}\nsource, {args.size} px"
        grown = f"Efros & Leung\n{out.shape[0]} px in {seconds:.1f} s"
        rows.append(render.hstack([render.caption(render.upscale(texture, DISPLAY), source),
                                   render.caption(render.upscale(out, DISPLAY), grown)]))
    print()
    print(f"wrote {render.save(render.vstack(rows), args.out)}")


if __name__ == "__main__":
    cli.run(main)
