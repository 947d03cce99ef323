"""The strict CuPy stand-in (tests/strict_cupy) is as strict as CuPy, and no stricter in
its names: on the stand-in, each rule is shown to bite; on a real GPU, every name and
keyword the stand-in offers is called on real CuPy (make gpu-check runs this there)."""
import importlib.util
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
