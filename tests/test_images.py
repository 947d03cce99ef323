"""Images: any file becomes RGB, preprocess and deprocess are inverses, class lookup."""
import numpy as np
import pytest
from PIL import Image

from tinycnn.io.images import class_index, deprocess, imagenet_classes, load_image, preprocess
from tinycnn.models import IMAGENET_MEAN, IMAGENET_STD


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
    with pytest.raises(ValueError, match="text.png is not an image file"):
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
    why = f"^dot.png is {w}x{h} px, too small to show anything: an image needs at least {MIN_SIDE} px a side$"
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
