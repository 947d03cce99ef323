"""Fuzzing the PyTorch checkpoint reader with forged files, each read in a child process.

The promise (tinycnn.io.torch_checkpoint): reading any file returns exactly the tensors
that were written, or raises UnsafeCheckpointError; it never crashes the process,
never hangs, never has a side effect. Each hypothesis example is a batch of forged
files (written with pickle opcodes and zipfile, no torch) read one after another by
one child Python, which prints one line per file; a crash or a hang is seen as the
child dying or timing out, and the file it was reading is the first without a line.
A payload that got to run would create a canary file.
"""
import hashlib
import json
import math
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycnn.io.archives import budget

from . import forge
from .conftest import fuzz_settings

# pickle opcodes (pickletools.opcodes)
GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST, OBJ = b"c", b"\x93", b"R", b"b", b"i", b"o"
NEWOBJ, NEWOBJ_EX, EXT1, EXT2, EXT4, PERSID, BINPERSID = (
    b"\x81",
    b"\x92",
    b"\x82",
    b"\x83",
    b"\x84",
    b"P",
    b"Q",
)
MARK, TUPLE, EMPTY_DICT, EMPTY_TUPLE = b"(", b"t", b"}", b")"
FORBIDDEN = [
    ("os", "system"),
    ("posix", "system"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("subprocess", "Popen"),
    ("builtins", "getattr"),
    ("numpy", "frombuffer"),
    ("torch", "load"),
]
EXTENSIONS = {
    0x7F: ("os", "system"),
    0x1234: ("builtins", "eval"),
    0x12345678: ("subprocess", "Popen"),
}

# The child registers copyreg extension codes for forbidden globals, as a program that
# used copyreg might have: EXT opcodes must still go through find_class.
CHILD = """
import copyreg, hashlib, json, sys
import numpy as np
from tinycnn.io.torch_checkpoint import UnsafeCheckpointError, read_torch_checkpoint
for code, (module, name) in %r.items():
    copyreg.add_extension(module, name, code)
for path in sys.argv[1:]:
    try:
        got = read_torch_checkpoint(path)
        line = {k: [v.dtype.str, list(v.shape),
                    hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()]
                for k, v in got.items()}
    except UnsafeCheckpointError as e:
        line = "refused: " + str(e)
    print(json.dumps(line), flush=True)
""" % EXTENSIONS


def summary(arrays):
    return {
        k: [
            v.dtype.str,
            list(v.shape),
            hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest(),
        ]
        for k, v in arrays.items()
    }


# -- cases: (file bytes, expected); expected is a dict of arrays (read exactly), "refused",
# ("either", arrays): read exactly or refused, or "any": refused or some dict of arrays ------
@st.composite
def storage_data(draw, storage_type, numel):
    dtype = np.dtype(forge.STORAGE_TYPES[storage_type])
    if dtype == np.bool_:
        return np.array(draw(st.lists(st.booleans(), min_size=numel, max_size=numel)), dtype=bool)
    return np.frombuffer(
        draw(st.binary(min_size=numel * dtype.itemsize, max_size=numel * dtype.itemsize)), dtype
    )


def numpy_can_hold(size, itemsize):
    """NumPy's own limit on a shape, empty ones included: every size fits an intp, and the
    product of the non-zero sizes times the itemsize does too (np.empty((0, 2**40, 2**40))
    raises "array is too big" although it holds nothing)."""
    return max(size, default=0) < 1 << 63 and math.prod(n for n in size if n) * itemsize < 1 << 63


def geometry_is_valid(offset, size, stride, numel, itemsize):
    """PyTorch's rule, stated independently of the reader, and the reader's limit on shapes:
    those NumPy can hold. (The file's budget on all tensors together is checked by the case.)"""
    if (
        len(size) != len(stride)
        or min((offset,) + size + stride) < 0
        or not numpy_can_hold(size, itemsize)
    ):
        return False
    if 0 in size:
        return True
    return offset + sum((n - 1) * s for n, s in zip(size, stride)) < numel


@st.composite
def geometry_case(draw):
    """One to three tensors, some sharing a storage, with arbitrary (often invalid) geometry."""
    unusual = st.sampled_from([-1, -3, 1 << 31, 1 << 40, 1 << 63, 1 << 64, 10**30])
    storages = []
    for key in range(draw(st.integers(1, 2))):
        storage_type = draw(st.sampled_from(sorted(forge.STORAGE_TYPES)))
        numel = draw(st.integers(0, 24))
        storages.append((str(key), storage_type, numel, draw(storage_data(storage_type, numel))))
    items, expected, valid, used = [], {}, True, set()
    for t in range(draw(st.integers(1, 3))):
        key, storage_type, numel, flat = draw(st.sampled_from(storages))
        used.add(key)
        ndim = draw(st.integers(0, 3))
        size = tuple(draw(st.integers(0, 5) | unusual) for _ in range(ndim))
        stride = tuple(
            draw(st.integers(0, 8) | unusual)
            for _ in range(ndim + draw(st.sampled_from([0] * 9 + [1])))
        )
        offset = draw(st.integers(0, 30) | unusual)
        items.append(
            (f"t{t}", forge.tensor(forge.storage(storage_type, key, numel), offset, size, stride))
        )
        if geometry_is_valid(offset, size, stride, numel, flat.itemsize):
            expected[f"t{t}"] = (flat, offset, size, stride)     # built below, if it fits
        else:
            valid = False
    records = [("data.pkl", forge.state_dict(items))]
    for key, _, numel, flat in storages:
        data = flat.astype(np.uint8).tobytes() if flat.dtype == np.bool_ else flat.tobytes()
        # a record longer or shorter than its declared size
        if draw(st.integers(0, 9)) == 0:
            data = data[:-1] if data and draw(st.booleans()) else data + b"\0"
            valid = valid and key not in used         # (a storage no tensor uses is never read)
        records.append((f"data/{key}", data))
    data = forge.archive(records)
    # tensors are views, but all together they may hold no more than the file's budget; what
    # is expected is built only then (a valid stride-0 tensor may declare gigabytes)
    held = sum(math.prod(size) * flat.itemsize for flat, _, size, _ in expected.values())
    if not (valid and held <= budget(len(data))):
        return data, "refused"
    return data, {name: forge.expected_view(flat, offset, size, stride) if 0 not in size
                  else np.empty(size, flat.dtype)   # empty: numpy_can_hold accepted the shape
                  for name, (flat, offset, size, stride) in expected.items()}


def payload(draw, canary):
    """Opcodes that would create the canary file if any of them got to call or import."""
    module, name = draw(st.sampled_from(FORBIDDEN))
    command = forge.value(f"touch {canary}")
    kind = draw(
        st.sampled_from(
            [
                "GLOBAL",
                "STACK_GLOBAL",
                "INST",
                "OBJ",
                "NEWOBJ",
                "NEWOBJ_EX",
                "BUILD",
                "EXT",
                "PERSID",
                "BINPERSID",
                "nested __reduce__",
            ]
        )
    )
    if kind == "GLOBAL":
        return GLOBAL + f"{module}\n{name}\n".encode() + MARK + command + TUPLE + REDUCE
    if kind == "STACK_GLOBAL":
        return (
            forge.value(module)
            + forge.value(name)
            + STACK_GLOBAL
            + MARK
            + command
            + TUPLE
            + REDUCE
        )
    if kind == "INST":
        return MARK + command + INST + f"{module}\n{name}\n".encode()
    if kind == "OBJ":
        return MARK + forge.global_(module, name) + command + OBJ
    # an allowed class, or a forbidden one, built without __init__
    if kind in ("NEWOBJ", "NEWOBJ_EX"):
        cls = draw(
            st.sampled_from(
                [
                    forge.global_(module, name),
                    forge.global_("collections", "OrderedDict"),
                    forge.global_("torch._utils", "_rebuild_tensor_v2"),
                ]
            )
        )
        return (
            cls
            + MARK
            + command
            + TUPLE
            + (NEWOBJ if kind == "NEWOBJ" else EMPTY_DICT + NEWOBJ_EX)
            + forge.call(module, name, command)
        )
    if kind == "BUILD":  # state set on an allowed object, then a forbidden call
        target = draw(
            st.sampled_from(
                [forge.call("collections", "OrderedDict"), forge.global_("torch", "FloatStorage")]
            )
        )
        state = forge.value(
            draw(st.sampled_from([{"dtype": "O", "__class__": "x"}, (None, {"name": "x"}), 7]))
        )
        return target + state + BUILD + forge.call(module, name, command)
    if kind == "EXT":
        code = draw(st.sampled_from(sorted(EXTENSIONS)))
        op = (
            EXT1 + bytes([code])
            if code < 256
            else EXT2 + code.to_bytes(2, "little")
            if code < 65536
            else EXT4 + code.to_bytes(4, "little")
        )
        return op + MARK + command + TUPLE + REDUCE
    if kind == "PERSID":
        return PERSID + f"{module}.{name}\n".encode()
    if kind == "BINPERSID":
        return MARK + forge.value("storage") + forge.global_(module, name) + forge.value("0") + \
            forge.value("cpu") + forge.value(1) + TUPLE + BINPERSID
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {canary}",))
    nested = draw(st.sampled_from([[Payload()], {"k": (1, Payload())}, ((Payload(),),)]))
    return pickle.dumps(nested, protocol=draw(st.integers(2, 5)))[2:-1]


def rebuild(*args):
    """The pickled call torch._utils._rebuild_tensor_v2(*args)."""
    return forge.call("torch._utils", "_rebuild_tensor_v2", *args)


@st.composite
def malicious_case(draw, canary):
    """A payload where a tensor, its storage, its geometry, a dict value or the whole state
    goes."""
    bad = payload(draw, canary)
    good = forge.tensor(forge.storage("FloatStorage", "0", 2), 0, (2,), (1,))
    where = draw(st.sampled_from(["value", "state", "offset", "storage", "hooks"]))
    if where == "value":
        pkl = forge.state_dict([("w", good), ("evil", bad)])
    elif where == "state":
        pkl = b"\x80\x02" + bad + b"."
    elif where == "offset":
        pkl = forge.state_dict([("w", rebuild(forge.storage("FloatStorage", "0", 2), bad,
                                              forge.value((2,)), forge.value((1,))))])
    elif where == "storage":
        pkl = forge.state_dict([("w", rebuild(bad, forge.value(0), forge.value((2,)),
                                              forge.value((1,))))])
    else:
        pkl = forge.state_dict([("w", rebuild(forge.storage("FloatStorage", "0", 2),
                                              forge.value(0), forge.value((2,)),
                                              forge.value((1,)), forge.value(False), bad))])
    return forge.archive([("data.pkl", pkl), ("data/0", bytes(8))]), "refused"


@st.composite
def archive_case(draw):
    """A good checkpoint, then broken as an archive: truncated, records duplicated or missing,
    bytes flipped, garbage instead of the pickle; or left intact but compressed."""
    flat = np.arange(6, dtype=np.float32)
    pkl = forge.state_dict(
        [("w", forge.tensor(forge.storage("FloatStorage", "0", 6), 1, (2, 2), (2, 1)))]
    )
    records = [("data.pkl", pkl), ("data/0", flat.tobytes()), ("byteorder", b"little")]
    good = {"w": forge.expected_view(flat, 1, (2, 2), (2, 1))}
    how = draw(
        st.sampled_from(
            [
                "truncated",
                "duplicate",
                "missing",
                "flipped",
                "garbage",
                "deflated",
                "byteorder",
                "two prefixes",
                "not a zip",
            ]
        )
    )
    if how == "duplicate":
        name = draw(st.sampled_from([r[0] for r in records]))
        return forge.archive(records + [(name, dict(records)[name])]), "refused"
    if how == "missing":
        gone = draw(st.sampled_from(["data.pkl", "data/0"]))
        return forge.archive([r for r in records if r[0] != gone]), "refused"
    if how == "garbage":
        return forge.archive([("data.pkl", draw(st.binary(max_size=200)))] + records[1:]), "any"
    if how == "deflated":
        return forge.archive(records, compression=zipfile.ZIP_DEFLATED), good
    if how == "byteorder":
        order = draw(st.sampled_from([b"big", b"middle", b""]))
        # same bytes, read big-endian
        big = {"w": good["w"].byteswap()} if order == b"big" else "refused"
        return forge.archive(records[:2] + [("byteorder", order)]), big
    if how == "two prefixes":
        return forge.archive(records, prefixes=("archive", "other")), "refused"
    if how == "not a zip":
        return draw(st.binary(max_size=300)), "refused"
    data = bytearray(forge.archive(records))
    if how == "truncated":   # zipfile reads an archive missing only the end of its last field
        return bytes(data[:draw(st.integers(0, len(data) - 1))]), ("either", good)
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data), ("either", good)    # the CRC catches changed data, not a changed timestamp


def read_in_a_child(folder, cases):
    """Write the cases, read them all in one child; fail naming the case that crashed or hung."""
    paths = []
    for i, (data, _) in enumerate(cases):
        paths.append(folder / f"case{i}.pth")
        paths[-1].write_bytes(data)
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        lines = done.stdout.splitlines()
    except subprocess.TimeoutExpired as e:
        lines = (e.stdout or b"").decode().splitlines()
        pytest.fail(f"the reader hung on {paths[len(lines)]} ({len(lines)} cases read before)")
    if done.returncode != 0:
        pytest.fail(
            f"the reader died (status {done.returncode}) on {paths[len(lines)]}: "
            f"{done.stderr[-500:]}"
        )
    return [json.loads(line) for line in lines]


def check(cases, results):
    for i, ((data, expected), got) in enumerate(zip(cases, results)):
        refused = isinstance(got, str) and got.startswith("refused: ")
        if expected == "refused":
            assert refused, (i, got)
        elif isinstance(expected, tuple):
            assert refused or got == summary(expected[1]), (i, got, expected)
        elif expected != "any":
            assert got == summary(expected), (i, got, expected)
        assert refused or isinstance(got, dict), (i, got)
        assert not refused or got.count("\n") == 0


@pytest.mark.fuzz
@fuzz_settings(8)
@given(st.data())
def test_forged_checkpoints_read_exactly_or_are_refused(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("checkpoints")
    canary = folder / "canary"
    case = st.one_of(geometry_case(), malicious_case(str(canary)), archive_case())
    cases = data.draw(st.lists(case, min_size=1, max_size=30))
    check(cases, read_in_a_child(folder, cases))
    assert not canary.exists(), "a payload ran"


@pytest.mark.parametrize("storage_type, size, readable", [
    ("FloatStorage", (0, 1 << 40), True), ("ByteStorage", (0, 1 << 62), True),
    ("FloatStorage", (0, 1 << 40, 1 << 40), False), ("FloatStorage", (0, 1 << 62), False)])
def test_an_empty_tensor_reads_empty_if_numpy_can_hold_its_shape(
    tmp_path, storage_type, size, readable
):
    """The edge geometry_case draws: no element, yet NumPy refuses a shape whose non-zero sizes
    times the itemsize overflow (np.empty((0, 2**40, 2**40)) is "too big"): that one is refused."""
    flat = np.zeros(2, forge.STORAGE_TYPES[storage_type])
    assert numpy_can_hold(size, flat.itemsize) == readable
    data = forge.archive(
        [
            (
                "data.pkl",
                forge.state_dict(
                    [
                        (
                            "w",
                            forge.tensor(
                                forge.storage(storage_type, "0", 2), 0, size, (1,) * len(size)
                            ),
                        )
                    ]
                ),
            ),
            ("data/0", flat.tobytes()),
        ]
    )
    case = (data, {"w": np.empty(size, flat.dtype)} if readable else "refused")
    check([case], read_in_a_child(tmp_path, [case]))


@pytest.mark.fuzz
@fuzz_settings(10)
@given(st.data())
def test_genuine_torch_checkpoints_read_exactly(tmp_path_factory, data):
    """torch.save of random tensors, views of them (transposed, strided, offset into a shared
    storage, expanded) included, reads back exactly."""
    torch = pytest.importorskip(
        "torch", reason="PyTorch is not installed: it is needed to write checkpoints"
    )
    dtype = data.draw(
        st.sampled_from(
            [
                torch.float32,
                torch.float64,
                torch.float16,
                torch.int64,
                torch.int32,
                torch.int16,
                torch.int8,
                torch.uint8,
                torch.bool,
            ]
        )
    )
    shape = data.draw(st.lists(st.integers(1, 5), min_size=0, max_size=3))
    generator = torch.Generator().manual_seed(data.draw(st.integers(0, 2**32 - 1)))
    base = (torch.randn(shape, generator=generator) * 50).to(dtype)
    views = {"base": base}
    if base.dim() >= 2:
        views["transposed"] = base.transpose(0, -1)
        views["strided"] = base[::2, 1:]
    if base.dim() >= 1:
        views["offset"] = base.reshape(-1)[data.draw(st.integers(0, base.numel() - 1)):]
        views["expanded"] = base.reshape(-1)[:1].expand(3, data.draw(st.integers(1, 4)))
    chosen = {k: v for k, v in views.items() if data.draw(st.booleans(), label=k) or k == "base"}
    path = tmp_path_factory.mktemp("torch") / "genuine.pth"
    torch.save(chosen, path)
    got = read_torch_checkpoint_here(path)
    assert set(got) == set(chosen)
    for k, v in chosen.items():
        assert got[k].dtype == v.numpy().dtype and got[k].shape == tuple(v.shape), k
        np.testing.assert_array_equal(got[k], v.numpy(), err_msg=k)


def read_torch_checkpoint_here(path):
    from tinycnn.io.torch_checkpoint import read_torch_checkpoint
    return read_torch_checkpoint(path)
