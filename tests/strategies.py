"""Hypothesis strategies that draw valid layer geometries.

Data are drawn from a seeded NumPy generator rather than by hypothesis itself:
random normal values keep ReLU inputs and pooling windows away from the kinks
and ties where finite differences are not defined.
"""
from hypothesis import strategies as st

from tinycnn.im2col import out_size


@st.composite
def conv_geometry(draw, max_size=7):
    """(N, C, H, W, F, K, stride, pad) such that the output is at least 1x1."""
    k = draw(st.integers(1, 5))
    pad = draw(st.integers(0, 2))
    stride = draw(st.integers(1, 3))
    h = draw(st.integers(max(1, k - 2 * pad), max(max_size, k)))
    w = draw(st.integers(max(1, k - 2 * pad), max(max_size, k)))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w, draw(st.integers(1, 3)),
            k, stride, pad)


@st.composite
def pool_geometry(draw, max_size=8):
    """(N, C, H, W, K, stride, pad, ceil_mode) with pad <= K // 2 (as PyTorch requires)."""
    k = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, k // 2))
    h = draw(st.integers(max(1, k - 2 * pad), max(max_size, k)))
    w = draw(st.integers(max(1, k - 2 * pad), max(max_size, k)))
    ceil_mode = draw(st.booleans())
    out_size(h, k, stride, pad, ceil_mode)  # valid by construction
    return draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w, k, stride, pad, ceil_mode


seeds = st.integers(0, 2**32 - 1)


@st.composite
def image_shape(draw, max_size=6, min_pixels=1):
    """(N, C, H, W) with at least ``min_pixels`` pixels per channel."""
    h = draw(st.integers(1, max_size))
    w = draw(st.integers(1 if h >= min_pixels else min_pixels, max_size))
    return draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w


@st.composite
def reflection_geometry(draw, max_size=6):
    """(N, C, H, W, p) with p < H and p < W, as reflection padding requires."""
    N, C, H, W = draw(image_shape(max_size))
    return N, C, H, W, draw(st.integers(0, min(H, W) - 1))
