"""PyTorch zip checkpoints (``torch.save``) read without torch and without trusting them.

A checkpoint is a zip: ``<prefix>/data.pkl``, a pickle of the state dict, and one
record ``<prefix>/data/<key>`` of raw bytes per storage. Each tensor in the pickle is

    torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)

i.e. element [i0, i1, ...] is storage[offset + i0 * stride0 + i1 * stride1 + ...].

What a forged file could do, and what stops it here:

- run code: the unpickler resolves only OrderedDict, tensor rebuilding and storage
  types; every other global (``os.system``, ``builtins.eval``, ...) is refused, and
  pickle's EXT opcodes go through the same check;
- read memory outside a storage, or crash the process: each tensor's geometry is
  checked as PyTorch's ``set_`` checks it (sizes, strides and offset non-negative,
  offset + sum((size - 1) * stride) inside the storage) before any strided view exists;
- exhaust memory: storage records must hold exactly their declared element count,
  zip records may not declare more bytes than they can hold (see ``archives``), and a
  stride-0 (expanded) tensor is copied only up to ``MAX_EXPANDED_BYTES``.

Everything else a forged pickle can raise becomes ``UnsafeCheckpointError`` too: the
reader returns exactly the tensors that were written, or that one error.
It does not make well-formed weights from an untrusted source trustworthy.
"""
import collections
import io
import math
import pickle
import reprlib
import zipfile

import numpy as np

from .archives import FORGED_ZIP, read_record, record_info, records, regular_file

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": None,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
# NumPy 1.x's NPY_MAXDIMS; PyTorch allows more, weights never need them
MAX_DIMS = 32
# a broadcast (stride-0) tensor larger than its storage is copied up to this
MAX_EXPANDED_BYTES = 1 << 28


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that asks for more than tensors, or whose tensors are malformed."""


class _StorageType(str):
    """torch.FloatStorage and friends, by name; immutable, so a pickle's BUILD cannot alter it."""
    __slots__ = ()


class _Storage:
    """A storage reference (what persistent_load returns); its record is read when a tensor needs
    it."""
    __slots__ = ("key", "dtype", "numel")

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel


_Tensor = collections.namedtuple("_Tensor", "storage offset size stride")


def _rebuild_tensor(storage, offset, size, stride, *_):
    """torch._utils._rebuild_tensor_v2, deferred: the geometry is checked once the tensor's name is
    known."""
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *_):
    return data


def _is_count(v):
    return type(v) is int and v >= 0


def tensor_from(name, t, storage_array):
    """The NumPy array of one rebuilt tensor, after checking its geometry against its storage.
    storage_array(storage, refuse): the storage's flat array."""
    def refuse(why):
        return UnsafeCheckpointError(
            f"tensor {name!r} {why} (offset {reprlib.repr(t.offset)}, size "
            f"{reprlib.repr(t.size)}, stride {reprlib.repr(t.stride)}): refused"
        )
    if not isinstance(t.storage, _Storage):
        raise refuse("is not built on a storage record")
    flat = storage_array(t.storage, refuse)
    if not (
        isinstance(t.size, tuple) and isinstance(t.stride, tuple) and len(t.size) == len(t.stride)
    ):
        raise refuse("needs a size and a stride of the same length")
    if not all(map(_is_count, (t.offset,) + t.size + t.stride)):
        raise refuse("has a size, stride or offset that is not a non-negative integer")
    # NumPy refuses a shape whose non-zero sizes multiply past its index range, even with no
    # element
    if len(t.size) > MAX_DIMS or max(t.size, default=0) > np.iinfo(np.int64).max or \
            math.prod(n for n in t.size if n) * flat.itemsize > np.iinfo(np.intp).max:
        raise refuse(f"has more than {MAX_DIMS} dimensions or a size NumPy cannot hold")
    numel = math.prod(t.size)
    if numel == 0:
        return np.empty(t.size, flat.dtype.newbyteorder("="))
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
    if last >= len(flat):
        raise refuse(f"reaches element {last} of storage {t.storage.key!r}, which has {len(flat)}")
    if numel * flat.itemsize > max(flat.nbytes, MAX_EXPANDED_BYTES):
        raise refuse(f"would expand its storage to {numel * flat.itemsize} bytes")
    # size-1 axes: any stride
    strides = [s * flat.itemsize if n > 1 else 0 for n, s in zip(t.size, t.stride)]
    view = np.lib.stride_tricks.as_strided(
        flat[t.offset :], shape=t.size, strides=strides, writeable=False
    )
    return np.array(view, dtype=flat.dtype.newbyteorder("="))


class _TensorUnpickler(pickle.Unpickler):
    """Unpickles a checkpoint's data.pkl allowing only what a state dict of tensors needs."""

    def __init__(self, file, archive, prefix, byteorder, source):
        super().__init__(file)
        self.archive, self.prefix, self.byteorder, self.source = archive, prefix, byteorder, source
        self.storages = {}

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and _STORAGE_DTYPES.get(name) is not None:
            return _StorageType(name)
        if module == "torch" and name in _STORAGE_DTYPES:
            raise UnsafeCheckpointError(f"unsupported tensor storage torch.{name}")
        raise UnsafeCheckpointError(
            f"refusing to load {reprlib.repr(module)[1:-1]}.{reprlib.repr(name)[1:-1]} "
            "from the checkpoint: a weights file should hold only tensors (is it malicious?)"
        )

    def persistent_load(self, pid):
        if not (
            type(pid) is tuple
            and len(pid) == 5
            and pid[0] == "storage"
            and type(pid[1]) is _StorageType
            and type(pid[2]) is str
            and _is_count(pid[4])
        ):
            raise UnsafeCheckpointError(
                f"unexpected persistent id {reprlib.repr(pid)} in the checkpoint"
            )
        _, storage_type, key, _location, numel = pid
        return _Storage(
            key, np.dtype(_STORAGE_DTYPES[storage_type]).newbyteorder(self.byteorder), numel
        )

    def storage_array(self, storage, refuse):
        """The flat array of a storage record, read once; its size must match the declared
        count."""
        if (storage.key, storage.dtype) not in self.storages:
            name, dtype = f"{self.prefix}/data/{storage.key}", storage.dtype
            if name not in self.archive.namelist():
                raise refuse(f"uses storage {storage.key!r}, whose record {name} is missing")
            size = record_info(self.archive, name, self.source, UnsafeCheckpointError).file_size
            if size != storage.numel * dtype.itemsize:
                raise refuse(
                    f"uses storage {storage.key!r}, which declares {storage.numel} elements of "
                    f"{dtype.itemsize} bytes but whose record holds {size} bytes"
                )
            raw = read_record(self.archive, name, self.source, UnsafeCheckpointError)
            array = np.frombuffer(raw, dtype=np.uint8 if dtype == np.bool_ else dtype)
            self.storages[storage.key, dtype] = array != 0 if dtype == np.bool_ else array
        return self.storages[storage.key, storage.dtype]


def _byteorder(archive, prefix, source):
    """'<' or '>' from the checkpoint's byteorder record (older checkpoints have none: little)."""
    if f"{prefix}/byteorder" not in archive.namelist():
        return "<"
    order = read_record(archive, f"{prefix}/byteorder", source, UnsafeCheckpointError)
    if order not in (b"little", b"big"):
        raise UnsafeCheckpointError(f"{source}: byteorder record says {reprlib.repr(order)}")
    return "<" if order == b"little" else ">"


def read_torch_checkpoint(path):
    """{name: NumPy array} from a zip-format ``torch.save`` file, without torch.

    Returns exactly the tensors that were saved, or raises UnsafeCheckpointError
    (naming the tensor, record or global at fault) for anything else.
    """
    regular_file(path, UnsafeCheckpointError)
    try:
        archive = zipfile.ZipFile(path)
    except FORGED_ZIP as e:
        raise UnsafeCheckpointError(
            f"{path} is not a zip-format torch.save checkpoint ({e}; legacy pickle "
            "checkpoints are not read, they are not safe)"
        ) from None
    with archive:
        try:
            pkl = [
                n for n in records(archive, path, UnsafeCheckpointError) if n.endswith("/data.pkl")
            ]
            if len(pkl) != 1:
                raise UnsafeCheckpointError(
                    f"{path} has no single */data.pkl: not a torch checkpoint"
                )
            prefix = pkl[0][:-len("/data.pkl")]
            data = io.BytesIO(read_record(archive, pkl[0], path, UnsafeCheckpointError))
            unpickler = _TensorUnpickler(
                data, archive, prefix, _byteorder(archive, prefix, path), path
            )
            state = unpickler.load()
            if not (
                isinstance(state, dict)
                and all(type(k) is str and type(v) is _Tensor for k, v in state.items())
            ):
                raise UnsafeCheckpointError(f"{path} does not hold a flat dict of tensors")
            return {
                name: tensor_from(name, t, unpickler.storage_array) for name, t in state.items()
            }
        except UnsafeCheckpointError:
            raise
        # a forged pickle can make the unpickler raise almost any built-in error
        except Exception as e:
            raise UnsafeCheckpointError(
                f"{path} is not a readable checkpoint: {type(e).__name__}: "
                f"{reprlib.repr(str(e))[1:-1]}"
            ) from None
