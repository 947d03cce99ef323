"""Networks shared by the tests of vis/: small ones whose answers are known by hand, and
the real SqueezeNet with the shipped weights for the tests on sample photos."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import asarray
from tinycnn.io.images import load_image, preprocess
from tinycnn.models import squeezenet1_1

from .conftest import image_file, on_device


def small_net():
    """conv-relu, global average pool, linear (float64): 3 scores of a 3 x 6 x 6 image."""
    net = tc.Network([("conv", tc.Conv2d(3, 4, 3, padding=1, dtype=np.float64)),
                      ("relu", tc.ReLU()), ("pool", tc.GlobalAvgPool2d()),
                      ("fc", tc.Linear(4, 3, dtype=np.float64))])
    net.meta = {"input_size": 6, "mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    return net


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


@pytest.fixture(scope="module", name="net")
def real_squeezenet():
    """The real SqueezeNet 1.1 with the shipped weights: a fixture, which a test that imports
    it asks for as ``net``."""
    return squeezenet1_1()


def photo(net, name):
    """A sample photo, preprocessed for net; the test skips, naming the command, without it."""
    image = load_image(image_file(name))
    return asarray(preprocess(image, size=224, mean=net.meta["mean"], std=net.meta["std"]))
