"""CIFAR-10 loaders, on tiny synthetic files written by the tests."""
import hashlib
import io
import pickle
import re
import shutil
import tarfile

import numpy as np
import pytest
from PIL import Image

from tinycnn.io import data
from tinycnn.io.weights import DownloadError

from .conftest import require_cifar10


def write_batches(folder, n=4):
    """The official layout: pickled dicts with (n, 3072) uint8 rows in CHW order."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    truth = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
        labels = list(rng.integers(0, 10, n))
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": images.reshape(n, 3072), b"labels": [int(l) for l in labels]}, f)
        truth[name] = (images, labels)
    return truth


def test_python_batches(tmp_path):
    truth = write_batches(tmp_path / "cifar-10-batches-py")
    x, y = data.load_cifar10("train", data_dir=tmp_path)
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_allclose(x[4:8] * 255, truth["data_batch_2"][0], atol=1e-4)  # CHW order kept
    x, y = data.load_cifar10("test", data_dir=tmp_path)
    assert list(y) == truth["test_batch"][1]


def test_python_batches_refuse_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(data.DataError, match="refusing to unpickle builtins.print"):
        data.load_cifar10("test", data_dir=tmp_path)


GOOD_ROWS = np.zeros((4, 3072), np.uint8)


@pytest.mark.parametrize(
    "content, why",
    [
        (
            pickle.dumps({b"data": GOOD_ROWS, b"labels": [1, 2, 3, 4]})[:40],
            "is not a readable CIFAR-10 batch",
        ),  # truncated
        (b"", "is not a readable CIFAR-10 batch: EOFError"),
        (b"hello", "is not a readable CIFAR-10 batch"),
        (pickle.dumps([1, 2]), "expected a dict with b'data' and b'labels'"),
        (pickle.dumps({b"labels": [1]}), "expected a dict with b'data' and b'labels'"),
        (
            pickle.dumps({b"data": GOOD_ROWS.astype(np.float64) * 1000, b"labels": [1, 2, 3, 4]}),
            "got float64 \\(4, 3072\\)",
        ),
        (
            pickle.dumps({b"data": GOOD_ROWS[:, :100], b"labels": [1, 2, 3, 4]}),
            "got uint8 \\(4, 100\\)",
        ),
        (
            pickle.dumps({b"data": GOOD_ROWS, b"labels": [1, 2, 3, 99]}),
            "integers in \\[0, 10\\), got int64 \\(4,\\) from 1 to 99",
        ),
        (pickle.dumps({b"data": GOOD_ROWS, b"labels": [1, 2]}), "expected 4 labels"),
        (pickle.dumps({b"data": GOOD_ROWS, b"labels": [1.7, 2, 3, 4]}), "got float64"),
        (pickle.dumps({b"data": GOOD_ROWS, b"labels": None}), "expected 4 labels"),
    ],
)
def test_a_broken_python_batch_is_one_data_error(tmp_path, content, why):
    folder = tmp_path / "cifar-10-batches-py"
    write_batches(folder)
    (folder / "test_batch").write_bytes(content)
    with pytest.raises(data.DataError, match=why):
        data.load_cifar10("test", data_dir=tmp_path)


def test_jpeg_archive(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    blobs = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="PNG")  # lossless, so pixels can be compared exactly
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
    np.savez(
        tmp_path / "cifar10-jpeg.npz",
        jpeg_bytes=np.concatenate(blobs),
        offsets=offsets,
        labels=np.array([3, 1, 4, 1, 5], np.uint8),
        is_test=np.array([0, 1, 0, 0, 1], np.uint8),
        classes=np.array(data.CLASSES),
    )
    x, y = data.load_cifar10("test", data_dir=tmp_path)
    assert list(y) == [1, 5]
    np.testing.assert_allclose(x[1] * 255, images[4].transpose(2, 0, 1), atol=1e-4)
    assert data.load_cifar10("train", data_dir=tmp_path)[0].shape == (3, 3, 32, 32)


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCNN_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "PROJECT_ROOT", tmp_path)
    with pytest.raises(data.DataError, match="CIFAR-10 not found.*make data"):
        data.load_cifar10("train")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        data.load_cifar10("val")


def test_fetch_cifar10_checks_and_unpacks(tmp_path):
    write_batches(tmp_path / "src" / "cifar-10-batches-py")
    with tarfile.open(tmp_path / "c.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    md5 = hashlib.md5((tmp_path / "c.tar.gz").read_bytes()).hexdigest()
    out = data.fetch_cifar10(
        tmp_path / "dl", url=(tmp_path / "c.tar.gz").as_uri(), checksum="md5:" + md5
    )
    assert data.load_python_batches(out, "test")[0].shape == (4, 3, 32, 32)
    # a tarball already there is checked, then unpacked without a download
    (tmp_path / "c.tar.gz").unlink()
    shutil.rmtree(out)
    assert (
        data.fetch_cifar10(
            tmp_path / "dl", url="http://unreachable.invalid/", checksum="md5:" + md5
        )
        == out
    )
    assert data.load_python_batches(out, "test")[0].shape == (4, 3, 32, 32)
    with pytest.raises(DownloadError, match="not the expected file"):
        data.fetch_cifar10(tmp_path / "dl", checksum="md5:" + "0" * 32)


def test_cifar10_has_the_official_split():
    require_cifar10()
    x, y = data.load_cifar10("test")
    assert x.shape == (10000, 3, 32, 32) and np.bincount(y).tolist() == [1000] * 10


def jpeg_archive(path, images, **override):
    """Write a cifar10-jpeg.npz of PNG-encoded ``images`` (lossless), arrays replaced by
    ``override``."""
    blobs = []
    for im in images:
        buf = io.BytesIO()
        Image.fromarray(im).save(buf, format="PNG")
        blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
    arrays = dict(
        jpeg_bytes=np.concatenate(blobs),
        offsets=np.concatenate([[0], np.cumsum([len(b) for b in blobs])]),
        labels=np.arange(len(images), dtype=np.uint8) % 10,
        is_test=np.ones(len(images), np.uint8),
    )
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.mark.parametrize(
    "forge, why",
    [
        # truncated download
        (lambda p: p.write_bytes(p.read_bytes()[:300]), "is not a readable .npz of arrays"),
        # numpy would call it a pickle
        (lambda p: p.write_bytes(b"xx"), "is not a readable .npz of arrays"),
        (lambda p: jpeg_archive(p, IMAGES, labels=None), r"lacks the arrays \['labels'\]"),
        (
            lambda p: jpeg_archive(p, IMAGES, labels=np.array([0, 10, 1], np.uint8)),
            "do not describe 3 images",
        ),
        (
            lambda p: jpeg_archive(p, IMAGES, offsets=np.array([0, 5, 4, 9])),
            "do not describe 3 images",
        ),
        (
            lambda p: jpeg_archive(p, IMAGES, is_test=np.ones(2, np.uint8)),
            "do not describe 3 images",
        ),
        (
            lambda p: jpeg_archive(
                p, IMAGES, jpeg_bytes=np.full(np.load(p)["offsets"][-1], 7, np.uint8)
            ),
            "image 0 is not a readable 32 x 32 image",
        ),  # offsets right, bytes garbage
        (
            lambda p: jpeg_archive(p, [np.zeros((16, 32, 3), np.uint8)] * 3),
            "it is 32 x 16 pixels, not 32 x 32",
        ),
    ],
)
def test_a_broken_jpeg_archive_is_one_data_error(tmp_path, forge, why):
    path = jpeg_archive(tmp_path / "cifar10-jpeg.npz", IMAGES)
    # the unbroken one reads
    assert data.load_cifar10("test", data_dir=tmp_path)[0].shape == (3, 3, 32, 32)
    forge(path)
    with pytest.raises(data.DataError, match=why):
        data.load_cifar10("test", data_dir=tmp_path)


IMAGES = list(np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8))


@pytest.mark.parametrize("argv, why", [
    (["--url", "notaurl"], "could not download 'notaurl': unknown url type"),
    (["--out", ""], "--out is empty"),
    (["--out", "FILE"], "cannot write into .*afile"),
    # a forged tarball left there
    ([], "cifar-10-python.tar.gz has md5 .* not the expected file: delete it"),
])
def test_make_data_fails_in_one_line(tmp_path, monkeypatch, argv, why):
    (tmp_path / "afile").write_text("x")
    argv = [str(tmp_path / "afile") if a == "FILE" else a for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "d")]
    if not any("url" in a for a in argv):  # nothing here may reach the network
        monkeypatch.setattr(
            "tinycnn.io.weights.download", lambda *a, **k: pytest.fail("downloaded")
        )
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b" + bytes(300))
    with pytest.raises(SystemExit) as done:
        data.main(argv)
    assert re.search(why, str(done.value.code)) and str(done.value.code).startswith(
        "make data: "
    ), done.value.code
    assert not (tmp_path / "d" / "cifar-10-batches-py").exists()


def test_make_data_help_downloads_nothing(monkeypatch, capsys):
    monkeypatch.setattr("tinycnn.io.weights.download", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(SystemExit) as done:
        data.main(["--help"])
    assert done.value.code == 0 and "--out" in capsys.readouterr().out


def test_a_tarball_with_the_right_hash_that_cannot_be_unpacked_is_one_error(tmp_path):
    (tmp_path / "dl").mkdir()
    cut = tmp_path / "dl" / "cifar-10-python.tar.gz"
    # a gzip header, then nothing that decodes
    cut.write_bytes(b"\x1f\x8b\x08\x00" + bytes(200))
    md5 = hashlib.md5(cut.read_bytes()).hexdigest()
    with pytest.raises(DownloadError, match="cannot unpack .*cifar-10-python.tar.gz"):
        data.fetch_cifar10(tmp_path / "dl", checksum="md5:" + md5)
