"""How many threads the BLAS behind NumPy and SciPy may use, set while running.

NumPy's matrix products run in OpenBLAS, whose threads spin while they wait for work. On a machine
with a few cores and another busy program they lose their turn and the products crawl: one thread
costs the big 224-px products a little on an idle machine, and saves several times as much as soon
as anything else runs (and on the many small products of texture synthesis, even idle;
bench/RESULTS.md has the measurements). So the ``python -m vis.*`` commands use one
(``TINYCNN_BLAS_THREADS`` overrides it). The environment variable OPENBLAS_NUM_THREADS only works
before NumPy is loaded; this calls OpenBLAS's own setter in every OpenBLAS the process has loaded
(NumPy and SciPy each bring one), found in /proc/self/maps (Linux; elsewhere nothing happens and
``set_blas_threads`` says so by returning 0). """
import ctypes
import os

SETTERS = (
    "openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "scipy_openblas_set_num_threads64_",
)
GETTERS = tuple(s.replace("set_", "get_") for s in SETTERS)


def _openblas_libraries():
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    except OSError:
        return []
    libraries = []
    for path in sorted(paths):
        try:
            libraries.append(ctypes.CDLL(path))
        except OSError:         # best effort: a library that cannot be opened keeps its threads
            pass
    return libraries


def set_blas_threads(n):
    """Let every loaded OpenBLAS use ``n`` threads; returns how many libraries were set."""
    import numpy  # noqa: F401  (load NumPy's OpenBLAS first, so that there is one to set)
    if n < 1:
        raise ValueError(f"BLAS threads must be at least 1, not {n}")
    done = 0
    for lib in _openblas_libraries():
        for name in SETTERS:
            if hasattr(lib, name):
                getattr(lib, name)(ctypes.c_int(n))
                done += 1
                break
    return done


def blas_threads():
    """The thread counts of the loaded OpenBLAS libraries (empty where none can be asked)."""
    out = []
    for lib in _openblas_libraries():
        for name in GETTERS:
            if hasattr(lib, name):
                getattr(lib, name).restype = ctypes.c_int
                out.append(getattr(lib, name)())
                break
    return out


def threads_for_commands():
    """TINYCNN_BLAS_THREADS, else 1 (see the module docstring)."""
    text = os.environ.get("TINYCNN_BLAS_THREADS", "1")
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(
            f"TINYCNN_BLAS_THREADS={text!r}: give a whole number of threads, at least 1"
        )
    return int(text)
