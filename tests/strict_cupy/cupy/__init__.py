"""A strict CuPy stand-in: CuPy's rules on the CPU, so host/device mistakes fail in CI.

Put ``tests/strict_cupy`` first on ``PYTHONPATH`` and set ``TINYCNN_BACKEND=cupy``:
tinycnn then imports this package as ``cupy``. Its arrays wrap NumPy arrays but
behave like CuPy's where CuPy differs from NumPy:

- they are a distinct type whose module starts with ``cupy``; ``.get()`` returns NumPy;
- implicit conversion to NumPy (``np.asarray``, NumPy functions, SciPy, Pillow) raises
  TypeError with CuPy's own message;
- a NumPy array inside a device operation raises TypeError ("Unsupported type");
- only the functions, methods and keyword arguments listed in ``_api.py`` exist
  (checked against real CuPy by ``tests/test_strict_cupy.py`` on a GPU);
- reductions and integer indexing return 0-d arrays, not Python scalars.

Stricter than CuPy, on purpose: an elementwise operation or product that turns
float32 arrays into float64 (a float64 NumPy scalar or array mixed in) raises, and
every device->host transfer (``get``, ``float()``, ``int()``, ``bool()``, ``item``,
``tolist``) is counted in ``_standin_counters`` so tests can bound the
synchronisations per optimisation step.

``RawModule``/``RawKernel`` compile the same CUDA C source with the system C++ compiler
and run it on the CPU (``_raw.py``); unlike CuPy they check every kernel argument's type,
and count launches in ``_standin_counters["launches"]``. Without a C++ compiler on the
machine they are absent (``hasattr(cupy, "RawModule")`` is False).

Every other call that would launch a kernel on a GPU counts once there too (one call, one
count, however many kernels CuPy runs for it): elementwise functions and operators (in
place too), reductions, products, creation that fills memory (not ``empty``), copies,
``concatenate``/``stack``, each ``__setitem__``, random draws, ndimage filters. Views
(a reshape that needs no copy, transpose, basic slicing, ``broadcast_to``) and host<->device
transfers count no launch.

What it cannot show: kernel speed, GPU memory, CuPy's own numerics.
"""
import builtins as _builtins

import numpy as _np

from . import _api

__version__ = "0.0.0-strict-standin"
_standin = True
_standin_counters = {"d2h": 0, "h2d": 0, "launches": 0}

_IMPLICIT = ("Implicit conversion to a NumPy array is not allowed. "
             "Please use `.get()` to construct a NumPy array explicitly.")

# dtypes and constants are NumPy's own objects in CuPy too
for _name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
              "uint32", "uint64", "bool_", "intp", "complex64", "complex128", "dtype", "inf", "nan",
              "pi", "e", "newaxis", "integer", "floating", "number", "generic"):
    globals()[_name] = getattr(_np, _name)


class PromotionError(TypeError):
    """float32 work silently turned into float64 (stricter than CuPy, on purpose)."""


def _unwrap(v, what="argument"):
    """The NumPy array behind a stand-in array; NumPy arrays are refused."""
    if isinstance(v, ndarray):
        return v._a
    if isinstance(v, _np.ndarray):
        raise TypeError(f"Unsupported type {type(v)}")
    if isinstance(v, (list, tuple)):
        return type(v)(_unwrap(e, what) for e in v)
    return v


def _wrap(v):
    if isinstance(v, _np.ndarray):
        return ndarray._from(v)
    if isinstance(v, _np.generic):           # CuPy returns 0-d arrays, never NumPy scalars
        return ndarray._from(_np.asarray(v))
    if isinstance(v, tuple):
        return tuple(_wrap(e) for e in v)
    if isinstance(v, list):
        return [_wrap(e) for e in v]
    return v


def _check_promotion(name, inputs, result):
    if not isinstance(result, _np.ndarray) or result.dtype != _np.float64:
        return
    arrays = [a for a in inputs if isinstance(a, _np.ndarray)]
    if _builtins.any(a.dtype == _np.float32 for a in arrays) and _builtins.any(
            isinstance(a, (_np.float64, _np.ndarray)) and getattr(a, "dtype", None) == _np.float64
            for a in inputs):
        raise PromotionError(f"stand-in: {name} turned float32 arrays into float64 (a float64 array or "
                             "NumPy scalar was mixed in); on a GPU this runs at a fraction of the speed")


def _check_kwargs(name, kwargs, allowed):
    bad = [k for k in kwargs if k not in allowed]
    if bad:
        raise TypeError(f"{name}() got an unexpected keyword argument '{bad[0]}' (CuPy does not take it)")


def _device_args(args, kwargs):
    """Unwrap; inside device operations NumPy arrays are refused."""
    return [_unwrap(a) for a in args], {k: _unwrap(v) for k, v in kwargs.items()}


def _copied(result, source):
    """1 when result is new memory (a copy launched a kernel), 0 for a view of source."""
    if not isinstance(result, _np.ndarray) or result.size == 0:
        return 0
    return 0 if _np.may_share_memory(result, source) else 1


# functions that only make views (or allocate without filling): no kernel on a GPU
_NO_LAUNCH = {"empty", "empty_like", "transpose", "squeeze", "expand_dims", "moveaxis", "swapaxes",
              "broadcast_to", "split", "flip"}
_VIEW_OR_COPY = {"reshape", "ravel"}          # a kernel only when the data must move


def _launches(name, a, k, result):
    """How many launches one call of the function ``name`` counts (0 or 1)."""
    if name in _NO_LAUNCH:
        return 0
    if name in _VIEW_OR_COPY:
        return _copied(result, a[0])
    if name == "meshgrid" and not k.get("copy", True):
        return 0
    return 1


def _make_function(name, allowed, numpy_func):
    def f(*args, **kwargs):
        _check_kwargs(name, kwargs, allowed)
        a, k = _device_args(args, kwargs)
        if "out" in k and k["out"] is not None and not isinstance(kwargs["out"], ndarray):
            raise TypeError(f"Unsupported type {type(kwargs['out'])} for out")
        flat_inputs = [e for v in a for e in (v if isinstance(v, (list, tuple)) else (v,))]
        result = numpy_func(*a, **k)
        _check_promotion(name, flat_inputs, result)
        _count("launches", _launches(name, a, k, result))
        if "out" in kwargs and kwargs["out"] is not None:
            return kwargs["out"]
        return _wrap(result)
    f.__name__ = f.__qualname__ = name
    f.__module__ = "cupy"
    return f


def _numpy_name(name):
    return "divide" if name == "true_divide" else name


for _name, (_sample, _kw) in _api.FUNCTIONS.items():
    if _name in ("asarray", "array", "asnumpy", "get_array_module", "ascontiguousarray", "result_type"):
        continue
    globals()[_name] = _make_function(_name, set(_kw), getattr(_np, _numpy_name(_name)))


def _count(kind, n=1):
    _standin_counters[kind] += n


def asarray(a, dtype=None, order=None):
    """Host -> device copy when ``a`` is NumPy data (counted), else a view or cast."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == _np.dtype(dtype) else a.astype(dtype)
    _count("h2d")
    return ndarray._from(_np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0):
    if isinstance(obj, ndarray):
        result = _np.array(obj._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin)
        _count("launches", _copied(result, obj._a))
        return ndarray._from(result)
    _count("h2d")
    return ndarray._from(_np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def ascontiguousarray(a, dtype=None):
    source = _unwrap(a)
    result = _np.ascontiguousarray(source, dtype=dtype)
    if isinstance(source, _np.ndarray):
        _count("launches", _copied(result, source))
    return ndarray._from(result)


def asnumpy(a, stream=None, order="C", out=None):
    if isinstance(a, ndarray):
        return a.get(order=order, out=out)
    return _np.asarray(a, order=order)


def result_type(*arrays_and_dtypes):
    return _np.result_type(*[_unwrap(a) for a in arrays_and_dtypes])


def get_array_module(*args):
    import sys
    return sys.modules[__name__] if _builtins.any(isinstance(a, ndarray) for a in args) else _np


class _Flags:
    def __init__(self, a):
        self.c_contiguous = a.flags.c_contiguous
        self.f_contiguous = a.flags.f_contiguous
        self.owndata = a.flags.owndata

    def __getitem__(self, key):
        return {"C_CONTIGUOUS": self.c_contiguous, "F_CONTIGUOUS": self.f_contiguous,
                "OWNDATA": self.owndata}[key]


def _binary(op):
    def f(self, other):
        o = _unwrap(other)
        if isinstance(o, (list, tuple)):
            raise TypeError(f"Unsupported type {type(other)}")
        result = op(self._a, o)
        _check_promotion(op.__name__, [self._a, o], result)
        _count("launches")
        return _wrap(result)
    return f


def _inplace(op):
    def f(self, other):
        o = _unwrap(other)
        op(self._a, o)
        _count("launches")
        return self
    return f


class ndarray:
    """A device array of the stand-in: NumPy data behind CuPy's rules."""
    __slots__ = ("_a",)
    __module__ = "cupy"

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        raise TypeError(f"numpy.{ufunc.__name__} got a cupy.ndarray: {_IMPLICIT} "
                        f"(stand-in: use the cupy function or xp.{ufunc.__name__})")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} got a cupy.ndarray: {_IMPLICIT} "
                        f"(stand-in: use the cupy function or xp.{func.__name__})")

    def __init__(self, shape, dtype=float, memptr=None, strides=None, order="C"):
        self._a = _np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _from(cls, a):
        obj = object.__new__(cls)
        obj._a = a
        return obj

    # -- the host boundary -------------------------------------------------------
    def __array__(self, *args, **kwargs):
        raise TypeError(_IMPLICIT)

    def get(self, stream=None, order="C", out=None):
        _count("d2h")
        if out is not None:
            if not isinstance(out, _np.ndarray):
                raise TypeError("Only numpy.ndarray can be obtained from cupy.ndarray")
            out[...] = self._a
            return out
        return _np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, _np.ndarray):
            raise TypeError(f"Only numpy.ndarray can be set to cupy.ndarray, not {type(arr)}")
        _count("h2d")
        self._a[...] = arr

    def item(self):
        _count("d2h")
        return self._a.item()

    def tolist(self):
        _count("d2h")
        return self._a.tolist()

    def __float__(self):
        _count("d2h")
        return float(self._a)

    def __int__(self):
        _count("d2h")
        return int(self._a)

    def __complex__(self):
        _count("d2h")
        return complex(self._a)

    def __bool__(self):
        if self._a.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous.")
        _count("d2h")
        return bool(self._a)

    def __repr__(self):
        return "stand-in " + repr(self._a)

    __str__ = __repr__

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (ndarray._from(self._a[i]) for i in range(len(self._a)))

    def __len__(self):
        return len(self._a)

    def __hash__(self):
        raise TypeError("unhashable type: 'cupy.ndarray'")

    # -- attributes ----------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a))
    T = property(lambda self: ndarray._from(self._a.T))
    real = property(lambda self: ndarray._from(self._a.real))

    @property
    def imag(self):
        if not _np.iscomplexobj(self._a):
            _count("launches")              # CuPy fills a new array with zeros
        return ndarray._from(self._a.imag)

    # -- indexing --------------------------------------------------------------------
    @staticmethod
    def _key(key):
        parts = key if isinstance(key, tuple) else (key,)
        for p in parts:
            if isinstance(p, _np.ndarray):
                raise TypeError(f"Unsupported type {type(p)} as an index: move it to the device first")
        return _unwrap(key)

    @staticmethod
    def _advanced(key):
        """Advanced indexing (an array, a list or a bool in the key) gathers with a kernel;
        basic indexing (integers, slices, None, Ellipsis) makes a view."""
        parts = key if isinstance(key, tuple) else (key,)
        return _builtins.any(isinstance(p, (_np.ndarray, list, bool, _np.bool_)) for p in parts)

    def __getitem__(self, key):
        k = self._key(key)
        result = self._a[k]
        if self._advanced(k):
            _count("launches")
        return _wrap(result)

    def __setitem__(self, key, value):
        if isinstance(value, (list, tuple)):
            raise TypeError(f"Unsupported type {type(value)}")
        self._a[self._key(key)] = _unwrap(value)
        _count("launches")

    # -- shape -----------------------------------------------------------------------
    def reshape(self, *shape, order="C"):
        result = self._a.reshape(*shape, order=order)
        _count("launches", _copied(result, self._a))
        return ndarray._from(result)

    def transpose(self, *axes):
        return ndarray._from(self._a.transpose(*axes))

    def view(self, dtype=None):
        return ndarray._from(self._a.view() if dtype is None else self._a.view(dtype))

    def fill(self, value):
        self._a.fill(_unwrap(value))
        _count("launches")

    def __copy__(self):
        _count("launches")
        return ndarray._from(self._a.copy())

    def __deepcopy__(self, memo):
        _count("launches")
        return ndarray._from(self._a.copy())

    # -- operators ---------------------------------------------------------------------
    import operator as _op
    __add__, __radd__ = _binary(_op.add), _binary(lambda a, b: b + a)
    __sub__, __rsub__ = _binary(_op.sub), _binary(lambda a, b: b - a)
    __mul__, __rmul__ = _binary(_op.mul), _binary(lambda a, b: b * a)
    __truediv__, __rtruediv__ = _binary(_op.truediv), _binary(lambda a, b: b / a)
    __floordiv__, __rfloordiv__ = _binary(_op.floordiv), _binary(lambda a, b: b // a)
    __mod__ = _binary(_op.mod)
    __pow__, __rpow__ = _binary(_op.pow), _binary(lambda a, b: b ** a)
    __matmul__, __rmatmul__ = _binary(_op.matmul), _binary(lambda a, b: b @ a)
    __and__, __or__, __xor__ = _binary(_op.and_), _binary(_op.or_), _binary(_op.xor)
    __rand__, __ror__ = _binary(lambda a, b: b & a), _binary(lambda a, b: b | a)
    __lt__, __le__, __gt__, __ge__ = _binary(_op.lt), _binary(_op.le), _binary(_op.gt), _binary(_op.ge)
    __eq__, __ne__ = _binary(_op.eq), _binary(_op.ne)
    __iadd__, __isub__, __imul__ = _inplace(_op.iadd), _inplace(_op.isub), _inplace(_op.imul)
    __itruediv__, __ipow__ = _inplace(_op.itruediv), _inplace(_op.ipow)
    __imatmul__ = _inplace(_op.imatmul)
    __iand__, __ior__ = _inplace(_op.iand), _inplace(_op.ior)
    del _op

    def __neg__(self):
        _count("launches")
        return ndarray._from(-self._a)

    def __pos__(self):
        _count("launches")
        return ndarray._from(+self._a)

    def __abs__(self):
        _count("launches")
        return ndarray._from(_np.abs(self._a))

    def __invert__(self):
        _count("launches")
        return ndarray._from(~self._a)


def _make_method(name, allowed):
    def m(self, *args, **kwargs):
        _check_kwargs(f"cupy.ndarray.{name}", kwargs, allowed)
        a, k = _device_args(args, kwargs)
        if name == "astype" and "copy" in k:
            k["copy"] = bool(k["copy"])
        result = getattr(self._a, name)(*a, **k)
        if name in ("squeeze", "swapaxes"):
            pass                                        # views
        elif name in ("astype", "ravel"):
            _count("launches", _copied(result, self._a))    # astype(copy=False) may be a view
        else:
            _count("launches")
        if "out" in kwargs and kwargs["out"] is not None:
            return kwargs["out"]
        return _wrap(result)
    m.__name__ = name
    return m


for _name, (_sample, _kw) in _api.METHODS.items():
    if _name not in ndarray.__dict__ and not _name.startswith("_") and _name not in (
            "get", "item", "tolist", "reshape", "transpose", "view", "fill"):
        setattr(ndarray, _name, _make_method(_name, set(_kw)))


from . import cuda, random, linalg  # noqa: E402,F401  (after ndarray exists)
from . import _raw  # noqa: E402  (CUDA C source run on the CPU)
if _raw.compiler_found():       # without a C++ compiler the stand-in is a CuPy without them
    RawKernel, RawModule = _raw.RawKernel, _raw.RawModule


def get_default_memory_pool():
    return cuda._MemoryPool()


def get_default_pinned_memory_pool():
    return cuda._MemoryPool()
