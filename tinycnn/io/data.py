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
import math
import os
import pickle
import reprlib
import tarfile
import zlib
from pathlib import Path

import numpy as np

from .archives import Allowed, budget, check_pickle

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
# per-channel statistics of the CIFAR-10 training images (the mean and standard deviation over
# all training pixels)
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
    """(data uint8 (N, 3072), labels int64 (N,)) of one batch file; DataError naming the file and
    what is wrong. The pickle's opcodes are checked first (``archives.check_pickle``), and its
    arrays are rebuilt here from their declared bytes, never by NumPy's unpickling code."""
    raw = path.read_bytes()
    check_pickle(raw, f"{path} is not a readable CIFAR-10 batch", DataError, budget(len(raw)))
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        if not (type(batch) is dict and b"data" in batch and b"labels" in batch):
            raise DataError("expected a dict with b'data' and b'labels'")
        data, labels = _array(batch[b"data"]), _labels(batch[b"labels"])
    except DataError as e:
        raise DataError(f"{path} is not a CIFAR-10 batch: {e}") from None
    except Exception as e:  # a truncated or forged pickle can raise almost any built-in error
        raise DataError(
            f"{path} is not a readable CIFAR-10 batch: {type(e).__name__}: {e}"
        ) from None
    if data is None or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"a {type(batch[b'data']).__name__}" if data is None else \
            f"{data.dtype} {data.shape}"
        raise DataError(f"{path}: expected data of uint8 pixels, shape (N, 3072), got {got}")
    if (
        labels is None
        or labels.dtype.kind not in "iu"
        or labels.shape != (len(data),)
        or not ((labels >= 0) & (labels < 10)).all()
    ):
        got = "a " + type(batch[b"labels"]).__name__ if labels is None else \
            f"{labels.dtype} {labels.shape}"
        raise DataError(
            f"{path}: expected {len(data)} labels, integers in [0, 10), got {got}"
            + (
                f" from {labels.min()} to {labels.max()}"
                if labels is not None and labels.size and labels.dtype.kind in "iuf"
                else ""
            )
        )
    return data, labels.astype(np.int64)


def _array(value):
    """The array a pickled ndarray declared, or None if ``value`` is not one."""
    return value.array() if type(value) is _Array else None


def _labels(value):
    """Labels as an array: a pickled ndarray, or a list of plain numbers; None otherwise."""
    if type(value) is list and all(type(v) in (int, float) and abs(v) < 2**63 for v in value):
        return np.array(value) if value else np.zeros(0, np.int64)
    return _array(value)


class _Dtype:
    """What the pickle's numpy.dtype(descr, align, copy) makes, then its BUILD (byte order)."""
    __slots__ = ("descr", "order")
    NUMERIC = {"b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8"}

    def __init__(self, descr, *_):
        self.descr, self.order = descr, "|"

    def __setstate__(self, state):
        if not (type(state) is tuple and len(state) > 1):
            raise DataError(f"a dtype's state is {reprlib.repr(state)}")
        self.order = state[1]

    def dtype(self):
        descr, order = (v.decode("latin1") if type(v) is bytes else v
                        for v in (self.descr, self.order))
        if descr not in self.NUMERIC or order not in ("<", ">", "|", "="):
            raise DataError(f"an array has dtype {reprlib.repr(descr)}, byte order "
                            f"{reprlib.repr(order)}: not a number")
        return np.dtype(descr).newbyteorder("=" if order == "|" else order)


class _Array:
    """What the pickle's numpy _reconstruct(ndarray, (0,), b'b') makes, then its BUILD: (version,
    shape, dtype, fortran, raw bytes), checked by ``array`` before an array is made of them."""
    __slots__ = ("state",)

    def __init__(self, cls, *_):
        if cls is not _NDARRAY:
            raise DataError("_reconstruct of something other than numpy.ndarray")
        self.state = None

    def __setstate__(self, state):
        if self.state is not None:
            raise DataError("an array built twice")
        self.state = state

    def array(self):
        if not (type(self.state) is tuple and len(self.state) == 5):
            raise DataError(f"an array's state is {reprlib.repr(self.state)}")
        _, shape, dtype, fortran, raw = self.state
        if not (type(shape) is tuple and len(shape) <= 32 and all(type(n) is int and n >= 0
                                                                  for n in shape)
                and type(dtype) is _Dtype and type(fortran) is bool and type(raw) is bytes):
            raise DataError(f"an array's state is {reprlib.repr(self.state)}")
        dtype = dtype.dtype()
        if math.prod(shape) * dtype.itemsize != len(raw):
            raise DataError(f"an array declares shape {reprlib.repr(shape)} of {dtype} but "
                            f"holds {len(raw)} bytes")
        return np.frombuffer(raw, dtype).reshape(shape, order="F" if fortran else "C")


def _scalar(dtype, raw):
    """numpy.core.multiarray.scalar(dtype, bytes): one number."""
    if not (type(dtype) is _Dtype and type(raw) is bytes and len(raw) == dtype.dtype().itemsize):
        raise DataError("a malformed NumPy scalar")
    return np.frombuffer(raw, dtype.dtype())[0].item()


def _not_called(*_):
    raise DataError("a call of numpy.ndarray")


_NDARRAY = Allowed(_not_called)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR batch without running code: the NumPy names it may use (array and
    scalar reconstruction) resolve to stand-ins that record what the pickle declares
    (``_Array``, ``_Dtype``); everything else is refused."""
    GLOBALS = {}
    for core in ("numpy.core.multiarray", "numpy._core.multiarray"):
        GLOBALS[core, "_reconstruct"] = Allowed(_Array)
        GLOBALS[core, "scalar"] = Allowed(_scalar)
    GLOBALS["numpy", "ndarray"] = _NDARRAY
    GLOBALS["numpy", "dtype"] = Allowed(_Dtype)

    def find_class(self, module, name):
        if (module, name) in self.GLOBALS:
            return self.GLOBALS[module, name]
        raise DataError(f"refusing to unpickle {reprlib.repr(module)[1:-1]}."
                        f"{reprlib.repr(name)[1:-1]}: a CIFAR-10 batch holds only arrays")


def load_jpeg_archive(path, split):
    """Read ``cifar10-jpeg.npz``: JPEG bytes per image, labels, and a test flag. A truncated
    or forged archive is one DataError naming what is wrong."""
    from .weights import read_npz
    try:
        f = read_npz(path, ("jpeg_bytes", "offsets", "labels", "is_test"), error=DataError)
    except FileNotFoundError:
        raise DataError(f"no CIFAR-10 archive at {path}") from None
    except DataError as e:
        raise DataError(f"{e}: not a CIFAR-10 JPEG archive") from None
    blob, offsets, labels, is_test = f["jpeg_bytes"], f["offsets"], f["labels"], f["is_test"]
    n = len(labels) if labels.ndim == 1 else -1
    if not (
        n >= 0
        and blob.ndim == 1 and blob.dtype == np.uint8
        and offsets.shape == (n + 1,)
        and is_test.shape == (n,)
        and offsets.dtype.kind in "iu"
        and labels.dtype.kind in "iu"
        and offsets[0] == 0
        and (offsets[1:] > offsets[:-1]).all()
        and offsets[-1] == blob.size
        and ((labels >= 0) & (labels < len(CLASSES))).all()
    ):
        raise DataError(
            f"{path}: its offsets, labels and test flags do not describe {max(n, 0)} images of "
            f"{len(CLASSES)} classes in {blob.size} bytes (offsets {offsets.dtype} "
            f"{offsets.shape}, labels {labels.dtype} {labels.shape}, test flags {is_test.shape}): "
            "not a CIFAR-10 JPEG archive"
        )
    keep = np.flatnonzero(is_test == (split == "test"))
    images = np.empty((len(keep), 32, 32, 3), dtype=np.uint8)
    for k, i in enumerate(keep):
        images[k] = _decode(blob[offsets[i]:offsets[i + 1]].tobytes(), f"{path}: image {i}")
    return _to_float(images.transpose(0, 3, 1, 2)), labels[keep].astype(np.int64)


def _decode(encoded, what):
    """One 32 x 32 image of the archive as (32, 32, 3) uint8; DataError naming ``what``
    otherwise. Only the formats the archive is written in are opened, and the size is checked
    before any pixel is decoded."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(encoded), formats=("JPEG", "PNG")) as im:
            if im.size != (32, 32):
                raise ValueError(f"it is {im.size[0]} x {im.size[1]} pixels, not 32 x 32")
            return np.asarray(im.convert("RGB"))
    except Exception as e:      # Pillow's decoders raise many kinds on a forged stream
        why = " ".join(str(e).split())[:200]
        raise DataError(f"{what} is not a readable 32 x 32 image: {type(e).__name__}: {why}") \
            from None


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
