"""Fuzzing the image boundary: every mode and format tinycnn reads loads as the RGB we
expect, computed here from the pixels we wrote; other formats, broken files, palettes
without their colours, cut JPEGs and 16-bit colour are refused in one line or read exactly;
resizing refuses what would cost more than MAX_ASPECT * size^2 pixels. Each case is loaded
in a child, whose peak memory and time are measured: at most a few times the decoded image
(4 bytes a pixel in Pillow) and the file, plus a constant, and seconds."""
import io
import json
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tinycnn.io.images import MAX_ASPECT, MIN_SIDE

from .children import MB, ForkServer
from .conftest import fuzz_settings
from .test_images import PHOTO, RARE, cut_jpegs, png16, saved, tiff16
from .test_png import chunk

BYTES_PER_PIXEL = 20    # the decoded image, its upright and RGB copies, NumPy's, a second decode
SIZE = 64               # the network input the child resizes to


def png_declaring(width, height):
    """A PNG whose header declares width x height but holds almost no data (a decompression
    bomb)."""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def palette_png(index, palette):
    """An 8-bit palette PNG of index (H, W) written here; palette (N, 3), no PLTE when N = 0."""
    h, w = index.shape
    raw = b"".join(b"\0" + row.tobytes() for row in index.astype(np.uint8))
    plte = chunk(b"PLTE", palette.astype(np.uint8).tobytes()) if len(palette) else b""
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
            + plte + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@st.composite
def image_case(draw):
    """(file bytes, expected, pixels): expected is RGB, None for 'must fail', ("either", RGB):
    that RGB or fail, or ("close", RGB): within 1 (CMYK: Pillow rounds its own way); pixels is
    the most the header may make the loader decode."""
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    kind = draw(st.sampled_from(["RGB", "L", "RGBA", "P", "CMYK", "16-bit", "1", "EXIF",
                                 "truncated", "empty", "bomb", "garbage"]))
    fmt = draw(st.sampled_from(["PNG", "TIFF", "BMP"] if kind in ("RGB", "L", "P", "1")
                               else ["PNG", "TIFF"]))
    if kind == "RGB":
        return saved(Image.fromarray(rgb), fmt), rgb, h * w
    if kind == "L":
        return saved(Image.fromarray(rgb[..., 0]), fmt), np.repeat(rgb[..., :1], 3, 2), h * w
    if kind == "1":
        bits = rgb[..., 0] > 127
        return (saved(Image.fromarray(bits), fmt),
                np.repeat(bits[..., None] * np.uint8(255), 3, axis=2), h * w)
    if kind == "RGBA":                   # alpha dropped: the colour channels as stored
        rgba = np.concatenate([rgb, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)], axis=2)
        return saved(Image.fromarray(rgba), fmt), rgb, h * w
    if kind == "P":
        palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
        index = rng.integers(0, 256, (h, w), dtype=np.uint8)
        im = Image.fromarray(index, "P")
        im.putpalette(palette.ravel().tolist())
        return saved(im, fmt), palette[index], h * w
    if kind == "CMYK":
        cmyk = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        c, k = cmyk[..., :3].astype(float), cmyk[..., 3:].astype(float)
        return (saved(Image.fromarray(cmyk, "CMYK"), "TIFF"),
                ("close", np.rint((255 - c) * (255 - k) / 255).astype(np.uint8)), h * w)
    if kind == "16-bit":
        grey = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        return (saved(Image.fromarray(grey), "PNG"),
                np.repeat(np.rint(grey / 257).astype(np.uint8)[..., None], 3, axis=2), h * w)
    if kind == "EXIF":                   # orientation 6: shown rotated 90 degrees clockwise
        orientation = draw(st.sampled_from([1, 3, 6, 8]))
        exif = Image.Exif()
        exif[0x0112] = orientation
        turns = {1: 0, 3: 2, 6: -1, 8: 1}[orientation]
        return saved(Image.fromarray(rgb), "PNG", exif=exif), np.rot90(rgb, turns), h * w
    if kind == "truncated":
        data = saved(Image.fromarray(rgb), "PNG")
        # cut before the end: an error, or the image itself when every pixel came before the cut
        return data[:draw(st.integers(0, len(data) - 13))], ("either", rgb), h * w
    if kind == "empty":
        return b"", None, 0
    if kind == "bomb":
        side = draw(st.integers(int(Image.MAX_IMAGE_PIXELS ** 0.5) + 1, 60000))
        return png_declaring(side, side), None, 0
    return draw(st.binary(max_size=100)), None, 0


@st.composite
def rare_case(draw):
    """A format Pillow reads and tinycnn does not: refused before any pixel is decoded."""
    fmt = draw(st.sampled_from(RARE))
    im = Image.new("RGB", (draw(st.integers(1, 64)), draw(st.integers(1, 64))), (9, 99, 199))
    return saved(im.convert("P") if fmt == "BLP" else im, fmt), None, 0


@st.composite
def long_case(draw):
    """A strip of one colour (kilobytes of PNG): it loads, and is resized only up to
    MAX_ASPECT."""
    short, long_ = draw(st.integers(MIN_SIDE, 16)), draw(st.integers(1, 150_000))
    shape = (short, long_) if draw(st.booleans()) else (long_, short)
    strip = np.full((*shape, 3), draw(st.integers(0, 255)), np.uint8)
    return saved(Image.fromarray(strip), "PNG"), strip, short * long_


@st.composite
def palette_case(draw):
    """An 8-bit palette PNG: refused unless every index used has its colour."""
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    entries, used = draw(st.integers(0, 256)), draw(st.integers(1, 256))
    index, palette = rng.integers(0, used, (h, w)), rng.integers(0, 256, (entries, 3))
    expected = palette[index].astype(np.uint8) if index.max() < entries else None
    return palette_png(index, palette), expected, h * w


@st.composite
def cut_jpeg_case(draw):
    """A photo as JPEG (baseline, progressive, restart markers), cut anywhere after its first
    scan begins and an end marker appended: refused, or the pixels of the whole file."""
    photo = Image.open(PHOTO).resize((draw(st.integers(8, 80)), draw(st.integers(8, 80))))
    data = saved(photo, "JPEG", progressive=draw(st.booleans()), optimize=draw(st.booleans()),
                 subsampling=draw(st.sampled_from([0, 1, 2])),
                 restart_marker_blocks=draw(st.sampled_from([0, 1, 3])))
    whole = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    cut = cut_jpegs(data, [draw(st.floats(0, 1, exclude_max=True))])[0]
    return cut, ("either", whole), whole.shape[0] * whole.shape[1]


@st.composite
def sixteen_bit_case(draw):
    """16-bit RGB or RGBA, as PNG or TIFF in either byte order: v / 257 rounded."""
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    v = rng.integers(0, 65536, (h, w, draw(st.sampled_from([3, 4]))))
    order = draw(st.sampled_from(["PNG", "II", "MM"]))
    data = png16(v, 2 if v.shape[2] == 3 else 6) if order == "PNG" else tiff16(v[..., :3], order)
    return data, np.rint(v[..., :3] / 257).astype(np.uint8), h * w


SETUP = """
import json
import numpy as np
from tinycnn.io.images import load_image, preprocess
"""
CHILD = """
path, crop = {path!r}, {crop}
try:
    rgb = load_image(path)
except ValueError as e:
    print(json.dumps({{"refused": str(e)}}))
else:
    np.save(path + ".npy", rgb)
    try:
        shape = preprocess(rgb, size={SIZE}, crop=crop, name="the file").shape
        print(json.dumps({{"resized": shape}}))
    except ValueError as e:
        print(json.dumps({{"resize refused": str(e)}}))
"""


@pytest.fixture(scope="module")
def forks():
    """Children forked from one interpreter that has imported the image readers."""
    with ForkServer(SETUP, seconds=120, memory_limit=4 << 30) as server:
        yield server


def load_in_child(forks, path, crop):
    """Load path and resize it in a child: (what it said, peak memory above the imports, s)."""
    run = forks.run(CHILD.format(path=str(path), crop=crop, SIZE=SIZE))
    assert run.returncode == 0 and not run.timed_out, run.stderr
    return json.loads(run.stdout), run.peak, run.seconds


def check_in_child(forks, tmp_path_factory, case, crop):
    """Load the case's file and resize it in a child; what it said, its memory and its time
    are what the case expects."""
    data, expected, pixels = case
    path = tmp_path_factory.mktemp("images") / "image"
    path.write_bytes(data)
    said, peak, seconds = load_in_child(forks, path, crop)
    assert peak < BYTES_PER_PIXEL * pixels + 3 * len(data) + 16 * MB, (peak, pixels, len(data))
    assert seconds < 20
    atol = 1 if isinstance(expected, tuple) and expected[0] == "close" else 0
    if isinstance(expected, tuple):
        expected = expected[1] if "refused" not in said or expected[0] == "close" else None
    if expected is None:
        assert str(path) in said["refused"] and "\n" not in said["refused"], said
        return
    got = np.load(str(path) + ".npy")
    assert got.dtype == np.uint8 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=atol)
    h, w = got.shape[:2]
    if min(h, w) >= MIN_SIDE and max(h, w) <= MAX_ASPECT * min(h, w):
        scale = SIZE / min(h, w)
        resized = [SIZE, SIZE] if crop else [round(h * scale), round(w * scale)]
        assert said["resized"] == [1, 3, *resized], said
    else:
        assert said["resize refused"].startswith(f"the file is {w}x{h} px"), said


@pytest.mark.fuzz
@fuzz_settings(20)
@given(image_case(), st.booleans())
def test_images_load_as_the_expected_rgb_or_fail_in_one_line(forks, tmp_path_factory, case, crop):
    check_in_child(forks, tmp_path_factory, case, crop)


@pytest.mark.fuzz
@fuzz_settings(6)
@given(rare_case(), st.booleans())
def test_formats_tinycnn_does_not_read_are_refused(forks, tmp_path_factory, case, crop):
    check_in_child(forks, tmp_path_factory, case, crop)


@pytest.mark.fuzz
@fuzz_settings(8)
@given(long_case(), st.booleans())
def test_long_images_are_resized_within_bounds_or_refused(forks, tmp_path_factory, case, crop):
    check_in_child(forks, tmp_path_factory, case, crop)


@pytest.mark.fuzz
@fuzz_settings(8)
@given(palette_case(), st.booleans())
def test_palettes_hold_every_colour_used_or_are_refused(forks, tmp_path_factory, case, crop):
    check_in_child(forks, tmp_path_factory, case, crop)


@pytest.mark.fuzz
@fuzz_settings(8)
@given(cut_jpeg_case(), st.booleans())
def test_cut_jpegs_are_refused_or_whole(forks, tmp_path_factory, case, crop):
    check_in_child(forks, tmp_path_factory, case, crop)


@pytest.mark.fuzz
@fuzz_settings(8)
@given(sixteen_bit_case(), st.booleans())
def test_16_bit_colour_is_v_over_257(forks, tmp_path_factory, case, crop):
    check_in_child(forks, tmp_path_factory, case, crop)
