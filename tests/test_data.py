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
            pickle.dump({b"data": images.reshape(n, 3072), b"labels": [int(v) for v in labels]}, f)
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
        (b"", "is not a readable CIFAR-10 batch: its pickle is not readable: .*exhausted"),
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


# -- issue 28: forged batches and archives, one DataError naming the file --------------------
def batch_file(tmp_path, content):
    folder = tmp_path / "cifar-10-batches-py"
    if not folder.exists():
        write_batches(folder)
    (folder / "test_batch").write_bytes(content)
    return folder / "test_batch"


def python2_batch(rows, labels):
    """A batch as the official files are: Python 2's cPickle, protocol 2, str for bytes
    (SHORT_BINSTRING / BINSTRING), the array rebuilt by numpy.core.multiarray._reconstruct
    with the dtype's byte order set by BUILD."""
    def string(b):
        short = len(b) < 256
        return (b"U" + bytes([len(b)]) if short else b"T" + len(b).to_bytes(4, "little")) + b
    dtype = b"cnumpy\ndtype\nq\x01" + string(b"u1") + b"K\x00K\x01\x87Rq\x02(K\x03" \
        + string(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    array = b"cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04K\x00\x85" \
        + string(b"b") + b"\x87Rq\x05(K\x01" + b"M" + len(rows).to_bytes(2, "little") \
        + b"M\x00\x0c\x86" + dtype + b"\x89" + string(rows.tobytes()) + b"tb"
    items = string(b"data") + array + string(b"labels") + b"](" \
        + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    return b"\x80\x02}q\x00(" + items + b"u."


def test_a_batch_as_python_2_wrote_it_reads(tmp_path):
    rows = np.random.default_rng(3).integers(0, 256, (4, 3072), dtype=np.uint8)
    path = batch_file(tmp_path, python2_batch(rows, [3, 1, 4, 1]))
    assert pickle.loads(path.read_bytes(), encoding="bytes")[b"labels"] == [3, 1, 4, 1]
    x, y = data.load_python_batches(path.parent, "test")
    np.testing.assert_array_equal(x.reshape(4, 3072) * 255, rows)
    assert list(y) == [3, 1, 4, 1]


class Shape0d:
    def __reduce__(self):
        return (np.array, (3,))


@pytest.mark.parametrize("batch, why", [
    ({b"data": GOOD_ROWS, b"labels": np.array(3)}, r"expected 4 labels.*got int64 \(\)"),
    ({b"data": GOOD_ROWS, b"labels": [[1], [2], [3], [4]]}, "expected 4 labels.*got a list"),
    ({b"data": GOOD_ROWS, b"labels": ["1", "2", "3", "4"]}, "expected 4 labels.*got a list"),
    ({b"data": GOOD_ROWS, b"labels": [2**70] * 4}, "expected 4 labels.*got a list"),
    ({b"data": {b"data": GOOD_ROWS, b"labels": [1] * 4}, b"labels": [1] * 4},
     "expected data .*got a dict"),
    ({b"data": GOOD_ROWS.tolist(), b"labels": [1] * 4}, "expected data .*got a list"),
    ({b"data": GOOD_ROWS.tobytes(), b"labels": [1] * 4}, "expected data .*got a bytes"),
    ({b"data": np.array(7, np.uint8), b"labels": [1] * 4}, r"expected data .*got uint8 \(\)"),
    ({b"data": GOOD_ROWS.astype(">u2"), b"labels": [1] * 4}, r"got >u2 \(4, 3072\)"),
    ({b"data": np.array(["x"] * 4), b"labels": [1] * 4}, "dtype 'U1'.*not a number"),
    ([{b"data": GOOD_ROWS, b"labels": [1] * 4}], "expected a dict with b'data'"),
    ({b"data": Shape0d(), b"labels": [1] * 4}, "refusing to unpickle numpy.*array"),
])
def test_a_batch_of_the_wrong_structure_is_one_data_error(tmp_path, batch, why):
    path = batch_file(tmp_path, pickle.dumps(batch))
    with pytest.raises(data.DataError, match=why) as e:
        data.load_cifar10("test", data_dir=tmp_path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


ARRAY = pickle.dumps(GOOD_ROWS, protocol=2)[2:-1]
FORGED = {
    "BUILD on numpy.dtype": b"cnumpy\ndtype\n" + b"(K\x03X\x01\x00\x00\x00>tb0",
    "BUILD on _reconstruct": b"cnumpy.core.multiarray\n_reconstruct\n" + b"}b0",
    "BUILD twice on an array": ARRAY + b")b0",
    "OBJ": b"(cnumpy\ndtype\nX\x02\x00\x00\x00u1o0",
    "NEWOBJ": b"cnumpy\ndtype\n)\x810",
    "memo index 2**30": b"Nr\x00\x00\x00\x400",
    "EXT1": b"\x82\x01",
}


@pytest.mark.parametrize("how", sorted(FORGED))
def test_a_forged_batch_changes_nothing_and_is_one_data_error(tmp_path, how):
    u1 = np.dtype("u1")
    before = (u1.byteorder, u1.str, np.dtype(">u4").str, np.dtype("u1").__reduce__())
    body = pickle.dumps({b"data": GOOD_ROWS, b"labels": [1, 2, 3, 4]}, protocol=2)
    path = batch_file(tmp_path, body[:2] + FORGED[how] + body[2:])
    with pytest.raises(data.DataError) as e:
        data.load_cifar10("test", data_dir=tmp_path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
    assert (u1.byteorder, u1.str, np.dtype(">u4").str, np.dtype("u1").__reduce__()) == before


def test_a_huge_memo_index_in_a_batch_costs_nothing(tmp_path):
    """LONG_BINPUT 2**30 made CPython's unpickler zero an 8 GB memo for a 30-byte file."""
    from .children import MB, peak_of_imports, run_measured
    path = batch_file(tmp_path, b"\x80\x02Nr\x00\x00\x00\x40.")
    run = run_measured("from pathlib import Path\nfrom tinycnn.io.data import DataError, "
                       "_read_batch\ntry:\n    _read_batch(Path(%r))\nexcept DataError as e:\n"
                       "    print('refused:', e)" % str(path), timeout=60)
    assert run.returncode == 0 and "refused:" in run.stdout and "memo index" in run.stdout
    assert run.peak - peak_of_imports("tinycnn.io.data") < 16 * MB and run.seconds < 30


def gif(im):
    buf = io.BytesIO()
    Image.fromarray(im).save(buf, format="GIF")
    return buf.getvalue()


def png_cut(im):
    buf = io.BytesIO()
    Image.fromarray(im).save(buf, format="PNG")
    return buf.getvalue()[:-40]


@pytest.mark.parametrize("override, why", [
    (dict(labels=np.array(3, np.uint8)), "do not describe 0 images"),
    (dict(labels=np.zeros((3, 1), np.uint8)), "do not describe 0 images"),
    (dict(offsets=np.array([0.0, 1.0, 2.0, 3.0])), "do not describe 3 images"),
    (dict(offsets=np.array([], np.int64)), "do not describe 3 images"),
    (dict(is_test=np.array(1, np.uint8)), "do not describe 3 images"),
])
def test_a_jpeg_archive_of_the_wrong_structure_is_one_data_error(tmp_path, override, why):
    path = jpeg_archive(tmp_path / "cifar10-jpeg.npz", IMAGES, **override)
    with pytest.raises(data.DataError, match=why) as e:
        data.load_cifar10("test", data_dir=tmp_path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


@pytest.mark.parametrize("encode, why", [
    (gif, "image 1 is not a readable 32 x 32 image: UnidentifiedImageError"),   # not JPEG/PNG
    (png_cut, "image 1 is not a readable 32 x 32 image"),
    (lambda im: b"\xff\xd8\xff\xdb" + bytes(60), "image 1 is not a readable 32 x 32 image"),
])
def test_an_undecodable_image_in_the_archive_is_one_data_error(tmp_path, encode, why):
    blobs = [np.frombuffer(_png(IMAGES[0]), np.uint8), np.frombuffer(encode(IMAGES[1]), np.uint8)]
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])])
    np.savez(tmp_path / "cifar10-jpeg.npz", jpeg_bytes=np.concatenate(blobs), offsets=offsets,
             labels=np.array([1, 2], np.uint8), is_test=np.ones(2, np.uint8))
    with pytest.raises(data.DataError, match=why) as e:
        data.load_cifar10("test", data_dir=tmp_path)
    assert "\n" not in str(e.value)


def _png(im):
    buf = io.BytesIO()
    Image.fromarray(im).save(buf, format="PNG")
    return buf.getvalue()
