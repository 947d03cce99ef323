"""The two models every technique runs on.

- ``squeezenet1_1()``: SqueezeNet 1.1 (Iandola et al. 2016) on ImageNet, the model of
  CS231n's own visualisation exercises, with torchvision's layout and weights.
- ``cifar10_net()``: a VGG-style CNN trained by tinycnn itself on CIFAR-10; its weights
  ship in ``weights/`` (see weights/README.md).
"""
import numpy as np

from .io.data import CIFAR10_MEAN, CIFAR10_STD, CLASSES
from .layers import Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear, MaxPool2d, ReLU
from .net import Concat, Network, Sequential
from .io.weights import find_weights, read_torchvision_squeezenet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def fire(cin, squeeze, expand1x1, expand3x3, seed=0):
    """SqueezeNet's Fire module: squeeze 1x1 + ReLU, then expand 1x1 | expand 3x3
    (each + ReLU) side by side, concatenated on channels.

    (N, cin, H, W) -> (N, expand1x1 + expand3x3, H, W)
    Names inside: squeeze, squeeze_relu, expand (the concat), expand.1x1.conv,
    expand.1x1.relu, expand.3x3.conv, expand.3x3.relu.
    """
    return Sequential([
        ("squeeze", Conv2d(cin, squeeze, 1, seed=seed)), ("squeeze_relu", ReLU()),
        ("expand", Concat([
            ("1x1", Sequential([("conv", Conv2d(squeeze, expand1x1, 1, seed=seed + 1)),
                                ("relu", ReLU())])),
            ("3x3", Sequential([("conv", Conv2d(squeeze, expand3x3, 3, padding=1, seed=seed + 2)),
                                ("relu", ReLU())])),
        ])),
    ])


def squeezenet1_1(weights=None, *, seed=0):
    """SqueezeNet 1.1 for 224x224 ImageNet images normalised with IMAGENET_MEAN / STD.

    x (N, 3, 224, 224) -> class scores (N, 1000). Layer names: conv1, relu1, pool1,
    fire2, fire3, pool3, fire4, fire5, pool5, fire6 ... fire9, drop9, conv10,
    relu10, pool10 (global average). weights: None finds squeezenet1_1.npz (keyed by
    torchvision's names) in weights/ or $TINYCNN_WEIGHTS_DIR; a path reads that
    file; False keeps the random initialisation.
    """
    net = Network([
        ("conv1", Conv2d(3, 64, 3, stride=2, seed=seed)), ("relu1", ReLU()),
        ("pool1", MaxPool2d(3, 2, ceil_mode=True)),
        ("fire2", fire(64, 16, 64, 64, seed + 10)), ("fire3", fire(128, 16, 64, 64, seed + 20)),
        ("pool3", MaxPool2d(3, 2, ceil_mode=True)),
        ("fire4", fire(128, 32, 128, 128, seed + 30)),
        ("fire5", fire(256, 32, 128, 128, seed + 40)),
        ("pool5", MaxPool2d(3, 2, ceil_mode=True)),
        ("fire6", fire(256, 48, 192, 192, seed + 50)),
        ("fire7", fire(384, 48, 192, 192, seed + 60)),
        ("fire8", fire(384, 64, 256, 256, seed + 70)),
        ("fire9", fire(512, 64, 256, 256, seed + 80)),
        ("drop9", Dropout(0.5, seed=seed)),
        ("conv10", Conv2d(512, 1000, 1, seed=seed + 90)), ("relu10", ReLU()),
        ("pool10", GlobalAvgPool2d()),
    ])
    from .io.images import imagenet_classes
    net.meta = {"name": "squeezenet1_1", "classes": imagenet_classes(), "input_size": 224,
                "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    if weights is not False:
        path = find_weights("squeezenet1_1.npz") if weights is None else weights
        names = [name for name, _ in net.named_params()]
        net.load_state_dict(read_torchvision_squeezenet(path, names), source=str(path))
    return net


def cifar10_net(weights=None, *, seed=0):
    """VGG-style CIFAR-10 net: conv5x5 - pool - (conv3x3 x2 - pool) x2 - fc - fc.

    input (N, 3, 32, 32), normalised with CIFAR10_MEAN / CIFAR10_STD; output (N, 10).
    The first convolution is 5x5 so that its filters are big enough to look at.
    weights: None loads the shipped weights, a path loads that file, False keeps the
    random (He) initialisation drawn from ``seed``.
    """
    def conv(cin, cout, k, i):
        return Conv2d(cin, cout, k, padding=k // 2, seed=seed + i)
    net = Network([
        ("conv1", conv(3, 32, 5, 1)), ("relu1", ReLU()), ("pool1", MaxPool2d(2)),          # 16x16
        ("conv2", conv(32, 64, 3, 2)), ("relu2", ReLU()),
        ("conv3", conv(64, 64, 3, 3)), ("relu3", ReLU()), ("pool3", MaxPool2d(2)),         # 8x8
        ("conv4", conv(64, 128, 3, 4)), ("relu4", ReLU()),
        ("conv5", conv(128, 128, 3, 5)), ("relu5", ReLU()), ("pool5", MaxPool2d(2)),       # 4x4
        ("flatten", Flatten()),
        ("fc6", Linear(128 * 4 * 4, 256, seed=seed + 6)), ("relu6", ReLU()),
        ("drop6", Dropout(0.3, seed=seed)),
        ("fc7", Linear(256, 10, seed=seed + 7)),
    ])
    net.meta = {"name": "cifar10_net", "classes": CLASSES, "input_size": 32,
                "mean": CIFAR10_MEAN, "std": CIFAR10_STD}
    if weights is not False:
        net.load(find_weights("cifar10_net.npz") if weights is None else weights)
    return net


def normalize(x, net):
    """Images in [0, 1], (N, 3, H, W), normalised with the model's mean and std."""
    mean = np.asarray(net.meta["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(net.meta["std"], dtype=np.float32).reshape(1, 3, 1, 1)
    return (x - mean) / std


MODELS = {"cifar10": cifar10_net, "squeezenet": squeezenet1_1}


def load_model(name, weights=None):
    """A model by name: "cifar10" (the shipped CIFAR-10 net) or "squeezenet" (SqueezeNet 1.1)."""
    key = {"cifar10_net": "cifar10", "squeezenet1_1": "squeezenet"}.get(name, name)
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[key](weights)
