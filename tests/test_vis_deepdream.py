"""DeepDream (Mordvintsev et al. 2015): its objective's gradient by finite differences,
and the octaves raising the layer's energy."""
import numpy as np
import pytest
from hypothesis import given

from tinycnn.backend import to_numpy
from tinycnn.gradcheck import numeric_grad, rel_error

from .conftest import on_device
from .nets import small_net
from .strategies import seeds


@pytest.mark.gradcheck
@given(seeds)
def test_deepdream_objective_gradient(seed):
    from vis.deepdream import dream_objective
    net = small_net()
    x = on_device(np.random.default_rng(seed).standard_normal((1, 3, 6, 6)))
    f = dream_objective(net, "relu")
    numeric = numeric_grad(lambda: float(f(x)[0]), x, np.ones(()))
    assert rel_error(to_numpy(f(x)[1]), to_numpy(numeric)) < 1e-6


def test_deepdream_amplifies_the_layer():
    from vis.deepdream import deepdream
    net = small_net().astype(np.float32)
    x = on_device(np.random.default_rng(0).normal(0, 0.5, (1, 3, 12, 12)).astype(np.float32))
    out = deepdream(net, x, "relu", octaves=2, steps=5)
    energy = [float((to_numpy(net.activations(on_device(a.astype(np.float32)),
                                              "relu")["relu"]) ** 2).sum())
              for a in (to_numpy(x), out)]
    assert out.shape == x.shape and energy[1] > energy[0]
