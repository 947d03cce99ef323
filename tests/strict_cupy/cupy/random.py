"""cupy.random in the stand-in: Generator with only the methods and keywords CuPy's has."""
import numpy as _np

from . import _api, _check_kwargs, _count, _wrap, ndarray


class Generator:
    def __init__(self, numpy_generator):
        self._g = numpy_generator


def _make(name, allowed):
    def m(self, *args, **kwargs):
        _check_kwargs(f"cupy.random.Generator.{name}", kwargs, allowed)
        if "out" in kwargs and kwargs["out"] is not None:
            out = kwargs.pop("out")
            # the draw and its assignment are one launch: __setitem__ counts it
            out[...] = ndarray._from(getattr(self._g, name)(*args, size=out.shape, **kwargs))
            return out
        kwargs.pop("out", None)
        _count("launches")
        return _wrap(_np.asarray(getattr(self._g, name)(*args, **kwargs)))
    m.__name__ = name
    return m


for _name, (_sample, _kw) in _api.GENERATOR.items():
    setattr(Generator, _name, _make(_name, set(_kw)))


def default_rng(seed=None):
    return Generator(_np.random.default_rng(seed))
