"""Weights: safe PyTorch checkpoint reading, downloads, lookup."""
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
