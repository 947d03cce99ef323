"""im2col / col2im: sizes by hand, and col2im is the exact adjoint of im2col."""
import numpy as np
from hypothesis import given

from tinycnn.backend import to_numpy
from tinycnn.im2col import col2im, im2col, out_size

from .conftest import on_device
from .strategies import conv_geometry, seeds


def test_out_size_by_hand():
    assert out_size(224, 3, 2, 0) == 111       # SqueezeNet conv1
    assert out_size(32, 5, 1, 2) == 32         # 'same' 5x5
    assert out_size(7, 3, 2, 1) == 4
    assert out_size(7, 2, 2, 0) == 3 and out_size(7, 2, 2, 0, ceil_mode=True) == 4


@given(conv_geometry(), seeds)
def test_col2im_is_adjoint_of_im2col(geom, seed):
    # <im2col(x), c> == <x, col2im(c)> for all x, c: the defining property of the backward pass
    N, C, H, W, _, K, stride, pad = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    cols = to_numpy(im2col(on_device(x), K, K, stride, pad))
    c = rng.standard_normal(cols.shape)
    back = to_numpy(col2im(on_device(c), x.shape, K, K, stride, pad))
    assert np.isclose((cols * c).sum(), (x * back).sum(), rtol=1e-10, atol=1e-10)


def test_im2col_columns_are_receptive_fields():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    cols = to_numpy(im2col(on_device(x), 2, 2, 2, 0))  # four non-overlapping 2x2 windows
    np.testing.assert_array_equal(
        cols.T, [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    )
    cols = to_numpy(im2col(on_device(x), 2, 2, 1, 0)).reshape(4, 3, 3)  # 3x3 overlapping windows
    np.testing.assert_array_equal(cols[:, 0, 0], [0, 1, 4, 5])       # output (0, 0)
    np.testing.assert_array_equal(cols[:, 2, 1], [9, 10, 13, 14])     # output (2, 1)


def test_im2col_puts_the_images_side_by_side():
    x = np.arange(2 * 16.0).reshape(2, 1, 4, 4)
    cols = to_numpy(im2col(on_device(x), 2, 2, 2, 0))               # (4, 2 images x 4 windows)
    np.testing.assert_array_equal(cols[:, :4], to_numpy(im2col(on_device(x[:1]), 2, 2, 2, 0)))
    np.testing.assert_array_equal(cols[:, 4:], to_numpy(im2col(on_device(x[1:]), 2, 2, 2, 0)))
