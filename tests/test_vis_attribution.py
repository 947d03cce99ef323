"""Saliency, guided backprop, occlusion and attribution on small networks with known answers."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import to_numpy
from tinycnn.gradcheck import numeric_grad, rel_error
from vis.attribution import grad_cam, integrated_gradients, smooth_grad
from vis.guided_backprop import guided_backprop
from vis.occlusion import occlusion_map
from vis.objectives import noisy_mean
from vis.saliency import SEED_BLUR, saliency_map, seeds, segment, segment_histogram, smooth_saliency_map

from .conftest import on_device


def relu_net(seed=0):
    """conv-relu-conv-relu, global average pool, linear: the shape of a CAM network."""
    rng = np.random.default_rng(seed)
    layers = []
    for name, (cin, cout) in (("conv1", (3, 4)), ("conv2", (4, 5))):
        conv = tc.Conv2d(cin, cout, 3, padding=1, seed=seed, dtype=np.float64)
        conv.params["bias"] = on_device(rng.normal(0, 0.1, cout))
        layers += [(name, conv), (name.replace("conv", "relu"), tc.ReLU())]
    fc = tc.Linear(5, 3, seed=seed, dtype=np.float64)
    return tc.Network(layers + [("pool", tc.GlobalAvgPool2d()), ("fc", fc)])


def x_batch(n=2, size=8, seed=0):
    return on_device(np.random.default_rng(seed).standard_normal((n, 3, size, size)))


def test_saliency_is_the_max_abs_gradient():
    net, x = relu_net(), x_batch(1)
    numeric = to_numpy(numeric_grad(lambda: net(x)[:, 2], x, on_device(np.ones(1))))
    np.testing.assert_allclose(saliency_map(net, x, [2])[0], np.abs(numeric[0]).max(axis=0), rtol=1e-6, atol=1e-9)


def test_smooth_saliency_is_the_mean_of_the_noisy_copies_maps():
    net, x = relu_net(), x_batch(2)
    rng = tc.backend.random_generator(3, like=x)              # the draws noisy_mean makes, in its order
    sigma = 0.2 * float(x.max() - x.min())
    noisy = [x + (sigma * rng.standard_normal(x.shape)).astype(x.dtype) for _ in range(4)]
    expected = np.mean([saliency_map(net, v, [1, 2]) for v in noisy], axis=0)
    np.testing.assert_allclose(smooth_saliency_map(net, x, [1, 2], n=4, noise=0.2, seed=3), expected, rtol=1e-10)
    np.testing.assert_allclose(smooth_saliency_map(net, x, [1, 2], n=3, noise=0.0), saliency_map(net, x, [1, 2]),
                               rtol=1e-10)


def test_long_averages_show_progress_after_every_gradient():
    net, x = relu_net(), x_batch(1)
    seen = []
    smooth_grad(net, x, [1], n=3, log=seen.append)
    integrated_gradients(net, x, [1], steps=4, log=seen.append)
    assert seen == ["1/3 noisy copies", "2/3 noisy copies", "3/3 noisy copies",
                    "step 1/4", "step 2/4", "step 3/4", "step 4/4"]


def test_noisy_mean_of_the_identity_is_near_x():
    x = on_device(np.zeros((1, 3, 16, 16)) + np.arange(16.0))   # range 15: sigma = 1.5
    mean = to_numpy(noisy_mean(lambda v: v, x, n=400, noise=0.1))
    assert np.abs(mean - to_numpy(x)).max() < 5 * 1.5 / np.sqrt(400)


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


def test_grad_cam_equals_cam_for_a_gap_network():
    # conv -> relu -> GAP -> linear: dS_c/dA^k = w_ck / (H W), so Grad-CAM = ReLU(sum_k w_ck A^k) / (H W)
    net, x = relu_net(), x_batch(2)
    cam = grad_cam(net, x, [1, 2], "relu2")
    A = to_numpy(net.activations(x, "relu2")["relu2"])
    w = to_numpy(net.layer("fc").params["weight"])
    for n, c in enumerate([1, 2]):
        np.testing.assert_allclose(cam[n], np.maximum(np.tensordot(w[c], A[n], axes=1), 0) / 64, rtol=1e-10)


def test_smooth_grad_of_a_linear_net_is_its_gradient():
    net = tc.Network([("conv", tc.Conv2d(3, 2, 3, dtype=np.float64)), ("flatten", tc.Flatten()),
                      ("fc", tc.Linear(2 * 36, 4, dtype=np.float64))])
    x = x_batch(1)
    numeric = to_numpy(numeric_grad(lambda: net(x)[:, 3], x, on_device(np.ones(1))))
    assert rel_error(smooth_grad(net, x, [3], n=5, noise=0.3), numeric) < 1e-6


def test_integrated_gradients_completeness():
    # attributions add up to S(x) - S(baseline); the midpoint rule converges as steps grow
    net, x = relu_net(seed=3), x_batch(2, seed=3)
    ig, gap = integrated_gradients(net, x, [0, 1], baseline=on_device(np.zeros(x.shape)), steps=400)
    s = to_numpy(net(x))[[0, 1], [0, 1]] - to_numpy(net(on_device(np.zeros(x.shape))))[[0, 1], [0, 1]]
    assert np.all(np.abs(gap) <= 0.01 * np.abs(s).max()), (gap, s)
    np.testing.assert_allclose(ig.reshape(2, -1).sum(axis=1) + gap, s, rtol=1e-10)


def test_guided_backprop_of_a_neuron_matches_its_definition():
    net, x = relu_net(), x_batch(1)
    act = to_numpy(net.activations(x, "relu2")["relu2"])[0, 3]
    y, x_ = np.unravel_index(act.argmax(), act.shape)
    grad = guided_backprop(net, x, "relu2", 3, rule="backprop")
    dout = np.zeros((1, 5, 8, 8))
    dout[0, 3, y, x_] = 1.0
    numeric = numeric_grad(lambda: net.forward(x, until="relu2")[0], x, on_device(dout))
    assert rel_error(grad, to_numpy(numeric)) < 1e-6
    guided = guided_backprop(net, x, "relu2", 3, rule="guided", position=(y, x_))
    assert guided.shape == (1, 3, 8, 8) and not np.allclose(guided, grad)


def test_occlusion_finds_the_pixels_the_class_depends_on():
    # a network whose class-0 score reads only the top-left 4x4 block of channel 0
    conv = tc.Conv2d(3, 1, 1, dtype=np.float64)
    conv.params = {"weight": on_device(np.array([1.0, 0, 0]).reshape(1, 3, 1, 1)), "bias": on_device(np.zeros(1))}
    fc = tc.Linear(64, 2, dtype=np.float64)
    w = np.zeros((2, 64))
    w[0, [r * 8 + c for r in range(4) for c in range(4)]] = 1.0
    fc.params = {"weight": on_device(w), "bias": on_device(np.zeros(2))}
    net = tc.Network([("conv", conv), ("flatten", tc.Flatten()), ("fc", fc)])
    x = on_device(np.ones((1, 3, 8, 8)))
    heat = occlusion_map(net, x, 0, size=2, stride=2, batch_size=5)
    assert heat.shape == (4, 4)
    assert np.all(heat[:2, :2] < heat.max()) and np.allclose(heat[2:, :], heat.max())


def test_seeds_are_the_papers_quantiles():
    """Simonyan et al. 2014, sec. 3.1: foreground above the 95 % quantile, background below the 30 %."""
    saliency = np.random.default_rng(0).permutation(1000).reshape(20, 50).astype(float)   # distinct values
    fg, bg = seeds(saliency)
    assert fg.sum() == 50 and saliency[fg].min() >= 949.05 and bg.sum() == 300 and saliency[bg].max() <= 299.7


def test_segment_is_grabcut_from_the_blurred_seeds_then_the_largest_region():
    from scipy import ndimage

    from vis.grabcut import grabcut
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (32, 40, 3)).astype(np.uint8)
    image[8:24, 10:30] //= 3                                             # a darker, salient rectangle
    saliency = ndimage.gaussian_filter(rng.random((32, 40)), 1.0)
    saliency[10:22, 12:28] += 0.5
    blur = SEED_BLUR * 32
    mask = grabcut(image, *seeds(saliency, blur=blur), unknown_as_foreground=True)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    expected = labels == np.bincount(labels[labels > 0]).argmax()
    np.testing.assert_array_equal(segment(image, saliency), expected)
