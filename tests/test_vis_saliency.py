"""Saliency maps and the segmentation they seed (Simonyan et al. 2014) on small networks
and synthetic images with known answers."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import to_numpy
from tinycnn.gradcheck import numeric_grad
from vis.saliency import (SEED_BLUR, saliency_map, seeds, segment, segment_histogram,
                          smooth_saliency_map)

from .conftest import on_device
from .nets import relu_net, x_batch


def test_saliency_is_the_max_abs_gradient():
    net, x = relu_net(), x_batch(1)
    numeric = to_numpy(numeric_grad(lambda: net(x)[:, 2], x, on_device(np.ones(1))))
    np.testing.assert_allclose(saliency_map(net, x, [2])[0], np.abs(numeric[0]).max(axis=0),
                               rtol=1e-6, atol=1e-9)


def test_smooth_saliency_is_the_mean_of_the_noisy_copies_maps():
    net, x = relu_net(), x_batch(2)
    rng = tc.backend.random_generator(3, like=x)       # the draws noisy_mean makes, in its order
    sigma = 0.2 * float(x.max() - x.min())
    noisy = [x + (sigma * rng.standard_normal(x.shape)).astype(x.dtype) for _ in range(4)]
    expected = np.mean([saliency_map(net, v, [1, 2]) for v in noisy], axis=0)
    np.testing.assert_allclose(smooth_saliency_map(net, x, [1, 2], n=4, noise=0.2, seed=3),
                               expected, rtol=1e-10)
    np.testing.assert_allclose(smooth_saliency_map(net, x, [1, 2], n=3, noise=0.0),
                               saliency_map(net, x, [1, 2]), rtol=1e-10)


@pytest.mark.parametrize("unknown_as_foreground", [False, True])
def test_segment_with_either_first_foreground_model(unknown_as_foreground):
    image = np.full((40, 40, 3), 30, np.uint8)
    image[10:30, 10:30] = 220
    saliency = np.random.default_rng(0).random((40, 40)) * 0.1
    saliency[12:28, 12:28] += 1.0
    mask = segment(image, saliency, unknown_as_foreground=unknown_as_foreground)
    assert mask[10:30, 10:30].mean() > 0.95 and mask[:8].mean() < 0.05


@pytest.mark.parametrize("method", [segment, segment_histogram])
def test_segmentation_grows_salient_seeds_to_the_object(method):
    image = np.full((40, 40, 3), 30, np.uint8)
    image[10:30, 10:30] = 220                                   # the object: a bright square
    saliency = np.random.default_rng(0).random((40, 40)) * 0.1
    saliency[12:28, 12:28] += 1.0                               # salient inside it
    mask = method(image, saliency)
    assert mask[10:30, 10:30].mean() > 0.95 and mask[:8].mean() < 0.05


def test_seeds_are_the_papers_quantiles():
    """Simonyan et al. 2014, sec. 3.1: foreground above the 95 % quantile, background below
    the 30 %."""
    saliency = np.random.default_rng(0).permutation(1000).reshape(20, 50).astype(float)  # distinct
    fg, bg = seeds(saliency)
    assert (fg.sum() == 50 and saliency[fg].min() >= 949.05
            and bg.sum() == 300 and saliency[bg].max() <= 299.7)


def test_segment_is_grabcut_from_the_blurred_seeds_then_the_largest_region():
    from scipy import ndimage

    from vis.grabcut import grabcut
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (32, 40, 3)).astype(np.uint8)
    image[8:24, 10:30] //= 3                                 # a darker, salient rectangle
    saliency = ndimage.gaussian_filter(rng.random((32, 40)), 1.0)
    saliency[10:22, 12:28] += 0.5
    blur = SEED_BLUR * 32
    mask = grabcut(image, *seeds(saliency, blur=blur), unknown_as_foreground=True)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    expected = labels == np.bincount(labels[labels > 0]).argmax()
    np.testing.assert_array_equal(segment(image, saliency), expected)
