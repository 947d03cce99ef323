"""Receptive fields by hand, and top patches against a brute-force search."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import asarray, to_numpy
from tinycnn.models import cifar10_net, squeezenet1_1
from tinycnn.io.images import resize_center_crop
from vis.max_patches import crop, inside_fraction, receptive_field, top_patches, views


@pytest.mark.parametrize("layer,expected", [
    ("conv1", (3, 2, 0)), ("pool1", (7, 4, 0)),
    ("fire2.squeeze", (7, 4, 0)), ("fire2.expand.1x1.conv", (7, 4, 0)),
    ("fire2.expand.3x3.conv", (15, 4, 4)), ("fire2", (15, 4, 4)), ("fire3", (23, 4, 8)),
    ("pool3", (31, 8, 8)), ("fire9", (207, 16, 88)),
])
def test_squeezenet_receptive_fields_by_hand(layer, expected):
    # e.g. fire2: pool1's field 7 (jump 4) plus a 3x3 conv with padding 1: 7 + 2*4 = 15, offset 1*4
    assert receptive_field(squeezenet1_1(weights=False), layer) == expected


@pytest.mark.parametrize("layer,expected", [
    ("conv1", (5, 1, 2)), ("pool1", (6, 2, 2)), ("conv2", (10, 2, 4)), ("pool3", (16, 4, 6)),
    ("relu5", (32, 4, 14)),
])
def test_cifar_receptive_fields_by_hand(layer, expected):
    assert receptive_field(cifar10_net(weights=False), layer) == expected


def test_receptive_field_is_exact():
    # perturbing a pixel changes unit (y, x) only if the pixel lies in its receptive field
    net = cifar10_net(weights=False)
    size, jump, offset = receptive_field(net, "conv2")
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float64)
    net.astype(np.float64)
    def unit(image):
        return to_numpy(net.activations(asarray(image), "conv2")["conv2"][0, :, 5, 6])
    base = unit(x)
    top, left = 5 * jump - offset, 6 * jump - offset
    for r, c, inside in ((top, left, True), (top + size - 1, left + size - 1, True),
                         (top - 1, left, False), (top, left + size, False)):
        y = x.copy()
        y[0, :, r, c] += 10.0
        changed = not np.allclose(unit(y), base)
        assert changed == inside, (r, c)


def strided_net():
    """A 3x3 convolution of stride 2 and padding 1, then a ReLU: 3-px fields, jump 2, offset 1."""
    return tc.Network([("conv", tc.Conv2d(3, 2, 3, stride=2, padding=1, seed=4)),
                       ("relu", tc.ReLU())])


def test_top_patches_match_brute_force():
    net = strided_net()
    images = np.random.default_rng(1).standard_normal((10, 3, 9, 9)).astype(np.float32)
    patches, values, where = top_patches(net, images, "relu", 1, k=5, batch_size=3,
                                         one_per_image=False)
    act = to_numpy(net(asarray(images)))[:, 1]
    np.testing.assert_allclose(values, np.sort(act.ravel())[::-1][:5])
    _, per_image, where_1 = top_patches(net, images, "relu", 1, k=5, batch_size=3)
    np.testing.assert_allclose(per_image, np.sort(act.reshape(10, -1).max(axis=1))[::-1][:5])
    assert len(set(where_1[:, 0])) == 5
    i, y, x = where[0]
    np.testing.assert_array_equal(patches[0], crop(images[i], 2 * y - 1, 2 * x - 1, 3))
    assert act[i, y, x] == values[0]


def test_inside_fraction_counts_the_pixels_of_each_field_in_the_image():
    # the definition: crop a field out of an all-ones image with zero fill, count the ones
    net = cifar10_net(weights=False)
    size, jump, offset = receptive_field(net, "relu4")
    frac = inside_fraction((8, 8), size, jump, offset, (32, 32))
    ones = np.ones((1, 32, 32))
    for y in range(8):
        for x in range(8):
            field = crop(ones, y * jump - offset, x * jump - offset, size)
            assert np.isclose(frac[y, x], field.mean(), rtol=1e-12)


def test_inside_and_groups_restrict_the_search_as_a_brute_force_search_does():
    net = strided_net()
    images = np.random.default_rng(2).standard_normal((12, 3, 9, 9)).astype(np.float32)
    groups = np.arange(12) // 3                          # four photos, three views each
    act = to_numpy(net(asarray(images)))[:, 1]           # (12, 5, 5); fields inside: rows/cols 1-3
    patches, values, where = top_patches(net, images, "relu", 1, k=3, groups=groups, inside=1.0,
                                         batch_size=5)
    best = [act[3 * g:3 * g + 3, 1:4, 1:4].max() for g in range(4)]
    np.testing.assert_allclose(values, np.sort(best)[::-1][:3])
    assert len(set(groups[where[:, 0]])) == 3                    # one patch per photo
    assert ((where[:, 1:] >= 1) & (where[:, 1:] <= 3)).all()
    assert (patches != 0).all()                                  # no padding in any patch


def test_views_tile_the_image_at_twice_the_size():
    image = np.random.default_rng(3).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    v = views(image, 16, scales=(1, 2))
    assert len(v) == 5 and all(t.shape == (16, 16, 3) for t in v)
    big = np.concatenate([np.concatenate(v[1:3], axis=1), np.concatenate(v[3:5], axis=1)], axis=0)
    np.testing.assert_array_equal(big, resize_center_crop(image, 32))
