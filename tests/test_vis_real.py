"""The techniques on the real SqueezeNet, with the shipped weights and sample photos."""
import numpy as np
import pytest

from tinycnn.backend import asarray, to_numpy
from tinycnn.io.images import class_index, load_image, preprocess
from tinycnn.losses import softmax
from tinycnn.models import squeezenet1_1
from vis.attribution import grad_cam
from vis.occlusion import occlusion_map
from vis.saliency import saliency_map

from .conftest import image_file


@pytest.fixture(scope="module")
def net():
    return squeezenet1_1()


def photo(net, name):
    image = load_image(image_file(name))
    return asarray(preprocess(image, size=224, mean=net.meta["mean"], std=net.meta["std"]))


def test_the_dog_class_lives_where_the_dog_is(net):
    # dog.jpg: the dog sits in the lower-left quarter, a bicycle and a car elsewhere
    x = photo(net, "dog.jpg")
    scores = to_numpy(net(x))[0]
    dog = max(range(151, 269), key=lambda c: scores[c])           # ImageNet's dog classes are 151-268
    cam = grad_cam(net, x, [dog], "fire9")[0]                       # (13, 13)
    y, x_ = np.unravel_index(cam.argmax(), cam.shape)
    assert y >= 5 and x_ <= 6, (y, x_)
    sal = saliency_map(net, x, [dog])[0]
    assert sal[100:, :110].mean() > sal[:100, 110:].mean()          # dog region vs the car's corner


def test_occluding_the_coffee_lowers_espresso(net):
    x = photo(net, "coffee.png")
    espresso = class_index("espresso", net.meta["classes"])
    base = float(to_numpy(softmax(net(x)))[0, espresso])
    heat = occlusion_map(net, x, espresso, size=56, stride=56)      # a 4x4 grid of big patches
    assert heat.min() < 0.7 * base and heat.max() >= 0.9 * base
