"""Images in and out: loading, resizing, normalising, and class names.

    x = preprocess(load_image("cat.jpg"), size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    rgb = deprocess(x[0], mean, std)           # the exact inverse, as uint8 (H, W, 3)
    imagenet_classes()[281]                    # 'tabby, tabby cat'
    class_index("espresso", imagenet_classes())  # 967
"""
import difflib
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .png import missing_bytes

_CLASSES_FILE = Path(__file__).with_name("imagenet_classes.txt")


def load_image(path):
    """An image file (JPEG, PNG, ...) as uint8 (H, W, 3) RGB, upright.

    Grey, palette and CMYK become RGB (Pillow's conversions; CMYK by
    R = (255 - C)(255 - K) / 255); alpha is dropped, not composited (the colour
    channels as stored); 16-bit images are scaled to 8 bits (v / 257), not clipped;
    the EXIF orientation tag is applied, so a phone photo comes out as it is shown.
    More pixels than Pillow's ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb?),
    floating-point or 32-bit pixels (their range is unknown), and unreadable or
    truncated files, are one ValueError.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                fmt, im = im.format, ImageOps.exif_transpose(im)      # the copy has no format
                if im.mode.startswith("F"):  # the message gets the path below
                    raise ValueError(
                        f"it has floating-point pixels (mode {im.mode}), whose range is "
                        "unknown; save it with 8 or 16 bits per channel"
                    )
                if im.mode in ("I;16", "I;16B", "I;16L", "I"):          # 16-bit grey
                    values = np.asarray(im, dtype=np.float64)
                    # "I": 32-bit integers
                    if values.size and (values.min() < 0 or values.max() > 65535):
                        raise ValueError(
                            f"it has 32-bit pixels from {values.min():.0f} to {values.max():.0f}; "
                            "save it with 8 or 16 bits per channel"
                        )
                    grey = np.clip(np.rint(values / 257), 0, 255).astype(np.uint8)
                    return _whole(path, fmt, np.repeat(grey[..., None], 3, axis=2))
                return _whole(path, fmt, np.asarray(im.convert("RGB")))
    except FileNotFoundError:
        raise FileNotFoundError(f"no image file at {path}") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path} is not an image file Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValueError(f"{path} has more pixels than the {Image.MAX_IMAGE_PIXELS} Pillow reads "
                         "(a decompression bomb?)") from None
    # truncated or corrupt data, a folder
    except (OSError, SyntaxError, EOFError, ValueError) as e:
        raise ValueError(
            f"cannot read the image {path}: {getattr(e, 'strerror', None) or e}"
        ) from None


def _whole(path, fmt, pixels):
    """pixels, unless the file is a PNG (``fmt``, Pillow's name) whose pixel stream ends before its
    last row (tinycnn/io/png.py):
    Pillow draws the rows it never got black."""
    if fmt == "PNG":
        counted = missing_bytes(Path(path).read_bytes())
        if counted and counted[0] < counted[1]:
            raise ValueError(
                f"its pixel data ends early ({counted[0]} of {counted[1]} bytes): the rows after "
                "it would be drawn black"
            )
    return pixels


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


def resize_center_crop(image, size, *, name="the image"):
    """Resize the short side to ``size`` (bicubic), then crop the centre size x size.
    An image smaller than MIN_SIDE is a ValueError naming ``name``."""
    check_min_side(image, name)
    h, w = image.shape[:2]
    scale = size / min(h, w)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    im = Image.fromarray(image).resize(new, Image.BICUBIC)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def resize_short_side(image, size, *, name="the image"):
    """Resize (bicubic) so the short side is ``size``, keeping the aspect ratio.
    An image smaller than MIN_SIDE is a ValueError naming ``name``."""
    check_min_side(image, name)
    h, w = image.shape[:2]
    scale = size / min(h, w)
    return np.asarray(
        Image.fromarray(image).resize(
            (max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC
        )
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
