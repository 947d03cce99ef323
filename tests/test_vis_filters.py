"""vis.filters on small random networks."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import to_numpy
from vis.filters import filter_grid


def net():
    return tc.Network([("conv1", tc.Conv2d(3, 5, 4)), ("relu1", tc.ReLU()),
                       ("conv2", tc.Conv2d(5, 6, 3))])


def test_first_layer_is_rgb_tiles():
    image = filter_grid(net(), "conv1", scale=2)
    # 5 tiles of 8x8 px in one row (up to 8 a row), 1 px apart
    assert image.shape == (1 * 9 + 1, 5 * 9 + 1, 3)
    w = to_numpy(net().layer("conv1").params["weight"][0])      # (3, 4, 4)
    tile = image[1:9:2, 1:9:2]                                  # first tile, one pixel per weight
    expected = np.rint(255 * (w - w.min()) / (w.max() - w.min())).transpose(1, 2, 0)
    np.testing.assert_array_equal(tile, expected)


def test_higher_layer_is_grayscale_pairs():
    image = filter_grid(net(), "conv2", max_out=4, max_in=2, scale=1)
    # 4 rows (outputs) x 2 columns (inputs)
    assert image.shape == (4 * 4 + 1, 2 * 4 + 1, 3)
    assert np.array_equal(image[..., 0], image[..., 1])


def test_non_conv_layer_is_refused():
    with pytest.raises(ValueError, match="'relu1' is a ReLU, not a convolution; "
                                         "convolutions: conv1, conv2"):
        filter_grid(net(), "relu1")
