"""Backprop, deconvnet and guided backprop of one neuron (Springenberg et al. 2015)."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import to_numpy
from tinycnn.gradcheck import numeric_grad, rel_error
from vis.guided_backprop import gridless_guided_backprop, guided_backprop

from .conftest import on_device
from .nets import relu_net, x_batch


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


@pytest.mark.parametrize("rule", ["backprop", "deconvnet", "guided"])
def test_the_shifts_spread_a_stride_2_neurons_pixel_over_its_grid_cell(rule):
    """A 1x1 convolution of stride 2: its neuron (2, 1) sees the one pixel (4, 2), so one
    gradient is a grid's single point. Over the image moved by 0-1 pixels down and across, the
    same neuron sees (4, 2), (3, 2), (4, 1) and (3, 1) in turn: the mean spreads the weights
    over that 2 x 2 cell, a quarter each, whatever the rule (no ReLU below the neuron)."""
    conv = tc.Conv2d(3, 1, 1, stride=2, dtype=np.float64)
    w = np.array([1.0, -3.0, 2.0])
    conv.params["weight"] = on_device(w.reshape(1, 3, 1, 1))
    conv.params["bias"] = on_device(np.zeros(1))
    net = tc.Network([("conv", conv)])
    x = np.zeros((1, 3, 8, 8))
    x[0, :, 4, 2] = [1.0, 0.0, 1.0]          # the conv fires most at (2, 1): 3
    one = gridless_guided_backprop(net, on_device(x), "conv", 0, rule, grid=1)[0]
    expected = np.zeros((3, 8, 8))
    expected[:, 4, 2] = w
    np.testing.assert_allclose(one, expected)
    expected[:] = 0
    expected[:, 3:5, 1:3] = w[:, None, None] / 4
    np.testing.assert_allclose(gridless_guided_backprop(net, on_device(x), "conv", 0, rule,
                                                        grid=2)[0], expected)
