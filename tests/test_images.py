"""Images: any file becomes RGB, preprocess and deprocess are inverses, class lookup; the
boundary refuses other formats, wrong pixels and resizes that would cost gigabytes."""
import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tinycnn.io.images import (
    FORMATS,
    class_index,
    deprocess,
    imagenet_classes,
    load_image,
    preprocess,
)
from tinycnn.models import IMAGENET_MEAN, IMAGENET_STD

from .children import ROOT
from .test_png import chunk, rgb_png


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "RGB"])
def test_any_image_mode_loads_as_rgb(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 256, (10, 14, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert(mode).save(tmp_path / "im.png")
    image = load_image(tmp_path / "im.png")
    assert image.shape == (10, 14, 3) and image.dtype == np.uint8


def test_load_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image file at .*nope.png"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(ValueError, match="text.png is not an image file tinycnn reads"):
        load_image(tmp_path / "text.png")


def test_pixels_of_unknown_range_are_refused_and_16_bits_are_scaled(tmp_path):
    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    # mode F: 0..1? 0..255?
    Image.fromarray(ramp).save(tmp_path / "float.tif")
    with pytest.raises(ValueError, match="float.tif: it has floating-point pixels"):
        load_image(tmp_path / "float.tif")
    # mode I beyond 16 bits
    Image.fromarray((ramp * 1e6).astype(np.int32)).save(tmp_path / "int32.tif")
    with pytest.raises(ValueError, match="int32.tif: it has 32-bit pixels from 0 to 1000000"):
        load_image(tmp_path / "int32.tif")
    sixteen = (ramp * 65535).round().astype(np.int32)
    # mode I within 16 bits: v / 257
    Image.fromarray(sixteen).save(tmp_path / "int16.tif")
    np.testing.assert_array_equal(
        load_image(tmp_path / "int16.tif")[..., 0], np.rint(sixteen / 257)
    )


def test_preprocess_deprocess_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    x = preprocess(rgb, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert x.shape == (1, 3, 32, 48) and x.dtype == np.float32
    # channel 0 of pixel (0, 0) by hand
    assert np.isclose(x[0, 0, 0, 0], (rgb[0, 0, 0] / 255 - 0.485) / 0.229, atol=1e-6)
    np.testing.assert_array_equal(deprocess(x[0], mean=IMAGENET_MEAN, std=IMAGENET_STD), rgb)
    assert preprocess(rgb, size=24).shape == (1, 3, 24, 24)


def test_class_lookup():
    classes = imagenet_classes()
    assert len(classes) == 1000 and classes[0].startswith("tench")
    assert class_index("espresso", classes) == 967
    assert class_index("Tabby", classes) == 281
    assert class_index(5, classes) == 5 and class_index("5", classes) == 5
    with pytest.raises(ValueError, match="'cat' is ambiguous, it matches .* classes: .*tabby"):
        class_index("cat", classes)
    with pytest.raises(ValueError, match="unknown class 'espreso'; close matches: espresso"):
        class_index("espreso", classes)
    with pytest.raises(ValueError, match="class index 1000 is out of range"):
        class_index(1000, classes)
    # Unicode digits are names, not indices (int("²") fails, int("٣") is 3)
    for digit in ("²", "٣"):
        with pytest.raises(ValueError, match="unknown class"):
            class_index(digit, classes)


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 40, 3), (40, 2, 3)])
def test_an_image_too_small_to_show_anything_is_refused_by_name(shape):
    """Enlarged to a network's input, a few pixels are a blur of a few colours: one line, not a
    picture."""
    from tinycnn.io.images import MIN_SIDE, resize_center_crop, resize_short_side
    h, w = shape[:2]
    tiny = np.zeros(shape, np.uint8)
    why = (f"^dot.png is {w}x{h} px, too small to show anything: an image needs at least "
           f"{MIN_SIDE} px a side$")
    for crop in (True, False):
        with pytest.raises(ValueError, match=why):
            preprocess(tiny, size=224, crop=crop, name="dot.png")
    for resize in (resize_center_crop, resize_short_side):
        with pytest.raises(ValueError, match=f"^the image is {w}x{h} px"):
            resize(tiny, 32)
    # not resized: the network's own shape checks speak
    assert preprocess(tiny).shape == (1, 3, h, w)


def test_the_smallest_images_that_are_enlarged_still_are():
    from tinycnn.io.images import MIN_SIDE
    for shape in ((MIN_SIDE, MIN_SIDE, 3), (MIN_SIDE, 50, 3), (32, 32, 3)):     # CIFAR-10's 32 px
        assert preprocess(np.zeros(shape, np.uint8), size=224).shape == (1, 3, 224, 224)


# --- the boundary: formats, forged TIFF tags, palettes, cut JPEGs, 16-bit colour, resizing ---

PHOTO = ROOT / "images" / "photos" / "grace_hopper.jpg"
RARE = ["GIF", "ICO", "BLP", "DDS", "PPM", "TGA", "PCX", "SGI", "ICNS", "QOI", "JPEG2000"]


def saved(im, fmt, **options):
    out = io.BytesIO()
    im.save(out, fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize("fmt", RARE)
def test_only_the_formats_tinycnn_needs_are_opened(tmp_path, fmt):
    """Pillow reads these (the test checks it can), tinycnn does not even try: one line naming
    the file and the formats it reads. The ICO and ICNS files hold PNGs."""
    im = Image.new("RGB", (16, 16), (10, 200, 30))
    data = saved(im.convert("P") if fmt == "BLP" else im, fmt)
    Image.open(io.BytesIO(data)).load()
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))} is not an image file tinycnn "
                                         r"reads \(a PNG, JPEG, WebP, BMP or TIFF image\)$"):
        load_image(path)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_formats_tinycnn_reads_load(tmp_path, fmt):
    rgb = np.random.default_rng(3).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    options = {"lossless": True} if fmt == "WEBP" else {"quality": 100} if fmt == "JPEG" else {}
    (tmp_path / "x").write_bytes(saved(Image.fromarray(rgb), fmt, **options))
    lossy = np.asarray(Image.open(tmp_path / "x").convert("RGB"))
    np.testing.assert_array_equal(load_image(tmp_path / "x"), rgb if fmt != "JPEG" else lossy)


def test_the_extensions_are_those_of_the_formats():
    from tinycnn.io.images import extensions
    assert {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"} <= extensions()
    assert not {".gif", ".ico", ".icns", ".blp", ".dds", ".ppm"} & extensions()


@pytest.mark.filterwarnings("ignore")      # what Pillow says about the forged tags
@pytest.mark.parametrize("compression", [None, "tiff_deflate"])
def test_a_tiff_tag_of_another_type_is_one_line(tmp_path, capfd, compression):
    """Every tag of a TIFF given every type in turn: read, or one ValueError naming the file,
    and nothing else on stderr. Pillow itself raises TypeError (not OSError) for some of them,
    and libtiff, which decodes compressed TIFFs, prints on stderr."""
    data = saved(Image.fromarray(np.zeros((6, 5, 3), np.uint8)), "TIFF", compression=compression)
    ifd = struct.unpack("<I", data[4:8])[0]
    raised, printed, path = set(), False, tmp_path / "t.tif"
    for i in range(struct.unpack("<H", data[ifd:ifd + 2])[0]):
        for kind in range(19):
            forged = bytearray(data)
            struct.pack_into("<H", forged, ifd + 2 + 12 * i + 2, kind)
            path.write_bytes(forged)
            try:
                with Image.open(path) as im:
                    im.load()
            except Exception as e:  # noqa: BLE001 (what Pillow raises is the point)
                raised.add(type(e))
            printed |= capfd.readouterr().err != ""
            try:
                assert load_image(path).shape[2] == 3
            except ValueError as e:
                assert str(path) in str(e) and "\n" not in str(e)
            assert capfd.readouterr().err == ""
    assert TypeError in raised if compression is None else printed


def test_a_palette_must_hold_every_entry_the_pixels_use(tmp_path):
    """Pillow draws a missing entry black. No PLTE, or fewer entries than the largest index used
    is refused; a palette shorter than 2^bit depth whose entries all exist is read."""
    index = np.array([[0, 1, 2, 3]] * 8, np.uint8)
    raw = b"".join(b"\0" + row.tobytes() for row in index)

    def palette_png(plte):
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 8, 8, 3, 0, 0, 0))
                + plte + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    colours = np.arange(12, dtype=np.uint8).reshape(4, 3) * 20
    cases = [(b"", 0), (chunk(b"PLTE", colours[:3].tobytes()), 3)]
    for plte, entries in cases:
        (tmp_path / "p.png").write_bytes(palette_png(plte))
        assert np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))[0, 3].tolist() == [0] * 3
        with pytest.raises(ValueError, match=f"p.png: its pixels use palette entry 3 and its "
                                             f"palette has {entries} entries"):
            load_image(tmp_path / "p.png")
    (tmp_path / "p.png").write_bytes(palette_png(chunk(b"PLTE", colours.tobytes())))
    np.testing.assert_array_equal(load_image(tmp_path / "p.png"), colours[index])


def cut_jpegs(data, points):
    """data cut at each fraction of its first scan and its end marker appended."""
    start = data.index(b"\xff\xda")
    return [data[:start + int(f * (len(data) - 2 - start))] + b"\xff\xd9" for f in points]


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"optimize": True},
                                     {"subsampling": 0, "restart_marker_blocks": 4}])
def test_a_jpeg_cut_in_its_scan_is_refused(tmp_path, options):
    """A real photo, cut at several points in its compressed data with an end marker appended:
    Pillow draws what is missing grey without a word; tinycnn refuses it. Whole, or with
    data after its end marker, it loads."""
    data = saved(Image.open(PHOTO), "JPEG", **options)
    whole = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    for name, good in [("whole.jpg", data), ("tail.jpg", data + b"more data\xff\xd9")]:
        (tmp_path / name).write_bytes(good)
        np.testing.assert_array_equal(load_image(tmp_path / name), whole)
    for i, forged in enumerate(cut_jpegs(data, (0.05, 0.3, 0.6, 0.9, 0.999))):
        (tmp_path / "cut.jpg").write_bytes(forged)
        silent = np.asarray(Image.open(tmp_path / "cut.jpg").convert("RGB"))
        assert silent.shape == whole.shape and (silent != whole).any()
        with pytest.raises(ValueError, match="cut.jpg: its scan data ends early"):
            load_image(tmp_path / "cut.jpg")


def png16(v, colour_type, extra=b""):
    """A PNG of the 16-bit values v (H, W, C), written here, filter 0 on every row; extra:
    chunks before the pixels."""
    h, w, _ = v.shape
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in v)
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)) + extra
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def tiff16(v, order):
    """An uncompressed RGB TIFF of the 16-bit values v (H, W, 3), written here, byte order
    "II" (little-endian) or "MM"."""
    h, w, c = v.shape
    e = "<" if order == "II" else ">"
    n = 9
    bits_at = 8 + 2 + 12 * n + 4
    pixels_at = bits_at + 2 * c
    pixels = v.astype(e + "u2").tobytes()
    tags = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, c, bits_at), (259, 3, 1, 1), (262, 3, 1, 2),
            (273, 4, 1, pixels_at), (277, 3, 1, c), (278, 3, 1, h), (279, 4, 1, len(pixels))]
    ifd = b"".join(struct.pack(e + "HHI" + ("I" if kind == 4 or count > 1 else "HH"), tag, kind,
                               count, value, *(() if kind == 4 or count > 1 else (0,)))
                   for tag, kind, count, value in tags)
    return (order.encode() + struct.pack(e + "HIH", 42, 8, n) + ifd + struct.pack(e + "I", 0)
            + struct.pack(e + f"{c}H", *[16] * c) + pixels)


def sixteen_bit_values(channels):
    """Values whose v / 257 and v >> 8 differ, and the ends of the range."""
    v = np.random.default_rng(4).integers(0, 65536, (9, 7, channels))
    v[0, 0], v[0, 1], v[0, 2] = 0, 65535, 0x00FF       # 0x00ff: 255 / 257 rounds to 1, >> 8 is 0
    return v


@pytest.mark.parametrize("kind", ["PNG RGB", "PNG RGBA", "TIFF II", "TIFF MM"])
def test_16_bit_colour_is_v_over_257_rounded(tmp_path, kind):
    v = sixteen_bit_values(4 if kind == "PNG RGBA" else 3)
    data = png16(v, 6 if kind == "PNG RGBA" else 2) if kind.startswith("PNG") else tiff16(
        v, kind[-2:])
    (tmp_path / "x").write_bytes(data)
    expected = np.array([[[round(c / 257) for c in px[:3]] for px in row] for row in v.tolist()])
    assert (expected != v[..., :3] >> 8).any()
    np.testing.assert_array_equal(load_image(tmp_path / "x"), expected)


def test_16_bit_colour_is_turned_upright_as_a_whole(tmp_path):
    """EXIF orientation 6 (shown turned 90 degrees clockwise): high and low bytes alike."""
    v = sixteen_bit_values(3)
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "x.png").write_bytes(png16(v, 2, chunk(b"eXIf", exif.tobytes()[6:])))
    expected = np.rot90(np.rint(v / 257), -1)
    np.testing.assert_array_equal(load_image(tmp_path / "x.png"), expected)


@pytest.mark.parametrize("side", [10_000, 20_000])
def test_more_pixels_than_pillows_limit_are_refused(tmp_path, side):
    """Between the limit and twice it Pillow only warns; tinycnn refuses both alike."""
    from .test_fuzz_images import png_declaring
    (tmp_path / "bomb.png").write_bytes(png_declaring(side, side))
    with pytest.raises(ValueError, match=f"bomb.png has more pixels than the "
                                         f"{Image.MAX_IMAGE_PIXELS} Pillow reads"):
        load_image(tmp_path / "bomb.png")


def test_16_bit_colour_that_cannot_be_scaled_exactly_is_refused(tmp_path):
    """16-bit grey + alpha: Pillow unpacks only its high bytes."""
    (tmp_path / "la.png").write_bytes(png16(sixteen_bit_values(2), 4))
    with pytest.raises(ValueError, match=r"la.png: it has 16-bit pixels \(LA;16B\) that tinycnn "
                                         "cannot scale to 8 bits"):
        load_image(tmp_path / "la.png")


@pytest.mark.parametrize("shape", [(8, 161), (200, 8), (30, 700)])
def test_an_image_too_long_to_resize_is_refused_before_resizing(shape):
    from tinycnn.io.images import MAX_ASPECT, resize_center_crop, resize_short_side
    h, w = shape
    long_ = np.zeros((h, w, 3), np.uint8)
    big = (round(w * 224 / min(h, w)), round(h * 224 / min(h, w)))
    why = (rf"^pano.png is {w}x{h} px, its long side \d+ times its short side: resized to a "
           rf"224 px short side it would be {big[0]}x{big[1]} px; tinycnn resizes images whose "
           rf"long side is at most {MAX_ASPECT} times the short side$")
    for resize in (resize_center_crop, resize_short_side):
        with pytest.raises(ValueError, match=why):
            resize(long_, 224, name="pano.png")
    # at MAX_ASPECT exactly it is resized
    edge = np.zeros((8, 8 * MAX_ASPECT, 3), np.uint8)
    assert resize_short_side(edge, 16).shape == (16, 16 * MAX_ASPECT, 3)


def test_resizing_a_thin_strip_costs_nothing(tmp_path):
    """A PNG of 100000 x 8 px (a few kilobytes) resized for a 224 px network would be 2.8 million
    x 224 px: gigabytes. Loading and refusing it, in a child, stays within the decoded image
    (a few MB) and a second."""
    from .children import MB, peak_of_imports, run_measured
    strip = tmp_path / "strip.png"
    strip.write_bytes(rgb_png(np.zeros((8, 100000, 3), np.uint8))[0])
    run = run_measured(
        "from tinycnn.io.images import load_image, preprocess\n"
        f"preprocess(load_image({str(strip)!r}), size=224, name='strip.png')",
        memory_limit=2 << 30, timeout=60)
    assert run.stderr.strip().endswith(
        "ValueError: strip.png is 100000x8 px, its long side 12500 times its short side: "
        "resized to a 224 px short side it would be 2800000x224 px; tinycnn resizes images "
        "whose long side is at most 20 times the short side"), run.stderr
    decoded = 100000 * 8 * 4
    assert run.peak - peak_of_imports("tinycnn.io.images") < 8 * decoded + 16 * MB
    assert run.seconds < 10


def test_a_progressive_jpeg_without_its_last_scans_is_refused(tmp_path):
    """Cut just before a later scan, a progressive JPEG lacks bits or bands of coefficients:
    Pillow draws a blurred picture without a word."""
    data = saved(Image.open(PHOTO), "JPEG", progressive=True)
    whole = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    scans = [m.start() for m in re.finditer(b"\xff\xda", data)]
    assert len(scans) > 3
    for start in scans[1:]:
        (tmp_path / "few.jpg").write_bytes(data[:start] + b"\xff\xd9")
        assert (np.asarray(Image.open(tmp_path / "few.jpg").convert("RGB")) != whole).any()
        with pytest.raises(ValueError, match="few.jpg: its scan data ends early"):
            load_image(tmp_path / "few.jpg")
