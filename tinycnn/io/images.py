"""Images in and out: loading, resizing, normalising, and class names.

    x = preprocess(load_image("cat.jpg"), size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    rgb = deprocess(x[0], mean, std)           # the exact inverse, as uint8 (H, W, 3)
    imagenet_classes()[281]                    # 'tabby, tabby cat'
    class_index("espresso", imagenet_classes())  # 967
"""
import contextlib
import difflib
import os
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .jpeg import cut_scan
from .png import missing_bytes

_CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")


# The formats tinycnn opens: those its commands write (vis/cli.py) and photos come in. Pillow's
# rarer plugins (BLP, DDS, ICO, ICNS, ...) are little used and little tested, and some hold a
# PNG that escapes the checks below; they are never tried.
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
FORMAT_NAMES = "PNG, JPEG, WebP, BMP or TIFF"


def extensions():
    """The file name endings of FORMATS (".png", ".jpg", ".tif", ...), lower case."""
    return {ext for ext, fmt in Image.registered_extensions().items() if fmt in FORMATS}


GREY_16 = ("I;16", "I;16B", "I;16L", "I")
# Pillow unpacks 16-bit colour to 8 bits by keeping the high byte (v >> 8). The same data
# unpacked as if its bytes were in the other order gives the low bytes, and so v / 257.
OTHER_ORDER = {"RGB;16B": "RGB;16L", "RGBA;16B": "RGBA;16L", "RGBX;16B": "RGBX;16L"}
OTHER_ORDER |= {low: high for high, low in OTHER_ORDER.items()}


def load_image(path):
    """An image file (PNG, JPEG, WebP, BMP or TIFF) as uint8 (H, W, 3) RGB, upright.

    Grey, palette and CMYK become RGB (Pillow's conversions; CMYK by
    R = (255 - C)(255 - K) / 255); alpha is dropped, not composited (the colour
    channels as stored); 16-bit grey, RGB and RGBA are scaled to 8 bits (v / 257, rounded),
    not clipped; the EXIF orientation tag is applied, so a phone photo comes out as it is shown.
    One ValueError naming the file: another format, more pixels than Pillow's
    ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb?), floating-point or 32-bit pixels (their
    range is unknown), other 16-bit colour, unreadable or truncated files, a PNG whose pixel
    data ends early, a JPEG whose scan does, and palette pixels that the palette lacks.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # a plugin's complaints: the error says enough
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as im:
                rawmodes = {_rawmode(tile) for tile in im.tile}
                with _quiet(im):
                    im.load()
                _check_whole(path, im)
                ImageOps.exif_transpose(im, in_place=True)
                rgb = _rgb(im)
                if im.mode not in GREY_16 and any(r[-4:] in (";16B", ";16L", ";16N")
                                                  for r in rawmodes):
                    rgb = _sixteen_bits(path, rgb, rawmodes)
                return rgb
    except FileNotFoundError:
        raise FileNotFoundError(f"no image file at {path}") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image file tinycnn reads (a {FORMAT_NAMES} image)"
                         ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(f"{path} has more pixels than the {Image.MAX_IMAGE_PIXELS} Pillow reads "
                         "(a decompression bomb?)") from None
    except MemoryError:
        raise
    # truncated or corrupt data, a folder, and whatever a plugin raises on a forged file (a
    # TIFF tag of another type than the one Pillow expects is a TypeError)
    except Exception as e:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise ValueError(f"cannot read the image {path}: {' '.join(why.split())}") from None


@contextlib.contextmanager
def _quiet(im):
    """Decoding a TIFF, libtiff prints what it finds wrong to the process's stderr (file
    descriptor 2, past Python), around the one line that an error is: it goes to the null
    device meanwhile."""
    if im.format != "TIFF":
        yield
        return
    if sys.stderr:
        sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _rawmode(tile):
    """How Pillow unpacks one tile's pixels ("RGB;16B": RGB, 16 bits, big-endian)."""
    args = tile.args if isinstance(tile.args, tuple) else (tile.args,)
    return args[0] if args and isinstance(args[0], str) else ""


def _rgb(im):
    """The loaded, upright Image ``im`` as uint8 (H, W, 3) RGB (the message gets the path)."""
    if im.mode.startswith("F"):
        raise ValueError(f"it has floating-point pixels (mode {im.mode}), whose range is "
                         "unknown; save it with 8 or 16 bits per channel")
    if im.mode in GREY_16:
        values = np.asarray(im, dtype=np.float64)
        # "I": 32-bit integers
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"it has 32-bit pixels from {values.min():.0f} to "
                             f"{values.max():.0f}; save it with 8 or 16 bits per channel")
        grey = np.clip(np.rint(values / 257), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"))


def _sixteen_bits(path, high, rawmodes):
    """uint8 (H, W, 3) v / 257 of a 16-bit colour image whose high bytes are ``high``."""
    if not rawmodes <= OTHER_ORDER.keys():
        raise ValueError(f"it has 16-bit pixels ({', '.join(sorted(rawmodes))}) that tinycnn "
                         "cannot scale to 8 bits; save it with 8 bits per channel, or as "
                         "16-bit grey, RGB or RGBA")
    with Image.open(path, formats=FORMATS) as im:
        im.tile = [tile._replace(args=_swapped(tile.args)) for tile in im.tile]
        with _quiet(im):
            im.load()
        ImageOps.exif_transpose(im, in_place=True)
        low = _rgb(im)
    v = 256 * high.astype(np.uint32) + low
    return ((v + 128) // 257).astype(np.uint8)     # rint(v / 257): v / 257 is never k + 1/2


def _swapped(args):
    if isinstance(args, str):
        return OTHER_ORDER[args]
    return (OTHER_ORDER[args[0]], *args[1:])


def _check_whole(path, im):
    """ValueError unless every pixel of the loaded Image ``im`` (the file ``path``) holds what
    the file says: Pillow draws black where a palette lacks an entry or a PNG's pixel data
    ends early (tinycnn/io/png.py), and grey where a JPEG's scan does (tinycnn/io/jpeg.py)."""
    if im.mode in ("P", "PA"):
        entries = len(im.getpalette() or ()) // 3
        used = (im.getextrema() if im.mode == "P" else im.getextrema()[0])[1]
        if used >= entries:
            raise ValueError(f"its pixels use palette entry {used} and its palette has "
                             f"{entries} entries: the missing colours would be drawn black")
    if im.format == "PNG":
        counted = missing_bytes(Path(path).read_bytes())
        if counted and counted[0] < counted[1]:
            raise ValueError(f"its pixel data ends early ({counted[0]} of {counted[1]} bytes): "
                             "the rows after it would be drawn black")
    if im.format in ("JPEG", "MPO") and cut_scan(Path(path).read_bytes(), im):
        raise ValueError("its scan data ends early: the blocks after it would be drawn grey")


# The shortest side an image may have to be resized. Enlarged to a network's input (224 px for
# SqueezeNet), an image a few pixels across is a smooth blur of a handful of colours, from which
# every technique would still draw a confident answer. 8 px: an 8x8 image still shows a shape (a
# glyph of an 8x8 bitmap font); CIFAR-10's 32 px images are well above it.
MIN_SIDE = 8


def check_min_side(image, name="the image"):
    """ValueError naming ``name`` and its size unless its short side is MIN_SIDE or more."""
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"{name} is {w}x{h} px, too small to show anything: an image needs at "
                         f"least {MIN_SIDE} px a side")


# The longest an image's long side may be, in short sides, to be resized. Resizing scales both
# sides alike, so a strip of 100000 x 8 px (a PNG of a few kilobytes) scaled to a 224 px short
# side would be 2.8 million x 224 px, gigabytes; at most 20 short sides, the resized image has at
# most 20 * size^2 pixels. Photos are at most 3:1, phone panoramas about 8:1.
MAX_ASPECT = 20


def resized_size(image, size, *, name="the image"):
    """(W', H') of ``image`` resized so that its short side is ``size``; a ValueError naming
    ``name``, its size and why, before anything is allocated, when the image is smaller than
    MIN_SIDE or its long side is more than MAX_ASPECT times its short side."""
    check_min_side(image, name)
    h, w = image.shape[:2]
    scale = size / min(h, w)
    new = (max(1, round(w * scale)), max(1, round(h * scale)))
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise ValueError(f"{name} is {w}x{h} px, its long side {max(h, w) / min(h, w):.0f} times "
                         f"its short side: resized to a {size} px short side it would be "
                         f"{new[0]}x{new[1]} px; tinycnn resizes images whose long side is at "
                         f"most {MAX_ASPECT} times the short side")
    return new


def resize_center_crop(image, size, *, name="the image"):
    """Resize the short side to ``size`` (bicubic), then crop the centre size x size.
    An image smaller than MIN_SIDE or longer than MAX_ASPECT is a ValueError naming ``name``."""
    w, h = resized_size(image, size, name=name)
    new = (max(size, w), max(size, h))
    im = Image.fromarray(image).resize(new, Image.BICUBIC)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def resize_short_side(image, size, *, name="the image"):
    """Resize (bicubic) so the short side is ``size``, keeping the aspect ratio.
    An image smaller than MIN_SIDE or longer than MAX_ASPECT is a ValueError naming ``name``."""
    return np.asarray(
        Image.fromarray(image).resize(resized_size(image, size, name=name), Image.BICUBIC)
    )


def preprocess(image, *, size=None, crop=True, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
               name="the image"):
    """uint8 (H, W, 3) -> float32 (1, 3, H', W'): resize, scale to [0, 1], normalise.

    size: the short side becomes ``size``; with crop the centre size x size is kept.
    name: what a resizing error calls the image (its file).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    if size is not None:
        image = (resize_center_crop(image, size, name=name) if crop
                 else resize_short_side(image, size, name=name))
    x = image.astype(np.float32).transpose(2, 0, 1) / 255.0
    x = (x - np.reshape(mean, (3, 1, 1))) / np.reshape(std, (3, 1, 1))
    return x[None].astype(np.float32)


NOT_FINITE = (
    "the picture's values are not finite (NaN or infinity): an overflow, or a NaN in the input or "
    "the weights; against an overflow, a smaller step size, weight or scale keeps it finite"
)


def deprocess(x, *, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
    """float (3, H, W) normalised -> uint8 (H, W, 3), the inverse of preprocess (clipped).
    A NaN or infinite value is a ValueError: it has no colour."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image, got {x.shape}")
    if not np.isfinite(x).all():    # NaN would be cast to black: a wrong picture, not an error
        raise ValueError(NOT_FINITE)
    rgb = x * np.reshape(std, (3, 1, 1)) + np.reshape(mean, (3, 1, 1))
    return np.clip(np.rint(rgb.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


def imagenet_classes():
    """The 1000 ImageNet-1k class names in index order ("tench, Tinca tinca" is 0)."""
    return tuple(_CLASSES_FILE.read_text().splitlines())


def class_index(name_or_index, classes):
    """Index of a class given its index or (part of) its name, case-insensitive.

    A name matches a class when it equals one of the class's comma-separated
    synonyms, or else when it is a substring of exactly one class name.
    """
    text = str(name_or_index)
    # not "²"
    if isinstance(name_or_index, (int, np.integer)) or (text.isascii() and text.isdigit()):
        i = int(name_or_index)
        if not 0 <= i < len(classes):
            raise ValueError(f"class index {i} is out of range: there are {len(classes)} classes")
        return i
    query = str(name_or_index).strip().lower()
    exact = [
        i for i, c in enumerate(classes) if query in (s.strip().lower() for s in c.split(","))
    ]
    if len(exact) == 1:
        return exact[0]
    partial = exact or [i for i, c in enumerate(classes) if query in c.lower()]
    if len(partial) == 1:
        return partial[0]
    if partial:
        shown = ", ".join(f"{i} ({classes[i]})" for i in partial[:8])
        raise ValueError(
            f"class name {name_or_index!r} is ambiguous, it matches {len(partial)} classes: "
            f"{shown}{' ...' if len(partial) > 8 else ''}"
        )
    names = [s.strip() for c in classes for s in c.split(",")]
    close = difflib.get_close_matches(query, [n.lower() for n in names], n=5, cutoff=0.6)
    raise ValueError(
        f"unknown class {name_or_index!r}"
        + (f"; close matches: {', '.join(close)}" if close else "")
    )
