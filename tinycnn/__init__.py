"""tinycnn: a from-scratch CNN (NumPy / CuPy) with hand-written backward passes."""
from . import backend
from .image_layers import InstanceNorm2d, ReflectionPad2d, Upsample2d
from .layers import (AvgPool2d, Conv2d, Dropout, Flatten, GlobalAvgPool2d, Linear, MaxPool2d, ReLU,
                     RELU_RULES, ShapeError)
from .losses import softmax, softmax_cross_entropy
from .net import Cache, Concat, Network, Residual, Sequential, UnknownLayerError
from .io.weights import StateDictError

__all__ = [
    "backend",
    "AvgPool2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "GlobalAvgPool2d",
    "InstanceNorm2d",
    "Linear",
    "MaxPool2d",
    "ReflectionPad2d",
    "ReLU",
    "RELU_RULES",
    "ShapeError",
    "Upsample2d",
    "softmax",
    "softmax_cross_entropy",
    "Cache",
    "Concat",
    "Network",
    "Residual",
    "Sequential",
    "StateDictError",
    "UnknownLayerError",
]
__version__ = "0.1.0"
