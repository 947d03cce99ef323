"""vis.filters on small random networks."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import to_numpy
from vis.filters import filter_grid, pattern_share

from .conftest import on_device


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


def test_pattern_share_of_known_filters():
    """A flat colour has no pattern (0); a grey edge, whose channels all average the same, is
    all pattern (1); their sum lies between, by the sums of squares (the naive loops)."""
    colour = np.broadcast_to(np.array([0.9, -0.2, 0.4])[:, None, None], (3, 3, 3))
    edge = np.broadcast_to(np.array([[-1.0, 0.0, 1.0]] * 3), (3, 3, 3))
    both = colour + edge
    m_c = [both[c].mean() for c in range(3)]
    pattern = sum((both[c, i, j] - m_c[c]) ** 2 for c in range(3) for i in range(3)
                  for j in range(3))
    total = sum((v - both.mean()) ** 2 for v in both.ravel())
    np.testing.assert_allclose(pattern_share(np.stack([colour, edge, both, 0 * edge])),
                               [0.0, 1.0, pattern / total, 0.0], atol=1e-12)


def test_sorted_tiles_put_the_patterns_first():
    n = net()
    w = to_numpy(n.layer("conv1").params["weight"]).copy()
    w[0] = np.array([0.5, -0.5, 0.1])[:, None, None]               # a flat colour: last
    n.layer("conv1").params["weight"] = on_device(w.astype(np.float32))
    order = np.argsort(-pattern_share(w), kind="stable")
    assert order[-1] == 0
    sorted_grid = filter_grid(n, "conv1", scale=2, sort=True)
    for k, f in enumerate(order):
        tile = filter_grid(n, "conv1", scale=2)[1:9, 1 + 9 * f:9 + 9 * f]
        np.testing.assert_array_equal(sorted_grid[1:9, 1 + 9 * k:9 + 9 * k], tile)
