"""Weights: safe PyTorch checkpoint reading, downloads, lookup."""
import hashlib
import io
import os
import pickle
import time
import zipfile

import numpy as np
import pytest

from tinycnn import weights


def test_reads_a_checkpoint_written_by_torch(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: it is needed to write a checkpoint")
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
    got = weights.download(source.as_uri(), tmp_path / "got.bin", checksum="sha256:" + digest[:8], log=lambda *a, **k: None)
    assert got.read_bytes() == source.read_bytes()
    with pytest.raises(weights.DownloadError, match="has sha256 [0-9a-f]{64}, expected one starting with 00000000"):
        weights.download(source.as_uri(), tmp_path / "bad.bin", checksum="sha256:00000000", log=lambda *a, **k: None)
    assert not (tmp_path / "bad.bin").exists() and not (tmp_path / "bad.bin.part").exists()


def test_offline_download_fails_fast_and_clearly(tmp_path):
    t = time.time()
    # port 9 (discard) on the loopback interface: refused at once, like a machine without network
    with pytest.raises(weights.DownloadError, match="could not download http://127.0.0.1:9/x.pth.*offline"):
        weights.download("http://127.0.0.1:9/x.pth", tmp_path / "x.pth", timeout=5, log=lambda *a, **k: None)
    assert time.time() - t < 10


def test_fetch_squeezenet_converts_to_npz(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: it is needed to write a checkpoint")
    state = {"features.0.weight": torch.randn(2, 3, 3, 3)}
    torch.save(state, tmp_path / "src.pth")
    digest = hashlib.sha256((tmp_path / "src.pth").read_bytes()).hexdigest()
    out = weights.fetch_squeezenet(tmp_path / "w", url=(tmp_path / "src.pth").as_uri(), checksum="sha256:" + digest[:8])
    with np.load(out, allow_pickle=False) as f:
        np.testing.assert_array_equal(f["features.0.weight"], state["features.0.weight"].numpy())
