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
raises max_error by 10% (Efros's pseudo-code). The window is the method's one free
parameter, chosen per texture: about the size of its largest regular feature.

What comes out is a mosaic of pieces, each copied verbatim from one place of the source
(``copied_pieces``; the figure colours them). Around the seed every filled pixel sits where
its source neighbourhood puts it, so one window matches exactly, d = 0, and (1 + epsilon) * 0
admits no other: the seed grows as a copy of the source until its window reaches the source's
edge (the largest piece: about (H - window + 1) x (W - window + 1) pixels at most). Where pieces
meet, no window matches exactly, the near-best are many, and the pieces are small. The paper
names two failures: the search slips into a part of the source that matches only itself and
grows "garbage" (on the whole Starry Night, the cypress's dark strokes, which then fill much
of the output), or it sticks to one place and copies it verbatim.

Which algorithm: the paper's own, pixel by pixel, with no speed-up. Expanding the
square, ||T - S||^2 = ||S||^2 - 2 T.S + ||T||^2, turns d against all N source windows
into two matrix-vector products with matrices built once (``window_distances``), so a
texture takes seconds, not hours (the figure's captions give each run's time). Wei &
Levoy (2000) would be faster still (a causal, raster-order window and tree-structured
vector quantisation), and Efros & Freeman's image quilting (2001) copies whole patches,
but both change what is being shown; the lecture shows Efros & Leung.

    python -m vis.texture_nn --texture textures/brick.png textures/grass.png --window 15 11
    python -m vis.texture_nn --texture styles/starry_night.jpg --crop 300,0,440
    make texture_synthesis          (both texture figures: Gram matrices, and this one)

Papers: https://people.eecs.berkeley.edu/~efros/research/NPS/efros-iccv99.pdf
(pseudo-code and parameters: https://people.eecs.berkeley.edu/~efros/research/NPS/alg.html);
Wei & Levoy 2000, https://graphics.stanford.edu/papers/texture-synthesis-sig00/;
Efros & Freeman 2001, https://people.eecs.berkeley.edu/~efros/research/quilting.html
"""
import argparse
import time

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

from tinycnn.engine import memory
from vis import _memory, cli, render

WINDOW = 11               # the method's one free parameter, about the texture's largest regular
                          # feature (Efros & Leung); --window sets it per texture
SIGMA_PER_WINDOW = 6.4    # Efros's pseudo-code: Sigma = WindowSize / 6.4
EPSILON = 0.1             # Efros & Leung sec. 2.1 (ErrThreshold): candidates within (1 + eps)
                          # of the best
MAX_ERROR = 0.3           # Efros's pseudo-code (MaxErrThreshold), raised by 10% after a pass
                          # with no progress
SEED_SIZE = 3             # the output grows from a 3x3 patch cut at random from the source
DISPLAY = 2               # the figure shows every pixel as 2x2: a 64 px source is small on screen
PER_ROW = 2               # textures side by side in the figure
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
    """A size x size texture grown from ``texture`` (H, W, C) uint8 by Efros & Leung's
    non-parametric sampling. Returns out (size, size, C) uint8 and where (size, size, 2) int:
    every output pixel is a copy of a source pixel, out[i, j] = texture[tuple(where[i, j])].

    sigma: of the Gaussian weighting the window (default window / 6.4, Efros's value).
    log: called with a progress line after each pass over the frontier."""
    texture = np.asarray(texture)
    check_sizes(texture.shape, size, window)
    H, W, C = texture.shape
    if C > 1 and (texture == texture[..., :1]).all():   # grey as RGB: the same d, a third the work
        grey, where = synthesize_nn(texture[..., :1], size, window=window, epsilon=epsilon,
                                    sigma=sigma, max_error=max_error, seed=seed, log=log)
        return np.repeat(grey, C, axis=2), where
    rng = np.random.default_rng(seed)
    patches, centres = source_windows(texture.astype(np.float64) / 255, window)
    squares = (patches ** 2).sum(axis=2)                                    # (N, K)
    gauss = gaussian_window(window, sigma or window / SIGMA_PER_WINDOW)
    h = window // 2
    centre_of = np.indices((H - 2 * h, W - 2 * h)).reshape(2, -1).T + h     # (N, 2): q's centre

    # the output is padded by h: border windows reach into never-filled pixels
    grown = np.zeros((size + 2 * h, size + 2 * h, C))
    where = np.zeros(grown.shape[:2] + (2,), int)
    filled = np.zeros(grown.shape[:2], bool)
    inside = np.zeros_like(filled)
    inside[h:h + size, h:h + size] = True
    y, x = rng.integers(H - SEED_SIZE + 1), rng.integers(W - SEED_SIZE + 1)
    c = h + (size - SEED_SIZE) // 2
    seed_box = np.s_[c:c + SEED_SIZE, c:c + SEED_SIZE]
    grown[seed_box] = texture[y:y + SEED_SIZE, x:x + SEED_SIZE] / 255
    where[seed_box] = np.indices((SEED_SIZE, SEED_SIZE)).transpose(1, 2, 0) + (y, x)
    filled[seed_box] = True

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
                grown[py, px], where[py, px] = centres[pick], centre_of[pick]
                filled[py, px] = progress = True
        if not progress:
            threshold *= 1.1
        if log:
            log(f"{filled[inside].sum()}/{size * size} pixels")
    out = np.s_[h:h + size, h:h + size]
    return np.rint(grown[out] * 255).astype(np.uint8), where[out]


def copied_pieces(where):
    """(size, size) int: which piece of the output each pixel belongs to, a piece being a
    4-connected set of pixels copied verbatim from one place of the source (the same offset
    where[i, j] - (i, j) to their source pixel). Pieces are the connected components of the
    graph that joins each pixel to its 4-neighbours with its offset."""
    H, W = where.shape[:2]
    offset = where - np.indices((H, W)).transpose(1, 2, 0)                  # (H, W, 2)
    ids = np.arange(H * W).reshape(H, W)
    right = (offset[:, 1:] == offset[:, :-1]).all(axis=-1)                  # (H, W - 1)
    down = (offset[1:] == offset[:-1]).all(axis=-1)                         # (H - 1, W)
    a = np.concatenate([ids[:, :-1][right], ids[:-1][down]])
    b = np.concatenate([ids[:, 1:][right], ids[1:][down]])
    graph = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(H * W, H * W))
    return csgraph.connected_components(graph, directed=False)[1].reshape(H, W)


def largest_copied_piece(where):
    """Pixels in the largest piece of the output copied verbatim (copied_pieces). Efros & Leung's
    output is a mosaic of such pieces; one piece as large as the output is a copy, not a new
    texture."""
    return int(np.bincount(copied_pieces(where).ravel()).max())


def crop_box(text):
    """--crop's type: "X,Y,SIDE", the SIDE x SIDE square whose top left corner is pixel (X, Y) of
    the texture file; "centre" for its centre square."""
    if text == "centre":
        return None
    try:
        x, y, side = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not X,Y,SIDE (three integers) "
                                         "or centre") from None
    if min(x, y) < 0 or side < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: X and Y must be at least 0, SIDE at least 1")
    return x, y, side


def load_texture(spec, size, box=None):
    """A square of a texture file (``box`` = (x, y, side), or the centre square), resized to
    size x size: uint8 (size, size, 3)."""
    from tinycnn.io.images import resize_center_crop
    image = cli.read_image(spec)
    if box is not None:
        x, y, side = box
        height, width = image.shape[:2]
        if x + side > width or y + side > height:
            raise ValueError(f"{spec}: --crop {x},{y},{side} reaches outside its "
                             f"{width}x{height} pixels")
        image = image[y:y + side, x:x + side]
    return resize_center_crop(image, size, name=spec)


def pieces_picture(pieces, seed=0):
    """(size, size, 3) uint8: every piece of copied_pieces in a random colour of its own."""
    colours = np.random.default_rng(seed).integers(40, 256, (pieces.max() + 1, 3), np.uint8)
    return colours[pieces]


def source_label(spec, box, size):
    """What the figure says of a source: its file, the square taken, its size (short lines: the
    column is narrow)."""
    square = "its centre square" if box is None else f"{box[2]} px square at ({box[0]}, {box[1]})"
    return f"{spec.split('/')[-1]}\n{square},\nresized to {size} px"


def panel(label, texture, out, where, window, seconds):
    """The source beside what grew from it, both enlarged alike (nearest neighbour) so that the
    output's larger size shows, and its pixels; under the source, the output's copied pieces at
    one screen pixel a pixel. The captions give the sizes, the time and the largest piece."""
    pieces = copied_pieces(where)
    largest = np.bincount(pieces.ravel()).max() / pieces.size
    grown = (f"Efros & Leung, {window}x{window} window: {len(out)} px in {seconds:.0f} s\n"
             f"largest piece copied verbatim: {largest:.0%}")
    mosaic = f"the output's {pieces.max() + 1} pieces,\neach copied verbatim"
    left = render.vstack([render.caption(render.upscale(texture, DISPLAY), label),
                          render.caption(pieces_picture(pieces), mosaic)], pad=0)
    return render.hstack([left, render.caption(render.upscale(out, DISPLAY), grown)])


def _parser():
    p = cli.ArgumentParser(description="Efros & Leung texture synthesis: a larger texture grown "
                                       "pixel by pixel from a small source.",
                           module="vis.texture_nn")
    p.add_argument("--texture", nargs="+", default=["textures/brick.png", "textures/grass.png"],
                   help="texture images, relative to images/ (or $TINYCNN_IMAGES_DIR), or paths")
    p.add_argument("--crop", nargs="+", type=crop_box, default=None, metavar="X,Y,SIDE",
                   help="one square per texture, in the file's pixels, or centre "
                        "(default: the centre square of each)")
    p.add_argument("--size", type=cli.count, default=64,
                   help="side in pixels of the source, the crop resized")
    p.add_argument("--scale", type=cli.count, default=3,
                   help="the output's side in multiples of --size")
    p.add_argument("--window", nargs="+", type=cli.count, default=[WINDOW],
                   help="side of the compared window, odd: one for all textures, or one each "
                        "(Efros & Leung choose it per texture, about its largest regular feature)")
    p.add_argument("--epsilon", type=cli.non_negative, default=EPSILON,
                   help="candidates within (1 + epsilon) of the best match (Efros & Leung: 0.1)")
    p.add_argument("--out", default="figures/texture_nn.png", help="PNG to write")
    p.add_argument("--seed", type=cli.index, default=0, help="random seed (default: %(default)s)")
    return p


def one_each(p, values, option, textures):
    """An option's values, one per texture: as given, or one value repeated (p.error if
    neither)."""
    if len(values) == 1:
        return values * len(textures)
    if len(values) != len(textures):
        p.error(f"{option} gives {len(values)} values for {len(textures)} textures")
    return values


def main(argv=None):
    p = _parser()
    args = cli.parse_args(p, argv, __doc__)
    boxes = one_each(p, args.crop or [None], "--crop", args.texture)
    windows = one_each(p, args.window, "--window", args.texture)
    for window in sorted(set(windows)):
        check_sizes((args.size, args.size), args.size * args.scale, window)
        memory.check_fits("--size", args.size, _memory.texture_nn_need(window, args.scale),
                          lowest=window)
    textures = [load_texture(t, args.size, b) for t, b in zip(args.texture, boxes)]  # all read
    panels = []
    for name, box, texture, window in zip(args.texture, boxes, textures, windows):
        start = time.perf_counter()
        out, where = synthesize_nn(texture, args.size * args.scale, window=window,
                                   epsilon=args.epsilon, seed=args.seed,
                                   log=lambda s, name=name: print(f"{name}: {s}", end="\r"))
        panels.append(panel(source_label(name, box, args.size), texture, out, where, window,
                            time.perf_counter() - start))
    rows = [render.hstack(panels[i:i + PER_ROW]) for i in range(0, len(panels), PER_ROW)]
    print(f"\nwrote {render.save(render.vstack(rows), args.out)}")


if __name__ == "__main__":
    cli.run(main)
