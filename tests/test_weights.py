"""Weights: safe PyTorch checkpoint reading, downloads, lookup."""
import collections
import hashlib
import io
import os
import pickle
import re
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from tinycnn.io import weights
from tinycnn.net import StateDictError

from . import forge


def test_reads_a_checkpoint_written_by_torch(tmp_path):
    torch = pytest.importorskip(
        "torch", reason="PyTorch is not installed: it is needed to write a checkpoint"
    )
    state = {"features.0.weight": torch.randn(4, 3, 3, 3), "features.0.bias": torch.arange(4.0),
             "t": torch.randn(5, 6).t(),            # a non-contiguous view
             "half": torch.randn(3).half(), "steps": torch.tensor(7)}
    torch.save(state, tmp_path / "ckpt.pth")
    got = weights.read_torch_checkpoint(tmp_path / "ckpt.pth")
    assert set(got) == set(state)
    for k, v in state.items():
        np.testing.assert_array_equal(got[k], v.numpy())


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/tinycnn_pwned",))


def test_refuses_a_malicious_checkpoint(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": Evil()}, protocol=2))
    (tmp_path / "evil.pth").write_bytes(buffer.getvalue())
    with pytest.raises(weights.UnsafeCheckpointError, match="refusing to load (posix|os).system"):
        weights.read_torch_checkpoint(tmp_path / "evil.pth")
    assert not os.path.exists("/tmp/tinycnn_pwned")
    (tmp_path / "legacy.pth").write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(weights.UnsafeCheckpointError, match="not a zip-format"):
        weights.read_torch_checkpoint(tmp_path / "legacy.pth")


def test_download_checks_the_hash(tmp_path):
    source = tmp_path / "file.bin"
    source.write_bytes(b"tinycnn" * 1000)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    got = weights.download(
        source.as_uri(),
        tmp_path / "got.bin",
        checksum="sha256:" + digest[:8],
        log=lambda *a, **k: None,
    )
    assert got.read_bytes() == source.read_bytes()
    with pytest.raises(
        weights.DownloadError, match="has sha256 [0-9a-f]{64}, expected one starting with 00000000"
    ):
        weights.download(
            source.as_uri(),
            tmp_path / "bad.bin",
            checksum="sha256:00000000",
            log=lambda *a, **k: None,
        )
    assert not (tmp_path / "bad.bin").exists() and not (tmp_path / "bad.bin.part").exists()


def test_offline_download_fails_fast_and_clearly(tmp_path):
    t = time.time()
    # port 9 (discard) on the loopback interface: refused at once, like a machine without network
    with pytest.raises(
        weights.DownloadError, match="could not download http://127.0.0.1:9/x.pth.*offline"
    ):
        weights.download(
            "http://127.0.0.1:9/x.pth", tmp_path / "x.pth", timeout=5, log=lambda *a, **k: None
        )
    assert time.time() - t < 10


def test_fetch_squeezenet_converts_to_npz(tmp_path):
    torch = pytest.importorskip(
        "torch", reason="PyTorch is not installed: it is needed to write a checkpoint"
    )
    state = {"features.0.weight": torch.randn(2, 3, 3, 3)}
    torch.save(state, tmp_path / "src.pth")
    digest = hashlib.sha256((tmp_path / "src.pth").read_bytes()).hexdigest()
    out = weights.fetch_squeezenet(
        tmp_path / "w", url=(tmp_path / "src.pth").as_uri(), checksum="sha256:" + digest[:8]
    )
    with np.load(out, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["features.0.weight"], state["features.0.weight"].numpy())


# -- forged tensor geometry: refused like PyTorch's set_ refuses it -------------------------
def forged(tmp_path, offset, size, stride, numel=6, data_bytes=None, storage_type="FloatStorage"):
    """A checkpoint of one tensor "w" over a storage of ``numel`` float32 0, 1, 2, ..."""
    data = np.arange(numel, dtype=np.float32).tobytes() if data_bytes is None else data_bytes
    pkl = forge.state_dict(
        [("w", forge.tensor(forge.storage(storage_type, "0", numel), offset, size, stride))]
    )
    path = tmp_path / "forged.pth"
    path.write_bytes(forge.archive([("data.pkl", pkl), ("data/0", data)]))
    return path


READ_IN_A_CHILD = "import sys; from tinycnn.io import weights\n" \
                  "try:\n    weights.read_torch_checkpoint(sys.argv[1])\n" \
                  "except weights.UnsafeCheckpointError as e:\n    print('refused:', e)"


@pytest.mark.parametrize("offset, size, stride, numel, why", [
    (0, (4,), (1 << 40,), 6, "stride far past the storage (a segmentation fault before)"),
    (0, (3,), (-1,), 6, "negative stride (read memory before the storage)"),
    (10, (2,), (1,), 6, "offset past the end of the storage"),
    (5, (2,), (1,), 6, "last element one past the end"),
    (0, (2, 3), (3, 1), 1 << 20, "storage declares more elements than its bytes"),
    (0, (-2,), (1,), 6, "negative size"),
    (0, (2, 3), (1,), 6, "size and stride of different lengths"),
    (-1, (2,), (1,), 6, "negative offset"),
])
def test_forged_geometry_is_refused_naming_the_tensor(tmp_path, offset, size, stride, numel, why):
    path = forged(
        tmp_path,
        offset,
        size,
        stride,
        numel=numel,
        data_bytes=np.arange(6, dtype=np.float32).tobytes(),
    )
    done = subprocess.run(
        [sys.executable, "-c", READ_IN_A_CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (
        f"{why}: the reader died with status {done.returncode}: {done.stderr[-300:]}"
    )
    assert done.stdout.startswith("refused:") and "'w'" in done.stdout, (why, done.stdout)


def test_valid_forged_geometry_reads_exactly(tmp_path):
    flat = np.arange(12, dtype=np.float32)
    for offset, size, stride in [
        (0, (3, 4), (4, 1)),
        (1, (4, 2), (1, 5)),
        (11, (), ()),
        (2, (2, 3), (0, 3)),
        (12, (0, 5), (1, 1)),
        (3, (1, 3), (1 << 50, 2)),
    ]:
        path = forged(tmp_path, offset, size, stride, numel=12)
        got = weights.read_torch_checkpoint(path)["w"]
        np.testing.assert_array_equal(got, forge.expected_view(flat, offset, size, stride))
        assert got.shape == size and got.dtype == np.float32 and got.flags.writeable


def test_fetch_squeezenet_checks_the_hash_of_an_existing_checkpoint(tmp_path):
    folder = tmp_path / "w"
    folder.mkdir()
    pkl = forge.state_dict(
        [("features.0.weight", forge.tensor(forge.storage("FloatStorage", "0", 2), 0, (2,), (1,)))]
    )
    (folder / "squeezenet1_1.pth").write_bytes(
        forge.archive([("data.pkl", pkl), ("data/0", bytes(8))])
    )
    digest = hashlib.sha256((folder / "squeezenet1_1.pth").read_bytes()).hexdigest()
    wrong = "sha256:" + ("0" if digest[0] != "0" else "1") * 8
    with pytest.raises(
        weights.DownloadError,
        match=f"squeezenet1_1.pth has sha256 {digest}, expected one starting "
        f"with {wrong[7:]}.*delete it",
    ):
        weights.fetch_squeezenet(
            folder, url="http://127.0.0.1:9/never-fetched.pth", checksum=wrong
        )
    assert not (folder / weights.TORCHVISION_NPZ).exists()
    out = weights.fetch_squeezenet(
        folder, url="http://127.0.0.1:9/never-fetched.pth", checksum="sha256:" + digest[:8]
    )
    with np.load(out, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["features.0.weight"], np.zeros(2, np.float32))


# -- .npz weights: the header is checked against the data before anything is allocated -------
def npz_with_header(path, header, data=b"\0" * 64):
    """An .npz whose member w.npy has the given .npy header dict over ``data`` bytes."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, header)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("w.npy", member.getvalue() + data)
    return path


def test_npz_declaring_a_huge_shape_fails_before_allocating_it(tmp_path):
    import tracemalloc

    path = npz_with_header(
        tmp_path / "huge.npz", {"descr": "<f4", "fortran_order": False, "shape": (1 << 29,)}
    )
    tracemalloc.start()
    try:
        with pytest.raises(StateDictError, match=r"w.npy declares shape \(536870912,\) of float32 "
                                                         r"\(2147483648 bytes\) but holds 64"):
            weights.read_npz(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50e6, f"reading a 2 GB header over 64 bytes allocated {peak / 1e6:.0f} MB"


def test_npz_of_python_objects_is_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'canary'}",))
    np.savez(tmp_path / "objects.npz", w=np.array([Boom()], dtype=object))
    with pytest.raises(StateDictError, match="w.npy holds Python objects"):
        weights.read_npz(tmp_path / "objects.npz")
    assert not (tmp_path / "canary").exists()


def patch_headers(data, *, version=None, flags=0):
    """Zip bytes with every record's "version needed to extract" set to ``version`` and general
    purpose flag bits ``flags`` set, in the local headers and the central directory alike
    (APPNOTE 4.3.7 and 4.3.12: the fields after the signature and, centrally, "version made
    by")."""
    data = bytearray(data)
    for signature, at in ((b"PK\x03\x04", 4), (b"PK\x01\x02", 6)):
        start = data.find(signature)
        while start != -1:
            if version is not None:
                data[start + at:start + at + 2] = version.to_bytes(2, "little")
            old = int.from_bytes(data[start + at + 2:start + at + 4], "little")
            data[start + at + 2:start + at + 4] = (old | flags).to_bytes(2, "little")
            start = data.find(signature, start + 4)
    return bytes(data)


# forgeries that zipfile does not implement (a CI run drew the first: zipfile raised
# NotImplementedError, "zip file version 6.4", through the checkpoint reader)
ZIP_FEATURES = [
    (dict(version=64), "zip file version 6.4"),
    (dict(flags=0x1), "is encrypted"),
    (dict(flags=0x20), "compressed patched data"),
    (dict(flags=0x40), "strong encryption"),
]


@pytest.mark.parametrize("patch, why", ZIP_FEATURES)
def test_zip_features_tinycnn_does_not_read_are_one_error(tmp_path, patch, why):
    flat = np.arange(4, dtype=np.float32)
    checkpoint = forge.archive([("data.pkl", forge.state_dict([("w", forge.tensor(
        forge.storage("FloatStorage", "0", 4), 0, (4,), (1,)))])), ("data/0", flat.tobytes())])
    npz = io.BytesIO()
    np.savez(npz, w=flat)
    for name, good, read, error in (
        ("c.pth", checkpoint, weights.read_torch_checkpoint, weights.UnsafeCheckpointError),
        ("w.npz", npz.getvalue(), weights.read_npz, StateDictError),
    ):
        (tmp_path / name).write_bytes(good)
        # the unpatched archive reads
        assert np.array_equal(read(tmp_path / name)["w"], flat)
        (tmp_path / name).write_bytes(patch_headers(good, **patch))
        with pytest.raises(error, match=why):
            read(tmp_path / name)


def test_a_device_or_fifo_is_refused_without_reading_it(tmp_path):
    """zipfile would read /dev/zero for ever (looking for the end record), and block on a FIFO."""
    os.mkfifo(tmp_path / "fifo.npz")
    for path in ("/dev/zero", tmp_path / "fifo.npz"):
        with pytest.raises(StateDictError, match="is not a regular file"):
            weights.read_npz(path)
        with pytest.raises(weights.UnsafeCheckpointError, match="is not a regular file"):
            weights.read_torch_checkpoint(path)


@pytest.mark.parametrize("argv, why", [
    (["--url", "notaurl"], "could not download 'notaurl': unknown url type"),
    (["--url", "http://[::1"], "Invalid IPv6 URL"),
    (["--out", ""], "--out is empty"),
    (["--out", "FILE"], "cannot write into .*afile"),
])
def test_make_weights_fails_in_one_line(tmp_path, argv, why):
    (tmp_path / "afile").write_text("x")
    argv = [str(tmp_path / "afile") if a == "FILE" else a for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "w")]
    with pytest.raises(SystemExit) as done:
        weights.main(argv)
    assert re.search(why, str(done.value.code)) and str(done.value.code).startswith(
        "make weights: "
    )


# -- issue 28: a budget per file, linear time, nothing live changed --------------------------
from tinycnn.io import torch_checkpoint  # noqa: E402
from tinycnn.io.archives import budget  # noqa: E402

from .children import MB, peak_of_imports, run_measured  # noqa: E402

READ_AND_REPORT = """
from tinycnn.io.weights import (StateDictError, UnsafeCheckpointError, read_npz,
                                read_torch_checkpoint)
read = read_npz if %(path)r.endswith(".npz") else read_torch_checkpoint
try:
    print("read", sorted(read(%(path)r))[:5])
except (StateDictError, UnsafeCheckpointError) as e:
    print("refused:", e)
"""


def read_measured(path):
    """(stdout, peak memory above the imports, seconds) of reading ``path`` in a child."""
    run = run_measured(READ_AND_REPORT % {"path": str(path)}, timeout=120)
    assert run.returncode == 0 and not run.timed_out, run.stderr[-500:]
    return run.stdout, run.peak - peak_of_imports("tinycnn.io.weights"), run.seconds


def test_tensors_sharing_a_storage_are_views_of_it_as_in_torch(tmp_path):
    """torch.save of tied weights: one storage, three tensors (one transposed, one offset)."""
    flat = np.arange(12, dtype=np.float32)
    state = {"w": ("0", 0, (3, 4), (4, 1)), "w.T": ("0", 0, (4, 3), (1, 4)),
             "tail": ("0", 5, (7,), (1,)), "b": ("1", 0, (2,), (1,))}
    pkl = forge.torch_like_pickle(state, {"0": ("FloatStorage", 12), "1": ("LongStorage", 2)})
    path = tmp_path / "tied.pth"
    path.write_bytes(forge.archive([("data.pkl", pkl), ("data/0", flat.tobytes()),
                                    ("data/1", np.array([7, 8], "<i8").tobytes())]))
    got = weights.read_torch_checkpoint(path)
    for name, (key, offset, size, stride) in state.items():
        source = flat if key == "0" else np.array([7, 8])
        np.testing.assert_array_equal(got[name], forge.expected_view(source, offset, size, stride))
    assert np.shares_memory(got["w"], got["w.T"]) and np.shares_memory(got["w"], got["tail"])
    got["w"][1, 1] = -1                             # as in torch: one storage, written once
    assert got["w.T"][1, 1] == -1 and got["tail"][0] == -1


def aliases(count, length):
    """A checkpoint of ``count`` names, each a stride-0 view of ``length`` over one float."""
    state = {f"w{i}": ("0", 0, (length,), (0,)) for i in range(count)}
    pkl = forge.torch_like_pickle(state, {"0": ("FloatStorage", 1)})
    return forge.archive([("data.pkl", pkl), ("data/0", bytes(4))])


def test_many_names_for_one_storage_cost_nothing_and_are_bounded(tmp_path):
    """Each name was a copy, its size capped per tensor: a few kilobytes returned gigabytes.
    Now they are views, and all of them together may hold no more than the file's budget."""
    (tmp_path / "few.pth").write_bytes(aliases(64, 1 << 16))        # 16 MB of views
    got = weights.read_torch_checkpoint(tmp_path / "few.pth")
    assert len(got) == 64 and all(np.shares_memory(got["w0"], v) for v in got.values())
    data = aliases(1000, 1 << 20)                   # 4 GB of views, from a few kilobytes
    (tmp_path / "many.pth").write_bytes(data)
    out, peak, seconds = read_measured(tmp_path / "many.pth")
    assert out.startswith("refused:") and "its tensors hold" in out and "many.pth" in out, out
    assert peak < 2 * budget(len(data)) and seconds < 30, (peak / MB, seconds)


def memo_checkpoint(opcode):
    """A good checkpoint whose pickle stores its first object at memo index 2**30."""
    pkl = forge.state_dict([("w", forge.tensor(forge.storage("FloatStorage", "0", 2), 0, (2,),
                                                (1,)))])
    pkl = pkl[:2] + b"N" + opcode + b"0" + pkl[2:]
    return forge.archive([("data.pkl", pkl), ("data/0", bytes(8))])


@pytest.mark.parametrize("opcode", [b"r\0\0\0\x40", b"j\0\0\0\x40", b"p1073741824\n"])
def test_a_huge_memo_index_is_refused_before_unpickling(tmp_path, opcode):
    """LONG_BINPUT 2**30 made CPython's unpickler allocate (and zero) an 8 GB memo."""
    path = tmp_path / "memo.pth"
    path.write_bytes(memo_checkpoint(opcode))
    out, peak, seconds = read_measured(path)
    assert out.startswith("refused:") and "memo index 1073741824" in out and "memo.pth" in out
    assert peak < 16 * MB and seconds < 30, (peak / MB, seconds)


@pytest.mark.parametrize("suffix", [".npz", ".pth"])
def test_records_sharing_one_compressed_stream_are_refused(tmp_path, suffix):
    """64 records inflating one shared 4 MB stream of zeros: 256 MB from a 10 KB file (and a
    checkpoint whose pickle names each of them as a storage)."""
    kernel, count = bytes(4 << 20), 64
    if suffix == ".npz":
        data = forge.overlapping_zip([f"k{i}.npy" for i in range(count)], kernel)
    else:
        names = [f"archive/data/{i}" for i in range(count)]
        with zipfile.ZipFile(io.BytesIO(forge.overlapping_zip(names, kernel))) as probe:
            sizes = [probe.getinfo(n).file_size for n in names]         # what each inflates to
        pkl = forge.state_dict([(f"t{i}", forge.tensor(forge.storage("ByteStorage", str(i), n), 0,
                                                       (n,), (1,))) for i, n in enumerate(sizes)])
        data = forge.overlapping_zip(names, kernel, first=[("archive/data.pkl", pkl)])
    path = tmp_path / f"shared{suffix}"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as z:            # zipfile itself reads every record
        assert all(len(z.read(info)) >= len(kernel) for info in z.infolist()[-3:])
    out, peak, seconds = read_measured(path)
    assert out.startswith("refused:") and re.search("records .* overlap", out), out
    assert str(path) in out
    assert peak < 2 * budget(len(data)) and seconds < 30, (peak / MB, seconds)


def test_records_must_lie_in_the_file_and_agree_with_their_local_headers(tmp_path):
    good = bytearray(forge.zip_of([("w.npy", forge.npy(np.arange(3.0)))]))
    at = good.find(b"PK\x01\x02")
    for field, value, why in [(42, 1 << 30, "starts outside the file"),       # offset
                              (20, 1 << 20, "declares")]:                    # compressed size
        forged = bytearray(good)
        forged[at + field:at + field + 4] = value.to_bytes(4, "little")
        (tmp_path / "w.npz").write_bytes(forged)
        with pytest.raises(StateDictError, match=why):
            weights.read_npz(tmp_path / "w.npz")


@pytest.mark.parametrize("suffix", [".npz", ".pth"])
def test_many_records_one_twice_take_linear_time(tmp_path, suffix):
    """150,000 records and one duplicate took minutes in a quadratic duplicate check."""
    n = 150_000
    records = [(f"k{i}.npy", b"") for i in range(n)] + [("k7.npy", b"")]
    (tmp_path / f"many{suffix}").write_bytes(forge.archive(records))
    error = StateDictError if suffix == ".npz" else weights.UnsafeCheckpointError
    read = weights.read_npz if suffix == ".npz" else weights.read_torch_checkpoint
    start = time.perf_counter()
    with pytest.raises(error, match="1 duplicate record"):
        read(tmp_path / f"many{suffix}")
    assert time.perf_counter() - start < 15


def test_many_storages_take_linear_time(tmp_path):
    """60,000 storages took a minute and a half in a quadratic storage lookup."""
    n = 60_000
    state = {f"t{i}": (str(i), 0, (64,), (1,)) for i in range(n)}
    pkl = forge.torch_like_pickle(state, {str(i): ("FloatStorage", 64) for i in range(n)})
    records = [(f"data/{i}", np.full(64, i, np.float32).tobytes()) for i in range(n)]
    (tmp_path / "many.pth").write_bytes(forge.archive([("data.pkl", pkl)] + records))
    start = time.perf_counter()
    got = weights.read_torch_checkpoint(tmp_path / "many.pth")
    assert time.perf_counter() - start < 30
    assert len(got) == n and got["t59999"][63] == 59999


def snapshot(functions):
    """What BUILD, SETITEMS or APPENDS could change in a function or class."""
    return [(f.__dict__.copy() if isinstance(f.__dict__, dict) else dict(f.__dict__),
             getattr(f, "__defaults__", None), getattr(f, "__kwdefaults__", None),
             f.__name__, f.__qualname__, getattr(f, "__code__", None)) for f in functions]


TINYCNN_OBJECTS = [torch_checkpoint._rebuild_tensor, torch_checkpoint._rebuild_parameter,
                   torch_checkpoint._StateDict, torch_checkpoint._StorageType,
                   torch_checkpoint._Storage, torch_checkpoint._Tensor,
                   torch_checkpoint.tensor_from, collections.OrderedDict]
GOOD = forge.tensor(forge.storage("FloatStorage", "0", 2), 0, (2,), (1,))
REBUILD = forge.global_("torch._utils", "_rebuild_tensor_v2")
SLOTS = forge.value((None, {"__defaults__": (7,), "__name__": "x", "__qualname__": "x"}))
CHANGES = {
    "BUILD on the rebuilding function": REBUILD + SLOTS + b"b0",
    "BUILD of a __dict__ on it": REBUILD + forge.value({"x": 1}) + b"b0",
    "BUILD on OrderedDict": forge.global_("collections", "OrderedDict") + SLOTS + b"b0",
    "BUILD on a storage type": forge.global_("torch", "FloatStorage") + SLOTS + b"b0",
    "BUILD on a storage": forge.storage("FloatStorage", "0", 2) + SLOTS + b"b0",
    "BUILD on a tensor": GOOD + SLOTS + b"b0",
    "SETITEMS on a global": REBUILD + b"(" + forge.value("a") + forge.value(1) + b"u0",
    "SETITEM on a global": forge.global_("collections", "OrderedDict") + forge.value("a")
    + forge.value(1) + b"s0",
    "APPENDS on a global": REBUILD + b"(" + forge.value(1) + b"e0",
    "INST": b"(" + b"icollections\nOrderedDict\n0",
    "OBJ": b"(" + forge.global_("collections", "OrderedDict") + b"o0",
    "NEWOBJ": forge.global_("collections", "OrderedDict") + b")\x810",
    "NEWOBJ_EX": forge.global_("collections", "OrderedDict") + b")}\x920",
}


@pytest.mark.parametrize("how", sorted(CHANGES))
def test_a_forged_pickle_cannot_change_tinycnn(tmp_path, how):
    """BUILD on the allowed tensor-rebuilding function set its defaults for the whole process;
    nothing a pickle did not make can be changed now, and opcodes that make objects without
    a call (INST, OBJ, NEWOBJ) are refused."""
    before = snapshot(TINYCNN_OBJECTS)
    pkl = b"\x80\x02" + CHANGES[how] + forge.state_dict([("w", GOOD)])[2:]
    path = tmp_path / "change.pth"
    path.write_bytes(forge.archive([("data.pkl", pkl), ("data/0", bytes(8))]))
    with pytest.raises(weights.UnsafeCheckpointError) as e:
        weights.read_torch_checkpoint(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
    assert snapshot(TINYCNN_OBJECTS) == before
    assert torch_checkpoint._rebuild_tensor("s", 0, (1,), (1,)) == ("s", 0, (1,), (1,))


def test_a_state_dict_as_torch_pickles_it_reads(tmp_path):
    """torch.save's pickle of a state_dict(): protocol 2, memo, an OrderedDict whose _metadata
    is set by BUILD (on the fresh OrderedDict: allowed, and dropped)."""
    state = {f"layer{i}.weight": (str(i), 0, (2, 3), (3, 1)) for i in range(300)}
    pkl = forge.torch_like_pickle(state, {str(i): ("DoubleStorage", 6) for i in range(300)})
    records = [(f"data/{i}", np.arange(6.0).tobytes() * 1) for i in range(300)]
    (tmp_path / "sd.pth").write_bytes(forge.archive([("data.pkl", pkl)] + records))
    got = weights.read_torch_checkpoint(tmp_path / "sd.pth")
    assert list(got) == list(state)
    np.testing.assert_array_equal(got["layer299.weight"], np.arange(6.0).reshape(2, 3))


NPY_HEADERS = [
    ("(-1, -1)", b"\0" * 4, "declares shape \\(-1, -1\\)"),
    ("(-2, -2)", b"\0" * 16, "declares shape \\(-2, -2\\)"),
    ("(4611686018427387904, 0)", b"", "declares shape \\(4611686018427387904, 0\\)"),
    ("(0,) * 65", b"", "unreadable .npy header"),
    ("(" + "0, " * 65 + ")", b"", "declares shape"),
    ("(" + "-" * 5000 + "1,)", b"", "unreadable .npy header: (RecursionError|MemoryError)"),
    ("(" * 300 + ")" * 300, b"", "unreadable .npy header"),
    ("(" * 50 + "1," + ")" * 50, b"", "declares shape"),
    ("(10**30,)", b"", "unreadable .npy header"),
    ("(1000000000000000000000000000000,)", b"", "declares shape"),
]


@pytest.mark.parametrize("shape, data, why", NPY_HEADERS)
def test_npy_headers_numpy_cannot_take_are_one_error(tmp_path, shape, data, why):
    """Negative or absurd shapes were a plain ValueError; a header that exhausts Python's
    parser a MemoryError ("out of memory" for an 8 KB file)."""
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % shape
    header = text.encode("latin1") + b" " * (-(len(text) + 11) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data
    (tmp_path / "w.npz").write_bytes(forge.zip_of([("w.npy", member)]))
    with pytest.raises(StateDictError, match=why) as e:
        weights.read_npz(tmp_path / "w.npz")
    assert str(e.value).startswith(str(tmp_path / "w.npz")) and "\n" not in str(e.value)
