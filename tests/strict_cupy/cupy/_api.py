"""The part of CuPy's API the stand-in offers: names, keyword arguments, defaults.

Each entry is ``name: (sample, keywords)``. ``keywords`` maps every keyword the
stand-in accepts to the default CuPy documents for it; ``sample(xp, a)`` returns the
positional arguments of one valid call (``a`` a small float32 matrix), so that
``tests/test_strict_cupy.py`` can call real CuPy with each keyword in turn and prove
that CuPy takes it (on a GPU machine: ``make gpu-check``). The table was written from
CuPy's API reference (docs.cupy.dev, "API reference": routines, ndarray, cupyx.scipy.ndimage)
and is checked against the installed CuPy wherever one runs with a GPU.

Names NumPy has and CuPy lacks, or keywords CuPy does not take (``initial=`` and
``where=`` of the reductions, ``copy=`` of ``asarray``), are deliberately absent,
so code that uses them fails here as it would on a GPU. Keywords CuPy takes and
NumPy does not (argmax's ``dtype=``, ``subok=None``) are left out too: the stand-in
offers what both libraries take, so code that passes here runs on either.
"""

# A keyword that names the last positional argument of the sample call (sigma=, zoom=):
# the check calls real CuPy with that argument passed by keyword instead.
REQUIRED = "required"

_UFUNC = {"out": None, "dtype": None, "casting": "same_kind"}
_REDUCE = {"axis": None, "out": None, "keepdims": False}            # max, min, all, any
_REDUCE_T = {"axis": None, "dtype": None, "out": None, "keepdims": False}   # sum, mean, prod
_STAT = {"axis": None, "dtype": None, "out": None, "ddof": 0, "keepdims": False}
_ARG = {"axis": None, "out": None, "keepdims": False}                   # argmax, argmin


def _one(xp, a):
    return (a,)


def _two(xp, a):
    return (a, a)


def _shape(xp, a):
    return ((2, 3),)


UNARY_UFUNCS = ["abs", "absolute", "negative", "exp", "log", "log1p", "expm1", "sqrt", "square", "sign",
                "tanh", "sin", "cos", "floor", "ceil", "rint", "isfinite", "isnan", "isinf",
                "logical_not", "reciprocal"]
BINARY_UFUNCS = ["add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "power",
                 "maximum", "minimum", "fmax", "fmin", "greater", "greater_equal", "less", "less_equal",
                 "equal", "not_equal", "logical_and", "logical_or", "arctan2", "hypot"]

FUNCTIONS = {
    **{name: (_one, _UFUNC) for name in UNARY_UFUNCS},
    **{name: (_two, _UFUNC) for name in BINARY_UFUNCS},
    # creation
    "zeros": (_shape, {"dtype": float, "order": "C"}),
    "ones": (_shape, {"dtype": float, "order": "C"}),
    "empty": (_shape, {"dtype": float, "order": "C"}),
    "full": (lambda xp, a: ((2, 3), 1.0), {"dtype": None, "order": "C"}),
    "zeros_like": (_one, {"dtype": None, "order": "K", "shape": None}),
    "ones_like": (_one, {"dtype": None, "order": "K", "shape": None}),
    "empty_like": (_one, {"dtype": None, "order": "K", "shape": None}),
    "full_like": (lambda xp, a: (a, 1.0), {"dtype": None, "order": "K", "shape": None}),
    "arange": (lambda xp, a: (0, 5), {"step": 1, "dtype": None}),
    "linspace": (lambda xp, a: (0.0, 1.0), {"num": 50, "endpoint": True, "retstep": False,
                                             "dtype": None, "axis": 0}),
    "eye": (lambda xp, a: (3,), {"M": None, "k": 0, "dtype": float, "order": "C"}),
    "meshgrid": (lambda xp, a: (a[0], a[1]), {"indexing": "xy", "sparse": False, "copy": True}),  # 1-D only
    "asarray": (_one, {"dtype": None, "order": None}),
    "array": (_one, {"dtype": None, "copy": True, "order": "K", "subok": False, "ndmin": 0}),
    "ascontiguousarray": (_one, {"dtype": None}),
    "asnumpy": (_one, {"stream": None, "order": "C", "out": None}),
    "get_array_module": (_one, {}),
    # shape
    "reshape": (lambda xp, a: (a, (-1,)), {"order": "C"}),
    "transpose": (_one, {"axes": None}),
    "ravel": (_one, {"order": "C"}),
    "squeeze": (_one, {"axis": None}),
    "expand_dims": (lambda xp, a: (a, 0), {}),
    "moveaxis": (lambda xp, a: (a, 0, 1), {}),
    "swapaxes": (lambda xp, a: (a, 0, 1), {}),
    "broadcast_to": (lambda xp, a: (a, (2, 2, 3)), {}),
    "concatenate": (lambda xp, a: ([a, a],), {"axis": 0, "out": None, "dtype": None, "casting": "same_kind"}),
    "stack": (lambda xp, a: ([a, a],), {"axis": 0, "out": None, "dtype": None, "casting": "same_kind"}),
    "pad": (lambda xp, a: (a, 1), {"mode": "constant", "constant_values": 0}),
    "roll": (lambda xp, a: (a, 1), {"axis": None}),
    "flip": (_one, {"axis": None}),
    "repeat": (lambda xp, a: (a, 2), {"axis": None}),
    "tile": (lambda xp, a: (a, 2), {}),
    "split": (lambda xp, a: (a, 2), {"axis": 0}),
    # indexing and sorting
    "where": (lambda xp, a: (a > 0, a, a), {}),
    "take": (lambda xp, a: (a, xp.asarray([0, 1])), {"axis": None, "out": None}),
    "take_along_axis": (lambda xp, a: (a, xp.zeros((2, 1), dtype=xp.int64), 1), {}),
    "argsort": (_one, {"axis": -1, "kind": None}),
    "sort": (_one, {"axis": -1, "kind": None}),
    "argpartition": (lambda xp, a: (a, 0), {"axis": -1}),
    "nonzero": (_one, {}),
    "flatnonzero": (_one, {}),
    "unravel_index": (lambda xp, a: (xp.asarray([1, 2]), (2, 2)), {"order": "C"}),
    "clip": (lambda xp, a: (a, 0, 1), {"out": None}),
    # reductions and statistics
    "sum": (_one, _REDUCE_T), "mean": (_one, _REDUCE_T), "prod": (_one, _REDUCE_T),
    "max": (_one, _REDUCE), "min": (_one, _REDUCE), "amax": (_one, _REDUCE), "amin": (_one, _REDUCE),
    "all": (_one, _REDUCE), "any": (_one, _REDUCE),
    "argmax": (_one, _ARG), "argmin": (_one, _ARG),
    "std": (_one, _STAT), "var": (_one, _STAT),
    "cumsum": (_one, {"axis": None, "dtype": None, "out": None}),
    "percentile": (lambda xp, a: (a, 50), {"axis": None, "out": None, "overwrite_input": False,
                                          "method": "linear", "keepdims": False}),
    "quantile": (lambda xp, a: (a, 0.5), {"axis": None, "out": None, "overwrite_input": False,
                                         "method": "linear", "keepdims": False}),
    "median": (_one, {"axis": None, "out": None, "overwrite_input": False, "keepdims": False}),
    "count_nonzero": (_one, {"axis": None}),
    "allclose": (_two, {"rtol": 1e-05, "atol": 1e-08, "equal_nan": False}),
    "isclose": (_two, {"rtol": 1e-05, "atol": 1e-08, "equal_nan": False}),
    "array_equal": (_two, {"equal_nan": False}),
    # linear algebra
    "matmul": (lambda xp, a: (a, a.T), {"out": None, "dtype": None, "casting": "same_kind"}),
    "dot": (lambda xp, a: (a, a.T), {"out": None}),
    "tensordot": (_two, {"axes": 2}),
    "einsum": (lambda xp, a: ("ij,ij->i", a, a), {"dtype": None}),          # no out= in CuPy
    "outer": (_two, {"out": None}),
    "result_type": (_two, {}),
}

# ndarray methods: keyword -> default, sample positional arguments
METHODS = {
    "sum": ((), _REDUCE_T), "mean": ((), _REDUCE_T), "prod": ((), _REDUCE_T),
    "max": ((), _REDUCE), "min": ((), _REDUCE), "all": ((), _REDUCE), "any": ((), _REDUCE),
    "argmax": ((), _ARG), "argmin": ((), _ARG),
    "std": ((), _STAT), "var": ((), _STAT),
    "cumsum": ((), {"axis": None, "dtype": None, "out": None}),
    "reshape": (((-1,),), {"order": "C"}),
    "transpose": ((), {}),
    "astype": (("float64",), {"order": "K", "copy": True}),
    "copy": ((), {"order": "C"}),
    "ravel": ((), {"order": "C"}),
    "flatten": ((), {"order": "C"}),
    "squeeze": ((), {"axis": None}),
    "swapaxes": ((0, 1), {}),
    "clip": ((0, 1), {"out": None}),
    "dot": (("transpose",), {"out": None}),
    "take": (((0,),), {"axis": None, "out": None}),
    "repeat": ((2,), {"axis": None}),
    "argsort": ((), {"axis": -1, "kind": None}),
    "nonzero": ((), {}),
    "fill": ((0,), {}),
    "view": ((), {"dtype": None}),
    "tolist": ((), {}),
    "get": ((), {"stream": None, "order": "C", "out": None}),
}

NDIMAGE = {
    "gaussian_filter": (lambda xp, a: (a, 1.0), {"sigma": REQUIRED, "order": 0, "output": None, "mode": "reflect",
                                               "cval": 0.0, "truncate": 4.0}),
    "gaussian_filter1d": (lambda xp, a: (a, 1.0), {"axis": -1, "order": 0, "output": None,
                                                 "mode": "reflect", "cval": 0.0, "truncate": 4.0}),
    "zoom": (lambda xp, a: (a, 2), {"zoom": REQUIRED, "output": None, "order": 3, "mode": "constant", "cval": 0.0,
                                   "prefilter": True, "grid_mode": False}),
    "correlate1d": (lambda xp, a: (a, xp.ones(3, dtype=a.dtype)), {"axis": -1, "output": None,
                                                                  "mode": "reflect", "cval": 0.0, "origin": 0}),
    "convolve1d": (lambda xp, a: (a, xp.ones(3, dtype=a.dtype)), {"axis": -1, "output": None,
                                                                 "mode": "reflect", "cval": 0.0, "origin": 0}),
    "uniform_filter": (lambda xp, a: (a, 3), {"output": None, "mode": "reflect", "cval": 0.0, "origin": 0}),
}

# Generator methods (cupy.random.default_rng); CuPy's Generator has no ``normal``,
# ``choice`` or ``permutation`` (its API reference lists what it has).
GENERATOR = {
    "random": ((), {"size": None, "dtype": "float64", "out": None}),
    "standard_normal": ((), {"size": None, "dtype": "float64", "out": None}),
    "integers": ((0, 10), {"size": None, "dtype": "int64", "endpoint": False}),
    "uniform": ((), {"low": 0.0, "high": 1.0, "size": None}),
}

# CUDA C kernels (cupy.RawModule, cupy.RawKernel), compiled with g++ through cuda_shim.h in
# the stand-in (_raw.py). The sample call builds the object; LAUNCH is the one keyword of a
# kernel's __call__(grid, block, args) the stand-in takes.
RAW_SOURCE = r'''
extern "C" __global__ void standin_probe(float* y, int n)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    y[i] = 2.0f * y[i];
}
'''
RAW = {
    "RawModule": (lambda xp, a: (RAW_SOURCE,), {"code": REQUIRED, "options": (),
                                               "name_expressions": None}),
    "RawKernel": (lambda xp, a: (RAW_SOURCE, "standin_probe"), {"options": ()}),
}
LAUNCH = {"shared_mem": 0}
