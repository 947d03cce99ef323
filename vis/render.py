"""Rendering shared by every technique: tile grids, colour maps, overlays, captions, plots.

Technique modules compute arrays; this module turns arrays into uint8 RGB pictures
(H, W, 3), and ``save`` writes them. Nothing here knows about networks.
"""
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tinycnn.io.images import NOT_FINITE

# anchor colours of matplotlib's "inferno" map (Smith & van der Walt 2015) at 0, 1/6, ..., 1;
# dark-to-bright and readable in grey scale, so heat maps survive printing
_INFERNO = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99],
                     [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]], dtype=np.float64)


def to_uint8(a, lo=None, hi=None):
    """Scale an array linearly so [lo, hi] (default: its min and max) maps to [0, 255]; a NaN or
    infinite value, in ``a`` or in lo and hi, is a ValueError (images.NOT_FINITE).

    Pictures here are computed in float32 (weights, activations, gradients, images), whose
    values stay below 3.4e38: an overflow arrives as inf and is refused, and the float64
    arithmetic below, far from its limit of 1.8e308, cannot overflow."""
    a = np.asarray(a, dtype=np.float64)
    lo = a.min() if lo is None else float(lo)
    hi = a.max() if hi is None else float(hi)
    if not (np.isfinite(a).all() and np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(NOT_FINITE)    # NaN would be drawn black and inf white: a wrong picture
    return np.clip(np.rint(255 * (a - lo) / max(hi - lo, 1e-12)), 0, 255).astype(np.uint8)


def colormap(values, lo=None, hi=None):
    """(H, W) values -> (H, W, 3) uint8 through the inferno colour map."""
    t = to_uint8(values, lo, hi) / 255.0 * (len(_INFERNO) - 1)
    i = np.minimum(t.astype(int), len(_INFERNO) - 2)
    f = (t - i)[..., None]
    return np.rint(_INFERNO[i] * (1 - f) + _INFERNO[i + 1] * f).astype(np.uint8)


def robust_colormap(values, percentile=99):
    """colormap of non-negative values scaled to their ``percentile``: gradient maps have
    a few huge values that would otherwise leave everything else black."""
    return colormap(values, 0, np.percentile(values, percentile))


def overlay(image, heat, alpha=0.5, lo=None, hi=None, fade=False):
    """Blend a colour-mapped heat map (any size, resized) over an RGB uint8 image.

    lo, hi: the values at the ends of the colour map (default: the map's own range).
    fade: blend each pixel in proportion to its heat, so that where the map is low the
    photo shows through untinted (alpha at the top of the range, 0 at the bottom).
    """
    heat_rgb = colormap(heat, lo, hi)
    if heat_rgb.shape[:2] != image.shape[:2]:
        heat_rgb = np.asarray(Image.fromarray(heat_rgb).resize(image.shape[1::-1], Image.BILINEAR))
    if fade:
        lo = heat.min() if lo is None else lo
        hi = heat.max() if hi is None else hi
        weight = np.clip((heat - lo) / max(hi - lo, 1e-12), 0, 1).astype(np.float32)
        alpha = alpha * np.asarray(Image.fromarray(weight).resize(image.shape[1::-1], Image.BILINEAR))[..., None]
    return np.rint((1 - alpha) * image + alpha * heat_rgb).astype(np.uint8)


def colorbar(lo, hi, height, width=14, ticks=3):
    """A vertical colour scale for colormap(values, lo, hi), hi at the top, with its values
    written beside it: (height, width + 40, 3) uint8."""
    bar = colormap(np.linspace(hi, lo, height)[:, None].repeat(width, axis=1), lo, hi)
    canvas = Image.new("RGB", (width + 40, height), "white")
    canvas.paste(Image.fromarray(bar), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k in range(ticks):
        y = round(k * (height - 1) / (ticks - 1))
        draw.text((width + 3, min(max(y - 6, 0), height - 13)), f"{hi - k * (hi - lo) / (ticks - 1):.2f}",
                  fill=(0, 0, 0), font=_font(11))
    return np.asarray(canvas)


def thumbnail(image, size):
    """An RGB image resized to size x size: small images grow crisply, large ones shrink smoothly."""
    h = image.shape[0]
    if size % h == 0:
        return upscale(image, size // h)
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def display_scale(image):
    """How much to enlarge an (H, W, ...) picture for a figure: 1 for photos, 4 for tiny
    (CIFAR-10, 32x32) images, so that both read at about the same size."""
    return 1 if image.shape[0] >= 128 else 4


def upscale(image, factor):
    """Nearest-neighbour enlargement, so small filters and CIFAR images stay crisp."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def grid(tiles, ncols=None, pad=1, pad_value=255):
    """Tiles (N, h, w, 3) or (N, h, w) uint8 -> one picture, row-major, ``pad`` px apart."""
    tiles = np.asarray(tiles)
    if tiles.ndim == 3:
        tiles = np.repeat(tiles[..., None], 3, axis=3)
    n, h, w, _ = tiles.shape
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    out = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, 3), pad_value, dtype=np.uint8)
    for k in range(n):
        r, c = divmod(k, ncols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = tiles[k]
    return out


def _font(size=12):
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1: one fixed bitmap size
        return ImageFont.load_default()


def caption(image, text, size=14):
    """The image with a line of text above it on white."""
    font = _font(size)
    lines = text.split("\n")
    height = (size + 4) * len(lines) + 6
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    width = max([image.shape[1]] + [int(probe.textlength(line, font=font)) + 8 for line in lines])
    out = Image.new("RGB", (width, image.shape[0] + height), "white")
    out.paste(Image.fromarray(image), (0, height))
    draw = ImageDraw.Draw(out)
    for k, line in enumerate(lines):
        draw.text((4, 3 + k * (size + 4)), line, fill="black", font=font)
    return np.asarray(out)


def hstack(images, pad=8):
    """Images side by side on white, top-aligned."""
    h = max(im.shape[0] for im in images)
    parts = []
    for im in images:
        parts.append(np.pad(im, ((0, h - im.shape[0]), (0, pad), (0, 0)), constant_values=255))
    return np.concatenate(parts, axis=1)


def vstack(images, pad=8):
    """Images one above another on white, left-aligned."""
    w = max(im.shape[1] for im in images)
    parts = [np.pad(im, ((0, pad), (0, w - im.shape[1]), (0, 0)), constant_values=255) for im in images]
    return np.concatenate(parts, axis=0)


def columns_aligned(rows):
    """Rows of panels (lists of images) as images whose columns line up: each panel padded
    on the right to its column's widest."""
    widths = [max(row[k].shape[1] for row in rows if k < len(row))
              for k in range(max(map(len, rows)))]
    return [hstack([np.pad(p, ((0, 0), (0, w - p.shape[1]), (0, 0)), constant_values=255)
                    for p, w in zip(row, widths)]) for row in rows]


def line_plot(series, *, title="", xlabel="", ylabel="", size=(480, 320), ylim=None):
    """A small line chart: series {label: (x, y)} -> uint8 (H, W, 3)."""
    colours = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
    w, h = size
    left, right, top, bottom = 52, 12, 28, 40
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font = _font(12)
    xs = np.concatenate([np.asarray(x, float) for x, _ in series.values()])
    ys = np.concatenate([np.asarray(y, float) for _, y in series.values()])
    x0, x1 = xs.min(), max(xs.max(), xs.min() + 1)
    y0, y1 = ylim or (ys.min(), ys.max() + 1e-9)

    def px(x, y):
        return (left + (x - x0) / (x1 - x0) * (w - left - right),
                h - bottom - (y - y0) / (y1 - y0) * (h - top - bottom))
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    for t in np.linspace(y0, y1, 5):
        _, y = px(x0, t)
        d.line([left - 4, y, left, y], fill="black")
        d.text((4, y - 7), f"{t:.2f}", fill="black", font=font)
    for t in np.unique(np.linspace(x0, x1, 6).round()):
        x, _ = px(t, y0)
        d.line([x, h - bottom, x, h - bottom + 4], fill="black")
        d.text((x - 6, h - bottom + 6), f"{t:g}", fill="black", font=font)
    # the legend goes in the upper corner the curves leave free: right for falling curves
    falling = np.mean([y[0] > y[-1] for _, y in series.values()]) > 0.5
    legend_x = w - right - 8 - max(d.textlength(label, font=font) for label in series) if falling else left + 8
    for k, (label, (x, y)) in enumerate(series.items()):
        c = colours[k % len(colours)]
        d.line([px(a, b) for a, b in zip(x, y)], fill=c, width=2)
        d.text((legend_x, top + 6 + 14 * k), label, fill=c, font=font)
    d.text((left, 6), title, fill="black", font=font)
    d.text((w // 2 - 20, h - 16), xlabel, fill="black", font=font)
    d.text((4, top - 16), ylabel, fill="black", font=font)
    return np.asarray(img)


def as_image(grad):
    """A (C, H, W) gradient shown as RGB, centred on grey; scaled to the 99.5th
    percentile of its non-zero magnitudes so that a few large values do not wash
    out the rest."""
    g = grad.transpose(1, 2, 0)
    nonzero = np.abs(g[g != 0])
    hi = np.percentile(nonzero, 99.5) if nonzero.size else 1.0
    return to_uint8(g, -hi, hi)


def zoomed(picture, box, size):
    """The square box of an (H, W, 3) picture enlarged to size x size (nearest neighbour)."""
    top, left, side = box
    return np.asarray(Image.fromarray(picture[top:top + side, left:left + side]).resize((size, size), Image.NEAREST))


def framed(picture, box):
    """The picture with the box drawn in white."""
    top, left, side = box
    out = picture.copy()
    out[[top, top + side - 1], left:left + side] = 255
    out[top:top + side, [left, left + side - 1]] = 255
    return out


def save(image, path):
    """Write a uint8 RGB array as PNG (creating folders) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
    return path
