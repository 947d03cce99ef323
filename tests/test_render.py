"""Rendering: grids put tiles where they belong, colour maps and scaling by hand."""
import numpy as np
import pytest

from vis import render


def test_grid_places_tiles_row_major():
    tiles = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((5, 2, 3, 3), np.uint8)
    out = render.grid(tiles, ncols=3, pad=1, pad_value=255)
    assert out.shape == (2 * 3 + 1, 3 * 4 + 1, 3)
    assert out[1, 1, 0] == 0 and out[1, 5, 0] == 1 and out[4, 1, 0] == 3 and out[4, 5, 0] == 4
    assert out[0, 0, 0] == 255 and out[4, 9, 0] == 255   # padding, and the empty sixth cell


def test_to_uint8_and_colormap():
    np.testing.assert_array_equal(render.to_uint8(np.array([-1.0, 0.0, 1.0])), [0, 128, 255])
    cm = render.colormap(np.array([[0.0, 1.0]]))
    np.testing.assert_array_equal(cm[0, 0], [0, 0, 4])          # inferno's darkest
    np.testing.assert_array_equal(cm[0, 1], [252, 255, 164])    # and brightest
    assert render.upscale(np.ones((2, 3, 3), np.uint8), 4).shape == (8, 12, 3)


def test_caption_widens_for_long_text():
    out = render.caption(np.zeros((10, 10, 3), np.uint8), "a caption longer than ten pixels")
    assert out.shape[1] > 10 and out.shape[0] > 10


def test_faded_overlay_leaves_cold_pixels_alone_and_the_colour_bar_reads_top_down():
    image = np.full((4, 4, 3), 100, np.uint8)
    heat = np.zeros((4, 4))
    heat[0, 0] = 1.0
    out = render.overlay(image, heat, alpha=1.0, lo=0.0, hi=1.0, fade=True)
    assert (out[3, 3] == 100).all() and not (out[0, 0] == 100).all()       # zero heat: no tint
    np.testing.assert_array_equal(out[0, 0], render.colormap(np.array([[1.0]]), 0.0, 1.0)[0, 0])
    bar = render.colorbar(0.0, 1.0, 50)
    np.testing.assert_array_equal(bar[0, 0], render.colormap(np.array([[1.0]]), 0.0, 1.0)[0, 0])
    np.testing.assert_array_equal(bar[-1, 0], render.colormap(np.array([[0.0]]), 0.0, 1.0)[0, 0])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_picture_without_colours_is_refused_not_drawn_black(bad):
    from tinycnn.io.images import deprocess
    values = np.zeros((3, 4, 4))
    values[1, 2, 3] = bad          # NaN would cast to 0 (black), inf clip to 255: a wrong picture
    for draw in (render.to_uint8, render.colormap, lambda v: render.to_uint8(v, -1, 1), deprocess):
        with pytest.raises(ValueError, match="not finite"):
            draw(values)


def test_values_across_float32s_whole_range_keep_their_order():
    """Pictures are computed in float32: at its limits (3.4e38), a - lo and 255 (a - lo) stay
    far inside float64's range, so the picture still runs from black to white."""
    top = np.finfo(np.float32).max
    out = render.to_uint8(np.array([-top, -0.6 * top, 0.2 * top, top], np.float32))
    np.testing.assert_array_equal(out, [0, 51, 153, 255])
    assert render.to_uint8(np.array([top], np.float32), -top, 0.0)[0] == 255    # above hi: white
    assert render.to_uint8(np.array([-top], np.float32), 0.0, top)[0] == 0      # below lo: black


def test_float32_overflow_reaches_the_picture_as_inf_and_is_refused():
    with np.errstate(over="ignore"):
        values = np.array([3e38, 1.0], np.float32) * np.float32(10)     # inf in float32
    with pytest.raises(ValueError, match="not finite"):
        render.to_uint8(values)


@pytest.mark.parametrize("lo, hi", [(np.nan, 1.0), (0.0, np.nan), (-np.inf, 1.0), (0.0, np.inf)])
def test_a_range_without_bounds_is_refused(lo, hi):
    with pytest.raises(ValueError, match="not finite"):
        render.to_uint8(np.zeros((2, 2)), lo, hi)
