"""CIFAR-10: the official "python version" batches and the shared JPEG archive.

Both loaders return ``(x, y)``: x float32 (N, 3, 32, 32) in [0, 1], y int64 (N,).

    x, y = load_cifar10("train")       # 50,000 images, looked up as described below
    x, y = load_cifar10("test")        # 10,000 images

Where the data comes from, in order: ``$TINYCNN_DATA_DIR/cifar-10-batches-py`` or
``data/cifar-10-batches-py`` (the official batches, fetched by ``make data``), then
``$TINYCNN_DATA_DIR/cifar10-jpeg.npz`` (JPEG-re-encoded copy of the same images).
"""
import gzip
import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np

CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
# per-channel statistics of the CIFAR-10 training images (the mean and standard deviation over all training pixels)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


# the official "python version" of CIFAR-10 and its md5 (as published with it)
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_CHECKSUM = "md5:c58f30108f718f92721af3b95e74349a"


class DataError(RuntimeError):
    """Data that is missing or not in the expected format."""


def _to_float(images_uint8):
    return images_uint8.astype(np.float32) / 255.0


def load_python_batches(folder, split):
    """Read the official batches: data_batch_1..5 (train) or test_batch (test).

    Each is a pickled dict with b"data", (10000, 3072) uint8 rows in CHW order, and
    b"labels". Only plain dicts, lists and arrays are allowed in these pickles.
    """
    folder = Path(folder)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        path = folder / name
        if not path.is_file():
            raise DataError(f"CIFAR-10 batch {path} is missing (run `make data` to download it)")
        data, labels = _read_batch(path)
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(labels)
    return _to_float(np.concatenate(xs)), np.concatenate(ys)


def _read_batch(path):
    """(data uint8 (N, 3072), labels int64 (N,)) of one batch file; DataError naming what is
    wrong."""
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except DataError:
        raise
    except Exception as e:  # a truncated or forged pickle can raise almost any built-in error
        raise DataError(
            f"{path} is not a readable CIFAR-10 batch: {type(e).__name__}: {e}"
        ) from None
    if not (isinstance(batch, dict) and b"data" in batch and b"labels" in batch):
        raise DataError(
            f"{path} is not a CIFAR-10 batch: expected a dict with b'data' and b'labels'"
        )
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(
            f"{path}: expected data of uint8 pixels, shape (N, 3072), got {data.dtype} {data.shape}"
        )
    if (
        labels.dtype.kind not in "iu"
        or labels.shape != (len(data),)
        or not ((labels >= 0) & (labels < 10)).all()
    ):
        raise DataError(
            f"{path}: expected {len(data)} labels, integers in [0, 10), got {labels.dtype} "
            f"{labels.shape}"
            + (
                f" from {labels.min()} to {labels.max()}"
                if labels.size and labels.dtype.kind in "iuf"
                else ""
            )
        )
    return data, labels.astype(np.int64)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR batches without running arbitrary code: only NumPy's array
    reconstruction is allowed (the official batches hold numpy arrays and lists)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(
            f"refusing to unpickle {module}.{name}: a CIFAR-10 batch holds only arrays"
        )


def load_jpeg_archive(path, split):
    """Read ``cifar10-jpeg.npz``: JPEG bytes per image, labels, and a test flag. A truncated
    or forged archive is one DataError naming what is wrong."""
    from PIL import Image
    from .weights import read_npz
    try:
        f = read_npz(path, ("jpeg_bytes", "offsets", "labels", "is_test"), error=DataError)
    except FileNotFoundError:
        raise DataError(f"no CIFAR-10 archive at {path}") from None
    except DataError as e:
        raise DataError(f"{e}: not a CIFAR-10 JPEG archive") from None
    blob, offsets, labels, is_test = (
        f["jpeg_bytes"].reshape(-1),
        f["offsets"],
        f["labels"],
        f["is_test"],
    )
    n = len(labels)
    if not (
        offsets.shape == (n + 1,)
        and is_test.shape == labels.shape == (n,)
        and offsets.dtype.kind in "iu"
        and labels.dtype.kind in "iu"
        and offsets[0] == 0
        and (np.diff(offsets) > 0).all()
        and offsets[-1] == blob.size
        and ((labels >= 0) & (labels < len(CLASSES))).all()
    ):
        raise DataError(
            f"{path}: its offsets, labels and test flags do not describe {n} images of "
            f"{len(CLASSES)} classes in {blob.size} bytes: not a CIFAR-10 JPEG archive"
        )
    keep = np.flatnonzero(is_test == (split == "test"))
    images = np.empty((len(keep), 32, 32, 3), dtype=np.uint8)
    for k, i in enumerate(keep):
        try:
            with Image.open(io.BytesIO(blob[offsets[i]:offsets[i + 1]].tobytes())) as im:
                if im.size != (32, 32):
                    raise ValueError(f"it is {im.size[0]} x {im.size[1]} pixels, not 32 x 32")
                images[k] = np.asarray(im.convert("RGB"))
        except (OSError, SyntaxError, EOFError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"{path}: image {i} is not a readable 32 x 32 image: {e}") from None
    return _to_float(images.transpose(0, 3, 1, 2)), labels[keep].astype(np.int64)


def load_cifar10(split="train", data_dir=None):
    """CIFAR-10 ``split`` ("train" or "test") as (x float32 (N, 3, 32, 32) in [0, 1], y int64)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = find_cifar10(data_dir)
    return load_python_batches(path, split) if path.is_dir() else load_jpeg_archive(path, split)


def find_cifar10(data_dir=None):
    """Where CIFAR-10 is: cifar-10-batches-py/ or cifar10-jpeg.npz in ``data_dir``,
    $TINYCNN_DATA_DIR or data/; DataError naming the places otherwise."""
    dirs = [
        Path(d) for d in (data_dir, os.environ.get("TINYCNN_DATA_DIR"), PROJECT_ROOT / "data") if d
    ]
    for d in dirs:
        for name in ("cifar-10-batches-py", "cifar10-jpeg.npz"):
            if (d / name).exists():
                return d / name
    raise DataError(
        "CIFAR-10 not found; looked for cifar-10-batches-py/ or cifar10-jpeg.npz in "
        + ", ".join(str(d) for d in dirs)
        + ". Run `make data` to download it, or set TINYCNN_DATA_DIR."
    )


def fetch_cifar10(folder=PROJECT_ROOT / "data", url=CIFAR10_URL, checksum=CIFAR10_CHECKSUM):
    """Download the official tarball, check it, and unpack cifar-10-batches-py/ into ``folder``.
    A tarball already in ``folder`` is unpacked only if its hash matches."""
    from .weights import DownloadError, check_file, download
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / "cifar-10-python.tar.gz"
    if tarball.is_file():
        # a file left there is trusted no more than a fresh download
        check_file(tarball, checksum)
    else:
        download(url, tarball, checksum=checksum)
    try:
        with tarfile.open(tarball) as tar:
            tar.extractall(folder, filter="data")  # the "data" filter refuses paths outside folder
    # checked, yet unreadable
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DownloadError(f"cannot unpack {tarball}: {str(e).splitlines()[0]}") from None
    return folder / "cifar-10-batches-py"


def main(argv=None):
    from .weights import fetch_command

    fetch_command(
        argv,
        target="data",
        description="Download CIFAR-10's python version and unpack it (make data).",
        url=CIFAR10_URL,
        out=PROJECT_ROOT / "data",
        out_help="to unpack cifar-10-batches-py/ into",
        fetch=fetch_cifar10,
    )


if __name__ == "__main__":
    main()
