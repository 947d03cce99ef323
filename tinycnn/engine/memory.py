"""Memory: what a run will need, what the machine can give, and a one-line refusal before any work.

A command asked for a picture too large for the machine does not fail by itself: it allocates,
the machine swaps, and the kernel ends it much later without a word. So each command whose
options scale memory (a photo's size, a count, a batch) first estimates the peak of the run it
was asked for and compares it with what this process can still allocate,

    need(value) <= available = min(MemAvailable, cgroup limit - usage, ulimit -v - address space)

and otherwise stops with one line that names the option and the largest value that fits:

    error: --size 100000: this run needs about <need> of memory and <available> is available;
           --size <the largest that fits> or less fits        (on one line)

The estimates count what the code allocates. A network pass holds the cache its backward pass
needs: ``pass_bytes_per_pixel`` counts that cache on one small probe image, scales it by the
pixels, and adds the arrays in flight. The host-side algorithms of vis/ are counted from
their own arrays (GrabCut's graph, L-BFGS-B's history, t-SNE's N x N matrices, Efros & Leung's
windows). Each estimate is an upper bound that stays close, within a factor of about two of the
peak it bounds (tests/test_memory.py measures a pass). Where nothing is known (not Linux), the
available memory is infinite and nothing is refused. On a GPU (TINYCNN_BACKEND=cupy) the
network's arrays live in device memory, which is not read here: there CuPy's own out-of-memory
error, a MemoryError, ends a run too large, also in one line (vis.cli.run).

The estimate of each ``python -m vis.<technique>`` whose options scale memory, a need(value)
function its main() hands to ``check_fits``, is in vis/_memory.py.
"""
import math
from pathlib import Path

import numpy as np

from .. import backend

MEMINFO = Path("/proc/meminfo")
SELF_STATUS = Path("/proc/self/status")
SELF_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")


class TooLarge(ValueError):
    """A run that needs more memory than the machine can give; the message is one line."""


# -- what the machine can give -------------------------------------------------------------
def available_bytes(*, meminfo=MEMINFO, cgroups=CGROUP_ROOT, membership=SELF_CGROUP,
                    status=SELF_STATUS):
    """Bytes this process can still allocate without swapping: the least of the kernel's
    MemAvailable, the room under each cgroup memory limit above this process, and the room
    under its address-space limit (ulimit -v). math.inf where none of them is known."""
    known = [room for room in (meminfo_available(meminfo), cgroup_room(cgroups, membership),
                               address_space_room(status)) if room is not None]
    return max(0, min(known, default=math.inf))


def meminfo_available(path=MEMINFO):
    """/proc/meminfo's MemAvailable in bytes (memory to be had without swapping), or None."""
    return _field(path, "MemAvailable:")


def cgroup_room(root=CGROUP_ROOT, membership=SELF_CGROUP):
    """Bytes left under the tightest cgroup memory limit on this process's group or any group
    above it, or None without one. membership: /proc/self/cgroup, whose lines read "0::/path"
    (cgroup v2: memory.max - memory.current) or "4:memory:/path" (v1: memory.limit_in_bytes -
    memory.usage_in_bytes). The usage counts the page cache, whose inactive part the kernel
    drops before it would run out: that part (memory.stat's inactive_file) counts as room."""
    try:
        lines = Path(membership).read_text().splitlines()
    except OSError:
        return None
    rooms = []
    for line in lines:
        if line.count(":") < 2:
            continue
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            top, limit_file, usage_file, cache = (
                Path(root),
                "memory.max",
                "memory.current",
                "inactive_file",
            )
        elif "memory" in controllers.split(","):
            top = Path(root) / "memory"
            limit_file, usage_file, cache = (
                "memory.limit_in_bytes",
                "memory.usage_in_bytes",
                "total_inactive_file",
            )
        else:
            continue
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):     # the group, then each group above it
            folder = top.joinpath(*parts[:depth])
            limit, usage = _number(folder / limit_file), _number(folder / usage_file)
            if limit is not None and usage is not None:
                rooms.append(limit - usage + _stat(folder / "memory.stat", cache))
    return min(rooms, default=None)


def _stat(path, name):
    """The value of the "name N" line of a cgroup's memory.stat, in bytes; 0 without one."""
    try:
        for line in Path(path).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def address_space_room(status=SELF_STATUS):
    """Bytes left under this process's address-space limit (RLIMIT_AS, ulimit -v) beyond what it
    has mapped (VmSize), or None without a limit."""
    try:
        import resource
    except ImportError:         # not a Unix
        return None
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit == resource.RLIM_INFINITY:
        return None
    return limit - (_field(status, "VmSize:") or 0)


def _field(path, name):
    """The "name   N kB" line of a /proc file, in bytes (the kernel's kB are KiB), or None."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _number(path):
    """The integer a cgroup file holds, or None (missing, or "max": no limit)."""
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


# -- the check ---------------------------------------------------------------------------------
def check_fits(option, value, need, *, lowest=1, step=1, available=None):
    """Raise TooLarge unless the run asked for fits in memory; call it before any heavy work.

    option, value: the option that scales memory and its value, e.g. "--size", 300
    need:          value -> the bytes the run holds at its peak; must rise with value
    lowest, step:  the option's values are lowest, lowest + step, ...: where the search for one
                   that fits stops, and what it may suggest
    available:     bytes (default: available_bytes())
    The message names the largest value that fits, found by bisection on need.
    """
    have = available_bytes() if available is None else available
    needed = need(value)
    if needed <= have:
        return
    if need(lowest) > have:
        hint = f"it does not fit even with {option} {lowest}"
    else:
        fits, too_big = 0, (value - lowest) // step + 1     # steps above lowest: one fits, one not
        while too_big - fits > 1:
            middle = (fits + too_big) // 2
            if need(lowest + middle * step) <= have:
                fits = middle
            else:
                too_big = middle
        hint = f"{option} {lowest + fits * step} or less fits"
    raise TooLarge(f"{option} {value}: this run needs about {readable(needed)} of memory and "
                   f"{readable(have)} is available; {hint}")


def readable(n):
    """Bytes for people, in powers of 1000: 512 bytes, 3.4 MB, 480 GB."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 999.5:
            break
        n /= 1000
    else:
        unit = "PB"
    return f"{n:.2g} {unit}" if n < 10 else f"{n:,.0f} {unit}"


# -- a network pass --------------------------------------------------------------------------
# Arrays as large as the largest layer output that are alive besides the cache. Forward: the
# output being made and a padded copy of its input or a temporary (max pooling makes both).
# Backward through that layer: its gradient dout, the dx it makes and a temporary or two (a
# ReLU's mask times dout, a pool's padded gradient). Rounded up: the margin that keeps the
# estimate an upper bound (tests/test_memory.py measures a pass against it).
FORWARD_IN_FLIGHT = 2
BACKWARD_IN_FLIGHT = 4


def held_bytes(tree):
    """Bytes of the distinct arrays in ``tree`` (a forward pass's output and cache: nested
    lists, tuples, dicts and objects). Views of one buffer count once (where the array tells
    its base, as NumPy's and CuPy's do)."""
    buffers, stack = {}, [tree]
    while stack:
        item = stack.pop()
        if _is_array(item):
            # a view: count the array it looks into
            while _is_array(getattr(item, "base", None)):
                item = item.base
            buffers[id(item)] = item.nbytes
        elif isinstance(item, dict):
            stack += item.values()
        elif isinstance(item, (list, tuple)):
            stack += item
        elif hasattr(item, "__dict__"):       # the Cache dataclass
            stack += vars(item).values()
    return sum(buffers.values())


def _is_array(a):
    return hasattr(a, "nbytes") and hasattr(a, "shape")


def pass_bytes_per_pixel(net, *, until=None, keep=(), backward=True, side=None):
    """Peak bytes per input pixel of one forward pass of ``net`` (up to ``until``, keeping
    ``keep``) and, with backward, its backward pass: the cache, counted on one side x side probe
    image (default the model's input size, else 64), plus FORWARD_IN_FLIGHT or BACKWARD_IN_FLIGHT
    arrays as large as the largest layer output.

    Every layer's output is a fixed fraction of the input's pixels, so the count scales with
    H x W and with the batch; the probe's borders make it a few percent low, inside the margin.
    """
    side = side or net.meta.get("input_size", 64)
    x = backend.asarray(np.zeros((1, 3, side, side), np.float32))
    cache = held_bytes(net.forward(x, until=until, keep=keep))
    ran = [name for name in net.names() if until is None or net.last_ready([name, until]) == until]
    largest = max(a.nbytes for a in net.forward(x, until=until, keep=ran)[1].activations.values())
    return (cache + (BACKWARD_IN_FLIGHT if backward else FORWARD_IN_FLIGHT) * largest) / side ** 2


def resized(shape, short_side):
    """(H, W) of an image of ``shape`` (H, W) resized so that its short side is ``short_side``,
    as tinycnn.io.images.resize_short_side does."""
    h, w = shape
    scale = short_side / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def image_shapes(specs, find=Path, formats=None):
    """(H, W) of each image file of ``specs``, found by ``find`` (vis.cli.find_image) and read from
    its header, opened only as one of ``formats`` (Pillow's names; None: any): no pixels are
    decoded. What cannot be found or read is left out; its loader, which runs next, reports it."""
    from PIL import Image
    shapes = []
    for spec in specs:
        try:
            with Image.open(find(spec), formats=formats) as im:
                shapes.append(im.size[::-1])
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
    return shapes
