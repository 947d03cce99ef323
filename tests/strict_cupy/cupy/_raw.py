"""cupy.RawModule and cupy.RawKernel in the stand-in: the same CUDA C text, run on the CPU.

The source is compiled by the system C++ compiler with ``cuda_shim.h`` (``__global__``,
``__device__``, ``blockIdx``, ``threadIdx``, ``blockDim``, ``gridDim``) and one generated
wrapper per ``extern "C" __global__`` kernel, which loops over blocks and threads and calls
the kernel once per thread. The library is loaded with ctypes; a launch passes copies of
the NumPy buffers behind the stand-in arrays, fenced by poison bytes, and copies them back,
so output arrays are written in place and a write out of bounds raises RuntimeError.

Stricter than CuPy, on purpose (CuPy checks nothing and silently misreads): the number of
arguments must equal the kernel's parameter count; a pointer parameter takes only a
C-contiguous stand-in array of the pointer's exact element type; a scalar parameter takes
only a NumPy scalar of its exact type (a Python ``float`` would reach a ``float`` parameter
as 8 bytes, a Python ``int`` an ``int`` parameter as 8 bytes). Anything else raises
TypeError naming the kernel, the parameter and the expected type.

Only what the tinycnn kernels need: 1-D grids and blocks, no shared memory, kernels declared
``extern "C" __global__ void NAME(PARAMS)`` with the types listed in ``_POINTERS`` and
``_SCALARS``. Everything else raises NotImplementedError naming it.
"""
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy as np

SHIM = Path(__file__).resolve().parent.parent / "cuda_shim.h"
CACHE = Path(tempfile.gettempdir()) / "tinycnn-standin-kernels"
CXX = os.environ.get("CXX", "g++")

# pointer element type -> the dtypes a stand-in array may have
_POINTERS = {
    "float": (np.float32,), "double": (np.float64,), "signed char": (np.int8,),
    "int": (np.int32,), "long long": (np.int64,), "unsigned char": (np.bool_, np.uint8),
}
# scalar type -> (the exact NumPy scalar type, its ctypes type)
_SCALARS = {
    "int": (np.int32, ctypes.c_int32), "long long": (np.int64, ctypes.c_int64),
    "float": (np.float32, ctypes.c_float), "double": (np.float64, ctypes.c_double),
}
# CUDA's launch limits: a launch outside them fails on a GPU, so it fails here too
_MAX_BLOCK = 1024
_MAX_GRID = 2 ** 31 - 1
# Each array reaches the kernel inside a copy fenced by this many poison bytes on each side:
# a write out of bounds raises after the launch, a read out of bounds reads NaN (or -1).
_FENCE = 1 << 16
_POISON = 0xFF

_KERNEL = re.compile(r'extern\s+"C"\s+__global__\s+void\s+([A-Za-z_]\w*)\s*\(([^)]*)\)')
_libraries = {}        # sha256 -> (ctypes library, {kernel name: parameters})
# The shim's index variables are globals and ctypes lets go of the GIL during a call:
# one launch at a time, as the shim assumes.
_lock = threading.RLock()


class CompileException(RuntimeError):
    """The C++ compiler refused the kernel source (CuPy: cupy.cuda.compiler.CompileException)."""


def compiler_found():
    """True when the C++ compiler (``$CXX``, else g++) is on the PATH."""
    return shutil.which(CXX) is not None


def _compiler():
    if shutil.which(CXX) is None:
        raise NotImplementedError(f"stand-in RawModule needs a C++ compiler ({CXX!r} not found)")
    return CXX


def _flags(options):
    """nvcc/NVRTC options -> g++ flags: only --std=..., -D... and --fmad=false have a meaning
    on the CPU."""
    flags = []
    for opt in options:
        if not isinstance(opt, str):
            raise TypeError(f"RawModule options must be strings, got {opt!r}")
        m = re.fullmatch(r"--?std=(c\+\+\d\d)", opt)
        if m:
            flags.append(f"-std={m.group(1)}")
        elif re.fullmatch(r"-D\w+(=.*)?", opt):
            flags.append(opt)
        elif opt == "--fmad=false":
            pass                    # the compile line below has -ffp-contract=off already
        else:
            raise NotImplementedError(f"stand-in RawModule: option {opt!r} is not supported")
    return flags


def _run(cmd, source):
    done = subprocess.run(cmd, input=source, capture_output=True, text=True)
    if done.returncode != 0:
        raise CompileException(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return done.stdout


def _parse_parameter(kernel, index, text):
    """'const float* __restrict__ x' -> ('pointer', 'float'); 'long long n' -> ('scalar', ...)."""
    words = text.replace("*", " * ").split()
    words = [w for w in words if w not in ("const", "__restrict__", "volatile")]
    pointer = words.count("*")
    words = [w for w in words if w != "*"]
    known = set(" ".join(_POINTERS).split())
    if len(words) > 1 and words[-1] not in known:
        words = words[:-1]                                  # the parameter's name
    ctype = " ".join(words)
    if pointer == 1 and ctype in _POINTERS:
        return ("pointer", ctype)
    if pointer == 0 and ctype in _SCALARS:
        return ("scalar", ctype)
    raise NotImplementedError(
        f"stand-in RawModule: kernel {kernel} parameter {index} has type {text.strip()!r}; "
        f"supported: pointers to {sorted(_POINTERS)}, scalars {sorted(_SCALARS)}")


def _signatures(code, flags):
    """{kernel name: [(kind, C type), ...]} from the preprocessed source alone."""
    text = _run([_compiler(), "-E", "-P", *flags, "-x", "c++", "-"], code)
    kernels = {}
    for name, params in _KERNEL.findall(text):
        params = params.strip()
        items = [] if params in ("", "void") else params.split(",")
        kernels[name] = [_parse_parameter(name, i, p) for i, p in enumerate(items)]
    return kernels


def _wrapper(name, params):
    """extern "C" void standin_launch_NAME(gx, bx, p0, p1, ...): one call per thread."""
    decl = ", ".join(f"{ctype}* p{i}" if kind == "pointer" else f"{ctype} p{i}"
                     for i, (kind, ctype) in enumerate(params))
    call = ", ".join(f"p{i}" for i in range(len(params)))
    return (f'extern "C" void standin_launch_{name}(unsigned gx, unsigned bx'
            f'{", " if decl else ""}{decl}) {{\n'
            "    gridDim = dim3{gx, 1, 1};\n    blockDim = dim3{bx, 1, 1};\n"
            "    for (unsigned b = 0; b < gx; ++b) {\n        blockIdx = dim3{b, 0, 0};\n"
            "        for (unsigned t = 0; t < bx; ++t) {\n            threadIdx = dim3{t, 0, 0};\n"
            f"            {name}({call});\n        }}\n    }}\n}}\n")


def _load(code, options):
    """Compile (once per source and options) and load; returns (library, signatures)."""
    if not isinstance(code, str):
        raise TypeError(f"RawModule code must be a str, got {type(code)}")
    flags = _flags(options)
    source_key = hashlib.sha256("\0".join([code, *flags]).encode()).hexdigest()
    with _lock:
        if source_key not in _libraries:
            _libraries[source_key] = _compile(code, flags)
        return _libraries[source_key]


def _compile(code, flags):
    kernels = _signatures(code, flags)
    full = code + "\n\n// stand-in launch wrappers\n" + "".join(
        _wrapper(name, params) for name, params in kernels.items())
    # -ffp-contract=off: no fused multiply-add, so a*b+c rounds twice as NumPy's does
    command = [_compiler(), "-O2", "-ffp-contract=off", "-shared", "-fPIC", *flags, "-x", "c++",
               "-include", str(SHIM), "-"]
    # the cache key covers everything the library depends on: source, wrappers, flags, shim
    key = hashlib.sha256("\0".join([full, *command, SHIM.read_text()]).encode()).hexdigest()
    CACHE.mkdir(parents=True, exist_ok=True)
    target = CACHE / f"{key}.so"
    if not target.exists():
        tmp = CACHE / f"{key}.{os.getpid()}.tmp.so"
        _run(command + ["-o", str(tmp)], full)
        os.replace(tmp, target)                  # atomic: parallel test runs share the cache
    library = ctypes.CDLL(str(target))
    for name, params in kernels.items():
        fn = getattr(library, f"standin_launch_{name}")
        fn.restype = None
        fn.argtypes = [ctypes.c_uint, ctypes.c_uint] + [
            ctypes.c_void_p if kind == "pointer" else _SCALARS[ctype][1] for kind, ctype in params]
    return library, kernels


def _one_d(what, value, limit):
    if isinstance(value, tuple):
        if len(value) != 1:
            raise NotImplementedError(
                f"stand-in RawKernel: {what} {value!r} is {len(value)}-D; only 1-D launches")
        value = value[0]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"RawKernel {what} must be an int or a 1-tuple of ints, got {value!r}")
    if not 1 <= int(value) <= limit:
        raise ValueError(f"RawKernel {what} {int(value)} is outside 1..{limit} "
                         "(CUDA: invalid configuration argument)")
    return int(value)


class RawKernel:
    """One ``extern "C" __global__`` kernel; call it as ``kernel(grid, block, args)``."""
    __module__ = "cupy"

    def __init__(self, code, name, options=(), *, _module=None):
        self.code, self.name, self.options = code, name, tuple(options)
        library, kernels = _module if _module is not None else _load(code, self.options)
        if name not in kernels:
            raise NotImplementedError(
                f"stand-in RawKernel: no extern \"C\" __global__ kernel named {name!r} "
                f"(found: {sorted(kernels)})")
        self._params = kernels[name]
        self._fn = getattr(library, f"standin_launch_{name}")

    def __call__(self, grid, block, args, *, shared_mem=0):
        from . import ndarray, _standin_counters
        gx = _one_d("grid", grid, _MAX_GRID)
        bx = _one_d("block", block, _MAX_BLOCK)
        if shared_mem:
            raise NotImplementedError("stand-in RawKernel: shared_mem is not supported")
        if not isinstance(args, (tuple, list)):
            raise TypeError(f"kernel {self.name}: args must be a tuple, got {type(args)}")
        if len(args) != len(self._params):
            raise TypeError(f"kernel {self.name} takes {len(self._params)} arguments, "
                            f"got {len(args)}")
        values = []
        for i, ((kind, ctype), arg) in enumerate(zip(self._params, args)):
            where = f"kernel {self.name} parameter {i} ({ctype}{'*' if kind == 'pointer' else ''})"
            if kind == "pointer":
                dtypes = _POINTERS[ctype]
                if not isinstance(arg, ndarray):
                    raise TypeError(f"{where} needs a cupy.ndarray of "
                                    f"{'/'.join(np.dtype(d).name for d in dtypes)}, "
                                    f"got {type(arg).__name__}")
                if arg.dtype.type not in dtypes:
                    raise TypeError(f"{where} needs dtype "
                                    f"{'/'.join(np.dtype(d).name for d in dtypes)}, "
                                    f"got {arg.dtype}")
                if not arg._a.flags.c_contiguous:
                    raise TypeError(f"{where} needs a C-contiguous array (a view's strides "
                                    f"are ignored by a kernel), got strides {arg.strides}")
                values.append(arg._a)
            else:
                scalar = _SCALARS[ctype][0]
                if type(arg) is not scalar:
                    raise TypeError(f"{where} needs a numpy.{scalar.__name__} scalar, "
                                    f"got {type(arg).__name__} {arg!r}")
                values.append(arg.item())
        _standin_counters["launches"] += 1
        self._launch_fenced(gx, bx, values)

    def _launch_fenced(self, gx, bx, values):
        """Run on fenced copies of the arrays, check the fences, copy the arrays back."""
        fenced = {}                # (address, nbytes) -> (the array, its fenced copy, parameter)
        for i, v in enumerate(values):
            if isinstance(v, np.ndarray):
                key = (v.ctypes.data, v.nbytes)
                if key not in fenced:           # the same array twice (in place): one copy
                    buffer = np.full(v.nbytes + 2 * _FENCE, _POISON, np.uint8)
                    buffer[_FENCE:_FENCE + v.nbytes] = v.reshape(-1).view(np.uint8)
                    fenced[key] = (v, buffer, i)
        spans = sorted(fenced)
        for first, second in zip(spans, spans[1:]):
            if first[0] + first[1] > second[0]:
                raise NotImplementedError(
                    f"stand-in RawKernel: kernel {self.name} got two arrays that overlap in "
                    f"memory (parameters {fenced[first][2]} and {fenced[second][2]})")
        with _lock:
            self._fn(gx, bx, *[fenced[(v.ctypes.data, v.nbytes)][1].ctypes.data + _FENCE
                               if isinstance(v, np.ndarray) else v for v in values])
        for v, buffer, i in fenced.values():
            for side, fence in (("before", buffer[:_FENCE]), ("after", buffer[-_FENCE:])):
                if (fence != _POISON).any():
                    raise RuntimeError(f"kernel {self.name} wrote out of bounds {side} the "
                                       f"array of parameter {i} (shape {v.shape})")
            inside = buffer[_FENCE:_FENCE + v.nbytes]
            if v.flags.writeable:
                v.reshape(-1).view(np.uint8)[...] = inside
            elif (inside != v.reshape(-1).view(np.uint8)).any():
                raise RuntimeError(f"kernel {self.name} wrote into parameter {i}, a read-only "
                                   "view (a broadcast)")


class RawModule:
    """A CUDA C source with ``extern "C" __global__`` kernels; ``get_function(name)``."""
    __module__ = "cupy"

    def __init__(self, code=None, *, path=None, options=(), name_expressions=None):
        if path is not None:
            code = Path(path).read_text()
        self.code, self.options = code, tuple(options)
        self._module = _load(code, self.options)
        for expr in name_expressions or ():
            if expr not in self._module[1]:
                raise NotImplementedError(f"stand-in RawModule: name expression {expr!r} is not "
                                          "an extern \"C\" __global__ kernel of the source")

    def get_function(self, name):
        return RawKernel(self.code, name, self.options, _module=self._module)
