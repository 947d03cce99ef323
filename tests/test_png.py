"""The PNG completeness check: IHDR's promise against the IDAT stream, checked against
Pillow's own files and decoding, and against PNGs written here by hand (interlaced ones too)."""
import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tinycnn.io.images import load_image
from tinycnn.io.png import ADAM7, missing_bytes


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def rgb_png(pixels, *, interlace=False, keep=1.0):
    """A PNG written here: 8-bit RGB, filter 0 on every row, Adam7 if interlace; keep: the
    fraction of the filtered pixel stream that goes into IDAT (a clean zlib stream all the
    same)."""
    h, w, _ = pixels.shape
    passes = ADAM7 if interlace else ((0, 0, 1, 1),)
    raw = b"".join(b"\0" + row.tobytes() for x0, y0, dx, dy in passes
                   for row in pixels[y0::dy, x0::dx] if pixels[y0::dy, x0::dx].shape[1])
    raw = raw[:int(len(raw) * keep)]
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, int(interlace)))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    ), len(raw)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 19), st.integers(1, 19), st.booleans(), st.integers(0, 2**32 - 1))
def test_a_whole_png_is_whole_and_pillow_reads_the_same_pixels(h, w, interlace, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    data, n = rgb_png(pixels, interlace=interlace)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), pixels)
    assert missing_bytes(data) == (n, n)


@pytest.mark.parametrize("interlace", [False, True])
def test_a_pixel_stream_that_ends_early_is_refused(tmp_path, interlace):
    pixels = np.random.default_rng(0).integers(0, 256, (16, 12, 3), dtype=np.uint8)
    data, n = rgb_png(pixels, interlace=interlace, keep=0.5)
    assert missing_bytes(data) == (n, rgb_png(pixels, interlace=interlace)[1])
    (tmp_path / "short.png").write_bytes(data)
    if not interlace:
        # Pillow reads it without a word: the rest black
        Image.open(tmp_path / "short.png").load()
    why = (
        "image file is truncated"
        if interlace
        else r"its pixel data ends early \(\d+ of \d+ bytes\)"
    )
    with pytest.raises(ValueError, match=f"short.png: {why}"):
        load_image(tmp_path / "short.png")


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16"])
def test_pillows_own_pngs_are_whole_in_every_mode(mode):
    image = Image.fromarray(
        np.random.default_rng(1).integers(0, 256, (9, 14, 3), dtype=np.uint8)
    ).convert(mode)
    out = io.BytesIO()
    image.save(out, "PNG")
    got, expected = missing_bytes(out.getvalue())
    assert got == expected > 0


def test_a_forged_header_does_not_make_it_allocate_the_image():
    """A decompression bomb: 64 MB of zeros in 64 kB of IDAT under a header that promises
    28.8 GB. Counting must hold one piece at a time, not the stream nor the image."""
    header = struct.pack(">IIBBBBB", 60000, 60000, 16, 6, 0, 0, 0)
    bomb = zlib.compress(bytes(64 << 20), 9)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", bomb)
    tracemalloc.start()
    try:
        counted = missing_bytes(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counted == (64 << 20, 60000 * (1 + 60000 * 8))
    assert peak < len(data) + (4 << 20), f"peak {peak} bytes while counting"


def test_only_the_first_header_counts():
    """A second IHDR after the pixel data (as a forger might append) changes nothing: Pillow
    reads the first one, so does the check."""
    pixels = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    data, n = rgb_png(pixels)
    small = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    big = chunk(b"IHDR", struct.pack(">IIBBBBB", 900, 900, 8, 2, 0, 0, 0))
    for extra in (small, big):
        forged = data[:-12] + extra + data[-12:]           # before IEND, after IDAT
        assert missing_bytes(forged) == (n, n)
