"""Techniques together on the real SqueezeNet, with the shipped weights and sample photos
(a test of one technique on the real network sits in that technique's file)."""
import numpy as np

from tinycnn.backend import to_numpy
from vis.attribution import grad_cam
from vis.saliency import saliency_map

from .nets import photo, real_squeezenet  # noqa: F401 (the fixture the tests ask for as net)


def test_the_dog_class_lives_where_the_dog_is(net):
    # dog.jpg: the dog sits in the lower-left quarter, a bicycle and a car elsewhere
    x = photo(net, "dog.jpg")
    scores = to_numpy(net(x))[0]
    dog = max(range(151, 269), key=lambda c: scores[c])     # ImageNet's dog classes are 151-268
    cam = grad_cam(net, x, [dog], "fire9")[0]                       # (13, 13)
    y, x_ = np.unravel_index(cam.argmax(), cam.shape)
    assert y >= 5 and x_ <= 6, (y, x_)
    sal = saliency_map(net, x, [dog])[0]
    assert sal[100:, :110].mean() > sal[:100, 110:].mean()    # dog region vs the car's corner
