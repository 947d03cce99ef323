"""Backprop, deconvnet and guided backprop of one neuron (Springenberg et al. 2015)."""
import numpy as np

from tinycnn.backend import to_numpy
from tinycnn.gradcheck import numeric_grad, rel_error
from vis.guided_backprop import guided_backprop

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
