"""Occlusion maps (Zeiler & Fergus 2014): on a network that reads one block of the image,
and on the real SqueezeNet with a sample photo."""
import numpy as np

import tinycnn as tc
from tinycnn.backend import to_numpy
from tinycnn.io.images import class_index
from tinycnn.losses import softmax
from vis.occlusion import occlusion_map

from .conftest import on_device
from .nets import photo, real_squeezenet  # noqa: F401 (the fixture the tests ask for as net)


def test_occlusion_finds_the_pixels_the_class_depends_on():
    # a network whose class-0 score reads only the top-left 4x4 block of channel 0
    conv = tc.Conv2d(3, 1, 1, dtype=np.float64)
    conv.params = {"weight": on_device(np.array([1.0, 0, 0]).reshape(1, 3, 1, 1)),
                   "bias": on_device(np.zeros(1))}
    fc = tc.Linear(64, 2, dtype=np.float64)
    w = np.zeros((2, 64))
    w[0, [r * 8 + c for r in range(4) for c in range(4)]] = 1.0
    fc.params = {"weight": on_device(w), "bias": on_device(np.zeros(2))}
    net = tc.Network([("conv", conv), ("flatten", tc.Flatten()), ("fc", fc)])
    x = on_device(np.ones((1, 3, 8, 8)))
    heat = occlusion_map(net, x, 0, size=2, stride=2, batch_size=5)
    assert heat.shape == (4, 4)
    assert np.all(heat[:2, :2] < heat.max()) and np.allclose(heat[2:, :], heat.max())


def test_occluding_the_coffee_lowers_espresso(net):
    x = photo(net, "coffee.png")
    espresso = class_index("espresso", net.meta["classes"])
    base = float(to_numpy(softmax(net(x)))[0, espresso])
    heat = occlusion_map(net, x, espresso, size=56, stride=56)      # a 4x4 grid of big patches
    assert heat.min() < 0.7 * base and heat.max() >= 0.9 * base
