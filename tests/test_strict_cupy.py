"""The strict CuPy stand-in (tests/strict_cupy) is as strict as CuPy, and no stricter in
its names: on the stand-in, each rule is shown to bite; on a real GPU, every name and
keyword the stand-in offers is called on real CuPy (make gpu-check runs this there)."""
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest


ROOT = Path(__file__).resolve().parent


def _api():
    """tests/strict_cupy/cupy/_api.py, loaded by path (it must not shadow a real CuPy)."""
    spec = importlib.util.spec_from_file_location(
        "strict_cupy_api", ROOT / "strict_cupy" / "cupy" / "_api.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cupy_kind():
    """"standin", "gpu" or None: what `import cupy` gives on this run."""
    if importlib.util.find_spec("cupy") is None:
        return None
    import cupy
    if getattr(cupy, "_standin", False):
        return "standin"
    try:
        return "gpu" if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:
        return None


standin_only = pytest.mark.skipif(
    _cupy_kind() != "standin",
    reason="the strict stand-in is not on the path "
    "(make test runs this file a second time with it)",
)
gpu_only = pytest.mark.skipif(
    _cupy_kind() != "gpu", reason="needs CuPy and a GPU (make gpu-check)"
)
# the stand-in's RawModule compiles CUDA C with the system C++ compiler (tests/strict_cupy)
_CXX = os.environ.get("CXX", "g++")
_HAS_CXX = shutil.which(_CXX) is not None
standin_kernels = pytest.mark.skipif(
    _cupy_kind() != "standin" or not _HAS_CXX,
    reason=f"no C++ compiler ({_CXX!r}) to run CUDA C on the CPU" if _HAS_CXX is False
    else "the strict stand-in is not on the path (make test runs this file a second time with it)",
)
any_kernels = pytest.mark.skipif(
    not (_cupy_kind() == "gpu" or (_cupy_kind() == "standin" and _HAS_CXX)),
    reason="needs CuPy and a GPU, or the strict stand-in on the path and a C++ compiler "
    f"({_CXX!r}) to run CUDA C on the CPU",
)

# y <- a * x + y, one thread per element: the kernel contract of tinycnn's engine in small
# (one template body, one extern "C" wrapper per type, 1-D index, bounds check).
SAXPY = r'''
template <typename T>
__device__ void saxpy_body(const T* __restrict__ x, T* __restrict__ y, T a, long long total)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= total) return;
    y[i] = a * x[i] + y[i];
}
extern "C" __global__ void saxpy_f32(const float* x, float* y, float a, long long total)
{ saxpy_body(x, y, a, total); }
extern "C" __global__ void saxpy_f64(const double* x, double* y, double a, long long total)
{ saxpy_body(x, y, a, total); }
'''


@standin_only
def test_standin_refuses_what_cupy_refuses():
    import cupy
    a = cupy.asarray(np.ones((2, 3), np.float32))
    assert type(a).__module__.startswith("cupy") and isinstance(a.get(), np.ndarray)
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.exp(a)
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        a + np.ones(3, np.float32)
    with pytest.raises(TypeError, match="Unsupported type <class 'numpy.ndarray'>"):
        cupy.maximum(a, np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="unexpected keyword argument 'initial'"):
        a.max(initial=0)
    with pytest.raises(AttributeError):
        cupy.random.default_rng(0).normal                  # CuPy's Generator has no normal()
    with pytest.raises(TypeError, match="float64"):
        # stricter than CuPy: silent float64 work
        a * np.float64(0.5)
    assert isinstance(a.sum(), cupy.ndarray) and a.sum().shape == ()   # 0-d arrays, not scalars
    before = cupy._standin_counters["d2h"]
    float(a.sum()), a.get(), int(a[0, 0])
    assert cupy._standin_counters["d2h"] == before + 3


@standin_only
def test_standin_counts_a_launch_per_call_that_runs_a_kernel_and_none_per_view():
    import cupy
    a = cupy.asarray(np.arange(12, dtype=np.float32).reshape(3, 4))

    def launches(call):
        before = cupy._standin_counters["launches"]
        call()
        return cupy._standin_counters["launches"] - before

    def assign():
        a[0, 1:] = 2.0

    assert launches(lambda: a * 2) == 1                 # elementwise
    assert launches(lambda: a.sum(axis=0)) == 1         # reduction
    assert launches(assign) == 1                        # one __setitem__
    assert launches(lambda: a.reshape(4, 3)) == 0       # views
    assert launches(lambda: a.transpose()) == 0
    assert launches(lambda: a[1:, ::2]) == 0
    assert launches(lambda: a.T.reshape(12)) == 1       # a reshape that must copy
    assert launches(lambda: (cupy.empty((2, 2)), a.get())) == 0     # no fill, a transfer


@any_kernels
@pytest.mark.parametrize("dtype, suffix", [(np.float32, "f32"), (np.float64, "f64")])
@pytest.mark.parametrize("total, threads", [(1, 32), (100, 32), (257, 128), (1000, 1)])
def test_raw_module_runs_a_template_kernel_like_numpy(dtype, suffix, total, threads):
    import cupy
    rng = np.random.default_rng(total)
    x, y = rng.uniform(0.5, 2.0, total).astype(dtype), rng.uniform(0.5, 2.0, total).astype(dtype)
    a = dtype(1.5)
    saxpy = cupy.RawModule(code=SAXPY, options=("--std=c++14",)).get_function(f"saxpy_{suffix}")
    x_dev, y_dev = cupy.asarray(x), cupy.asarray(y)
    saxpy(((total + threads - 1) // threads,), (threads,), (x_dev, y_dev, a, np.int64(total)))
    expected = a * x + y                                     # NumPy, in the same dtype
    assert expected.dtype == dtype
    if _cupy_kind() == "standin":
        np.testing.assert_array_equal(y_dev.get(), expected)
    else:                                     # nvcc fuses a * x + y (one rounding, not two)
        np.testing.assert_allclose(y_dev.get(), expected, rtol=4 * np.finfo(dtype).eps)
    np.testing.assert_array_equal(x_dev.get(), x)           # the const input is untouched


@standin_kernels
def test_standin_raw_kernel_refuses_what_cupy_misreads():
    import cupy
    saxpy = cupy.RawModule(code=SAXPY).get_function("saxpy_f32")
    x = cupy.ones(8, dtype=cupy.float32)
    y = cupy.zeros(8, dtype=cupy.float32)
    a, n = np.float32(2), np.int64(8)
    before = cupy._standin_counters["launches"]
    saxpy((1,), (8,), (x, y, a, n))
    assert cupy._standin_counters["launches"] == before + 1
    bad = {
        "parameter 0 .*float32.*float64": (x.astype(cupy.float64), y, a, n),
        "parameter 0 .*cupy.ndarray": (np.ones(8, np.float32), y, a, n),
        "parameter 1 .*C-contiguous": (x, cupy.zeros(16, dtype=cupy.float32)[::2], a, n),
        "parameter 2 .*numpy.float32.*got float": (x, y, 2.0, n),  # CuPy: 8 bytes, misread
        "parameter 2 .*numpy.float32.*got float64": (x, y, np.float64(2), n),
        "parameter 3 .*numpy.int64.*got int": (x, y, a, 8),
        "parameter 3 .*numpy.int64.*got int32": (x, y, a, np.int32(8)),
        "parameter 3 .*numpy.int64.*got ndarray": (x, y, a, cupy.asarray(np.int64(8))),
        "takes 4 arguments, got 3": (x, y, a),
        "takes 4 arguments, got 5": (x, y, a, n, n),
    }
    before = cupy._standin_counters["launches"]     # building the bad arguments launched some
    for message, args in bad.items():
        with pytest.raises(TypeError, match="kernel saxpy_f32 " + message):
            saxpy((1,), (8,), args)
    with pytest.raises(NotImplementedError, match="2-D"):
        saxpy((1, 1), (8,), (x, y, a, n))
    with pytest.raises(NotImplementedError, match="3-D"):
        saxpy((1,), (8, 1, 1), (x, y, a, n))
    with pytest.raises(ValueError, match="invalid configuration"):
        saxpy((0,), (8,), (x, y, a, n))                     # CUDA refuses an empty grid
    assert cupy._standin_counters["launches"] == before       # a refused launch counts none
    np.testing.assert_array_equal(y.get(), np.full(8, 2, np.float32))


@standin_kernels
def test_standin_raw_module_reports_compile_errors():
    import cupy
    from cupy.cuda.compiler import CompileException
    with pytest.raises(CompileException, match="error: .*undeclared_name"):
        cupy.RawModule(code=SAXPY.replace("a * x[i]", "undeclared_name * x[i]"))
    with pytest.raises(CompileException, match="error: expected"):
        cupy.RawModule(code=SAXPY.replace("if (i >= total) return;", "if (i >= total return;"))
    with pytest.raises(NotImplementedError, match="saxpy_f32 parameter 3 .*unsigned"):
        cupy.RawModule(code=SAXPY.replace("float a, long long total", "float a, unsigned total"))
    with pytest.raises(NotImplementedError, match="no extern .* named 'saxpy'"):
        cupy.RawModule(code=SAXPY).get_function("saxpy")


@standin_kernels
def test_standin_raw_kernel_fences_its_arrays():
    import cupy
    shifted = SAXPY.replace("y[i] = a * x[i] + y[i];", "y[i + OFFSET] = a;")
    x = cupy.ones(8, dtype=cupy.float32)
    y = cupy.zeros(8, dtype=cupy.float32)
    args = (x, y, np.float32(2), np.int64(8))
    after = cupy.RawModule(code=shifted, options=("-DOFFSET=1",)).get_function("saxpy_f32")
    with pytest.raises(RuntimeError, match="saxpy_f32 wrote out of bounds after .* parameter 1"):
        after((1,), (8,), args)
    before = cupy.RawModule(code=shifted, options=("-DOFFSET=-1",)).get_function("saxpy_f32")
    with pytest.raises(RuntimeError, match="out of bounds before .* parameter 1"):
        before((1,), (8,), args)
    # a read out of bounds reads poison (NaN); the same array twice is one buffer (in place)
    reads = SAXPY.replace("y[i] = a * x[i] + y[i];", "y[i] = a * x[i + 1] + y[i];")
    saxpy = cupy.RawModule(code=reads).get_function("saxpy_f32")
    saxpy((1,), (8,), (x, x, np.float32(2), np.int64(8)))
    np.testing.assert_array_equal(np.isnan(x.get()), np.arange(8) >= 7)
    with pytest.raises(NotImplementedError, match="overlap"):
        saxpy((1,), (8,), (y[:4], y[2:6], np.float32(2), np.int64(4)))


@gpu_only
def test_every_name_and_keyword_of_the_standin_exists_in_cupy():
    import cupy
    import cupyx.scipy.ndimage as ndimage
    api = _api()
    a = cupy.arange(6, dtype=cupy.float32).reshape(2, 3) + 1
    missing = []

    def check(where, fn, args, keywords):
        for key, default in [(None, None)] + list(keywords.items()):
            call_args, kw = list(args), {}
            if key is not None and default == api.REQUIRED:
                kw[key] = call_args.pop()
            elif key is not None:
                kw[key] = default
            try:
                fn(*call_args, **kw)
            # a refused keyword is a TypeError; anything else: a bad sample
            except Exception as e:
                missing.append(f"{where}({key}=): {type(e).__name__}: {e}")
    for name, (sample, keywords) in api.FUNCTIONS.items():
        if not hasattr(cupy, name):
            missing.append(f"cupy.{name}")
            continue
        check(f"cupy.{name}", getattr(cupy, name), sample(cupy, a), keywords)
    for name, (args, keywords) in api.METHODS.items():
        args = tuple(a.T.copy() if v == "transpose" else v for v in args)
        check(f"ndarray.{name}", getattr(a.copy(), name), args, keywords)
    for name, (sample, keywords) in api.RAW.items():
        check(f"cupy.{name}", getattr(cupy, name), sample(cupy, a), keywords)
    y = cupy.ones(5, dtype=cupy.float32)
    kernel = cupy.RawKernel(api.RAW_SOURCE, "standin_probe")
    check("RawKernel.__call__", kernel, ((1,), (8,), (y, np.int32(5))), api.LAUNCH)
    for name, (sample, keywords) in api.NDIMAGE.items():
        check(f"cupyx.scipy.ndimage.{name}", getattr(ndimage, name), sample(cupy, a), keywords)
    rng = cupy.random.default_rng(0)
    for name, (args, keywords) in api.GENERATOR.items():
        if not hasattr(rng, name):
            missing.append(f"Generator.{name}")
            continue
        check(
            f"Generator.{name}",
            getattr(rng, name),
            args,
            {k: v for k, v in keywords.items() if k != "out"},
        )
    assert missing == [], "\n".join(missing)
    # and what the stand-in refuses, CuPy refuses too
    with pytest.raises(TypeError):
        a.max(initial=0)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError):
        cupy.maximum(a, np.zeros(3, np.float32))
