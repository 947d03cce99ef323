"""Keep freed memory in the process, so that big temporaries do not cost fresh pages.

Every forward and backward pass allocates arrays of megabytes (a convolution's output,
a matrix product's result) and frees them a moment later. glibc's malloc hands such
blocks back to the operating system: blocks above its mmap threshold are unmapped at
once, and free memory at the top of the heap beyond its trim threshold is returned.
The next pass then asks for the same size again, and the kernel has to map and zero
every 4 KB page on first touch. For SqueezeNet's conv1 at batch 1 (a 3 MB output and a
3 MB product) that was most of the time (bench/RESULTS.md).

``keep_freed_memory`` sets both thresholds with glibc's ``mallopt``: blocks up to
MMAP_THRESHOLD come from the heap, and the heap is never trimmed, so a loop of passes
reuses the same pages. The price: the process keeps its peak memory until it exits,
which for the ``python -m vis.*`` commands, which call it, is what they use anyway.
Arrays above MMAP_THRESHOLD are still mapped fresh each time; that is one reason im2col
works in chunks of CHUNK_BYTES (``tinycnn/engine/conv.py``). Elsewhere than glibc (macOS,
musl) nothing happens and it returns False.
"""
import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1         # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20   # glibc's largest (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit)
TRIM_THRESHOLD = 2**31 - 1    # an int: never trim


def keep_freed_memory():
    """Ask glibc to keep freed blocks up to MMAP_THRESHOLD for reuse; True when it agreed."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
