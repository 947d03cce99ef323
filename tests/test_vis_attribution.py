"""Grad-CAM, SmoothGrad and integrated gradients on small networks with known answers."""
import numpy as np

import tinycnn as tc
from tinycnn.backend import to_numpy
from tinycnn.gradcheck import numeric_grad, rel_error
from vis.attribution import grad_cam, integrated_gradients, smooth_grad
from vis.objectives import noisy_mean

from .conftest import on_device
from .nets import relu_net, x_batch


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


def test_grad_cam_equals_cam_for_a_gap_network():
    # conv -> relu -> GAP -> linear: dS_c/dA^k = w_ck / (H W),
    # so Grad-CAM = ReLU(sum_k w_ck A^k) / (H W)
    net, x = relu_net(), x_batch(2)
    cam = grad_cam(net, x, [1, 2], "relu2")
    A = to_numpy(net.activations(x, "relu2")["relu2"])
    w = to_numpy(net.layer("fc").params["weight"])
    for n, c in enumerate([1, 2]):
        np.testing.assert_allclose(cam[n], np.maximum(np.tensordot(w[c], A[n], axes=1), 0) / 64,
                                   rtol=1e-10)


def test_smooth_grad_of_a_linear_net_is_its_gradient():
    net = tc.Network([("conv", tc.Conv2d(3, 2, 3, dtype=np.float64)), ("flatten", tc.Flatten()),
                      ("fc", tc.Linear(2 * 36, 4, dtype=np.float64))])
    x = x_batch(1)
    numeric = to_numpy(numeric_grad(lambda: net(x)[:, 3], x, on_device(np.ones(1))))
    assert rel_error(smooth_grad(net, x, [3], n=5, noise=0.3), numeric) < 1e-6


def test_integrated_gradients_completeness():
    # attributions add up to S(x) - S(baseline); the midpoint rule converges as steps grow
    net, x = relu_net(seed=3), x_batch(2, seed=3)
    ig, gap = integrated_gradients(net, x, [0, 1], baseline=on_device(np.zeros(x.shape)),
                                   steps=400)
    s = (to_numpy(net(x))[[0, 1], [0, 1]]
         - to_numpy(net(on_device(np.zeros(x.shape))))[[0, 1], [0, 1]])
    assert np.all(np.abs(gap) <= 0.01 * np.abs(s).max()), (gap, s)
    np.testing.assert_allclose(ig.reshape(2, -1).sum(axis=1) + gap, s, rtol=1e-10)


def test_shifted_smooth_grad_averages_a_stride_grid_away():
    """A 1x1 conv of stride 2 then a global mean: one gradient is zero at every odd row and
    column. Shifted by 0-1 px in turn (grid=2; noise 0, a linear net), the copies' mean is
    flat: each pixel is on an even place in one of the 4 shifts (of 5 x 5 outputs)."""
    conv = tc.Conv2d(3, 1, 1, stride=2, dtype=np.float64)
    conv.params["weight"] = on_device(np.array([1.0, -3.0, 2.0]).reshape(1, 3, 1, 1))
    net = tc.Network([("conv", conv), ("pool", tc.GlobalAvgPool2d())])
    x = x_batch(1, size=8)
    plain = smooth_grad(net, x, [0], n=4, noise=0.0)[0]
    assert (plain[:, 1::2] == 0).all() and (plain[:, ::2, ::2] != 0).all()
    flat = smooth_grad(net, x, [0], n=4, noise=0.0, grid=2)[0]
    np.testing.assert_allclose(flat, np.broadcast_to([[[1.0]], [[-3.0]], [[2.0]]], (3, 8, 8))
                               / 25 / 4)
