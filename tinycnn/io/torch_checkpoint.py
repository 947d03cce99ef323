"""PyTorch zip checkpoints (``torch.save``) read without torch and without trusting them.

A checkpoint is a zip: ``<prefix>/data.pkl``, a pickle of the state dict, and one
record ``<prefix>/data/<key>`` of raw bytes per storage. Each tensor in the pickle is

    torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)

i.e. element [i0, i1, ...] is storage[offset + i0 * stride0 + i1 * stride1 + ...].

What a forged file could do, and what stops it here:

- run code: the unpickler resolves only OrderedDict, tensor rebuilding and storage
  types; every other global (``os.system``, ``builtins.eval``, ...) is refused, and
  opcodes a state dict does not need (EXT, INST, OBJ, NEWOBJ, ...) are refused before
  unpickling (``archives.check_pickle``);
- change tinycnn: what find_class returns is a stand-in that can be called and nothing
  else (``archives.Allowed``): BUILD on it, or on a storage or tensor reference, is
  refused; SETITEMS and APPENDS can only reach dicts and lists the pickle made itself;
- read memory outside a storage, or crash the process: each tensor's geometry is
  checked as PyTorch's ``set_`` checks it (sizes, strides and offset non-negative,
  offset + sum((size - 1) * stride) inside the storage) before any strided view exists;
- exhaust memory: the zip records, the pickle's objects and the tensors (counted at
  their full size, though they are views) each fit the file's budget
  (``archives.budget``); storage records must hold exactly their declared element count;
  a storage is read once, and every tensor on it is a view of it, as in PyTorch
  (writing one changes the others).

Everything else a forged pickle can raise becomes ``UnsafeCheckpointError`` too, one line
naming the file: the reader returns exactly the tensors that were written, or that error.
It does not make well-formed weights from an untrusted source trustworthy.
"""
import collections
import io
import math
import os
import pickle
import reprlib
import zipfile

import numpy as np

from .archives import (FORGED_ZIP, Allowed, PickleRefused, budget, check_pickle,
                       checked_records, read_record, record_info, refuse_build, regular_file)

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


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that asks for more than tensors, or whose tensors are malformed."""


class _StorageType(str):
    """torch.FloatStorage and friends, by name; immutable, and BUILD on it is refused."""
    __slots__ = ()
    __setstate__ = refuse_build


class _Storage:
    """A storage reference (what persistent_load returns); its record is read when a tensor needs
    it."""
    __slots__ = ("key", "dtype", "numel")
    __setstate__ = refuse_build

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel


class _Tensor(collections.namedtuple("_Tensor", "storage offset size stride")):
    __slots__ = ()
    __setstate__ = refuse_build


class _StateDict(collections.OrderedDict):
    """What the pickle's OrderedDict() makes. torch.save sets its ``_metadata`` by BUILD;
    tinycnn does not need it and drops it."""

    def __setstate__(self, state):
        pass


def _rebuild_tensor(storage, offset, size, stride, *_):
    """torch._utils._rebuild_tensor_v2, deferred: the geometry is checked once the tensor's name is
    known."""
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *_):
    return data


GLOBALS = {
    ("collections", "OrderedDict"): Allowed(_StateDict),
    ("torch._utils", "_rebuild_tensor_v2"): Allowed(_rebuild_tensor),
    ("torch._utils", "_rebuild_parameter"): Allowed(_rebuild_parameter),
}


def _is_count(v):
    return type(v) is int and v >= 0


def tensor_from(name, t, storage_array):
    """The NumPy array of one rebuilt tensor, a view of its storage, after checking its geometry
    against the storage. storage_array(storage, refuse): the storage's flat array."""
    def refuse(why):
        return UnsafeCheckpointError(
            f"tensor {reprlib.repr(name)} {why} (offset {reprlib.repr(t.offset)}, size "
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
    if 0 in t.size:
        return np.empty(t.size, flat.dtype)
    last = t.offset + sum((n - 1) * s for n, s in zip(t.size, t.stride))
    if last >= len(flat):
        raise refuse(f"reaches element {last} of storage {t.storage.key!r}, which has {len(flat)}")
    # size-1 axes: any stride
    strides = [s * flat.itemsize if n > 1 else 0 for n, s in zip(t.size, t.stride)]
    return np.lib.stride_tricks.as_strided(flat[t.offset:], shape=t.size, strides=strides)


class _TensorUnpickler(pickle.Unpickler):
    """Unpickles a checkpoint's data.pkl allowing only what a state dict of tensors needs."""

    def __init__(self, file, archive, prefix, byteorder, source):
        super().__init__(file)
        self.archive, self.prefix, self.byteorder, self.source = archive, prefix, byteorder, source
        self.storages, self.dtypes = {}, {}

    def find_class(self, module, name):
        if (module, name) in GLOBALS:
            return GLOBALS[module, name]
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
        if storage_type not in self.dtypes:
            self.dtypes[storage_type] = np.dtype(_STORAGE_DTYPES[storage_type]).newbyteorder(
                self.byteorder)
        return _Storage(key, self.dtypes[storage_type], numel)

    def storage_array(self, storage, refuse):
        """The flat array of a storage record in native byte order, read once; its size must
        match the declared count, and every tensor on it must declare the same type."""
        if storage.key in self.storages:
            array, dtype = self.storages[storage.key]
            if dtype != storage.dtype:
                raise refuse(f"uses storage {storage.key!r} as {storage.dtype}, which another "
                             f"tensor uses as {dtype}")
            return array
        name, dtype = f"{self.prefix}/data/{storage.key}", storage.dtype
        try:
            size = record_info(self.archive, name, self.source, UnsafeCheckpointError).file_size
        except UnsafeCheckpointError:
            raise refuse(f"uses storage {storage.key!r}, whose record {name} is missing "
                         "or unreadable") from None
        if size != storage.numel * dtype.itemsize:
            raise refuse(
                f"uses storage {storage.key!r}, which declares {storage.numel} elements of "
                f"{dtype.itemsize} bytes but whose record holds {size} bytes"
            )
        raw = read_record(self.archive, name, self.source, UnsafeCheckpointError)
        if dtype == np.bool_:
            array = np.frombuffer(raw, np.uint8) != 0
        else:       # a copy only when the byte order is not this machine's
            array = np.frombuffer(raw, dtype).astype(dtype.newbyteorder("="), copy=False)
        self.storages[storage.key] = array, dtype
        return array


def _byteorder(archive, names, prefix, source):
    """'<' or '>' from the checkpoint's byteorder record (older checkpoints have none: little)."""
    if f"{prefix}/byteorder" not in names:
        return "<"
    order = read_record(archive, f"{prefix}/byteorder", source, UnsafeCheckpointError)
    if order not in (b"little", b"big"):
        raise UnsafeCheckpointError(f"{source}: byteorder record says {reprlib.repr(order)}")
    return "<" if order == b"little" else ">"


def read_torch_checkpoint(path):
    """{name: NumPy array} from a zip-format ``torch.save`` file, without torch.

    Returns exactly the tensors that were saved (tensors sharing a storage are views of one
    array, as in PyTorch), or raises UnsafeCheckpointError, one line naming the file and the
    tensor, record or global at fault, for anything else.
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
            return _read(archive, path)
        except UnsafeCheckpointError as e:
            if str(e).startswith(str(path)):
                raise
            raise UnsafeCheckpointError(f"{path}: {e}") from None
        # a forged pickle can make the unpickler raise almost any built-in error
        except Exception as e:
            raise UnsafeCheckpointError(
                f"{path} is not a readable checkpoint: {type(e).__name__}: "
                f"{reprlib.repr(str(e))[1:-1]}"
            ) from None


def _read(archive, path):
    names = set(checked_records(archive, path, UnsafeCheckpointError))
    pkl = [n for n in names if n.endswith("/data.pkl")]
    if len(pkl) != 1:
        raise UnsafeCheckpointError(f"{path} has no single */data.pkl: not a torch checkpoint")
    prefix = pkl[0][:-len("/data.pkl")]
    limit = budget(os.path.getsize(path))
    # bytes, which BytesIO and genops share instead of copying
    data = bytes(read_record(archive, pkl[0], path, UnsafeCheckpointError))
    check_pickle(data, path, UnsafeCheckpointError, limit)
    unpickler = _TensorUnpickler(
        io.BytesIO(data), archive, prefix, _byteorder(archive, names, prefix, path), path
    )
    try:
        state = unpickler.load()
    except PickleRefused as e:
        raise UnsafeCheckpointError(f"{path}: {e}") from None
    if not (
        isinstance(state, dict)
        and all(type(k) is str and type(v) is _Tensor for k, v in state.items())
    ):
        raise UnsafeCheckpointError(f"{path} does not hold a flat dict of tensors")
    tensors, held = {}, 0
    for name, t in state.items():
        tensors[name] = tensor_from(name, t, unpickler.storage_array)
        held += tensors[name].nbytes        # views cost nothing here; a copy would cost this
        if held > limit:
            raise UnsafeCheckpointError(
                f"{path}: its tensors hold {held} bytes or more, more than tinycnn reads from "
                f"a file of {os.path.getsize(path)} bytes (aliases of one storage?)"
            )
    return tensors
