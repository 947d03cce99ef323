"""Fuzzing the image loader: every mode and format loads as the RGB we expect, computed
here from the pixels we wrote; broken files fail in one line."""
import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tinycnn.io.images import load_image

from .conftest import fuzz_settings


def png_declaring(width, height):
    """A PNG whose header declares width x height but holds almost no data (a decompression
    bomb)."""
    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@st.composite
def image_case(draw):
    """(file bytes, expected): RGB, None for 'must fail', or ("either", RGB): that RGB or fail."""
    h, w = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    kind = draw(
        st.sampled_from(
            [
                "RGB",
                "L",
                "RGBA",
                "P",
                "CMYK",
                "16-bit",
                "1",
                "EXIF",
                "truncated",
                "empty",
                "bomb",
                "garbage",
            ]
        )
    )
    out = io.BytesIO()
    fmt = draw(
        st.sampled_from(
            ["PNG", "TIFF", "BMP"] if kind in ("RGB", "L", "P", "1") else ["PNG", "TIFF"]
        )
    )
    if kind == "RGB":
        Image.fromarray(rgb).save(out, fmt)
        return out.getvalue(), rgb
    if kind == "L":
        Image.fromarray(rgb[..., 0]).save(out, fmt)
        return out.getvalue(), np.repeat(rgb[..., :1], 3, axis=2)
    if kind == "1":
        bits = rgb[..., 0] > 127
        Image.fromarray(bits).save(out, fmt)
        return out.getvalue(), np.repeat(bits[..., None] * np.uint8(255), 3, axis=2)
    if kind == "RGBA":                   # alpha dropped: the colour channels as stored
        rgba = np.concatenate([rgb, rng.integers(0, 256, (h, w, 1), dtype=np.uint8)], axis=2)
        Image.fromarray(rgba).save(out, fmt)
        return out.getvalue(), rgb
    if kind == "P":
        palette = rng.integers(0, 256, (256, 3), dtype=np.uint8)
        index = rng.integers(0, 256, (h, w), dtype=np.uint8)
        im = Image.fromarray(index, "P")
        im.putpalette(palette.ravel().tolist())
        im.save(out, fmt)
        return out.getvalue(), palette[index]
    if kind == "CMYK":
        cmyk = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        Image.fromarray(cmyk, "CMYK").save(out, "TIFF")
        c, k = cmyk[..., :3].astype(float), cmyk[..., 3:].astype(float)
        return out.getvalue(), np.rint((255 - c) * (255 - k) / 255).astype(np.uint8)
    if kind == "16-bit":
        grey = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        Image.fromarray(grey).save(out, "PNG")
        return out.getvalue(), np.repeat(
            np.rint(grey / 257).astype(np.uint8)[..., None], 3, axis=2
        )
    if kind == "EXIF":                   # orientation 6: shown rotated 90 degrees clockwise
        orientation = draw(st.sampled_from([1, 3, 6, 8]))
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(rgb).save(out, "PNG", exif=exif)
        turns = {1: 0, 3: 2, 6: -1, 8: 1}[orientation]
        return out.getvalue(), np.rot90(rgb, turns)
    if kind == "truncated":
        Image.fromarray(rgb).save(out, "PNG")
        # cut before the end: an error, or the image itself when every pixel came before the cut
        return out.getvalue()[:draw(st.integers(0, len(out.getvalue()) - 13))], ("either", rgb)
    if kind == "empty":
        return b"", None
    if kind == "bomb":
        side = draw(st.integers(int(Image.MAX_IMAGE_PIXELS ** 0.5) + 1, 60000))
        return png_declaring(side, side), None
    return draw(st.binary(max_size=100)), None


@pytest.mark.fuzz
@fuzz_settings(40)
@given(image_case())
def test_images_load_as_the_expected_rgb_or_fail_in_one_line(tmp_path_factory, case):
    data, expected = case
    path = tmp_path_factory.mktemp("images") / "image"
    path.write_bytes(data)
    if isinstance(expected, tuple):
        try:
            expected = expected[1] if load_image(path) is not None else None
        except ValueError:
            expected = None
    if expected is None:
        with pytest.raises(ValueError) as e:
            load_image(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
    else:
        got = load_image(path)
        assert got.dtype == np.uint8 and got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1)      # CMYK: Pillow rounds its own way
