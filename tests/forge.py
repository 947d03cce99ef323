"""Forged PyTorch checkpoints, written byte by byte without torch.

A zip-format ``torch.save`` file is a zip of records: ``<prefix>/data.pkl`` (a pickle
of the state dict) and one ``<prefix>/data/<key>`` record of raw little-endian bytes
per storage. The pickle rebuilds each tensor with

    torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)

where ``storage`` is a persistent id ("storage", torch.FloatStorage, key, "cpu", numel).
These helpers write such pickles opcode by opcode, so that tests can put anything
(any geometry, any global, any opcode) where torch would put a tensor.
"""
import io
import pickle
import pickletools
import warnings
import zipfile

import numpy as np

STORAGE_TYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def value(obj):
    """Opcodes pushing a plain value (ints, strings, tuples...) onto the unpickler's stack."""
    body = pickletools.optimize(pickle.dumps(obj, protocol=2))   # drops the unused memo PUTs
    return body[2:-1]                                               # without PROTO and STOP


def global_(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def call(module, name, *args):
    """Opcodes calling module.name(*args) (GLOBAL, arguments, TUPLE, REDUCE)."""
    return global_(module, name) + b"(" + b"".join(args) + b"tR"


def storage(storage_type, key, numel):
    """A BINPERSID storage reference, as torch.save writes it."""
    return b"(" + value("storage") + global_("torch", storage_type) + value(key) + value("cpu") + \
        value(numel) + b"tQ"


def tensor(storage_ops, offset, size, stride):
    """_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())."""
    return call(
        "torch._utils",
        "_rebuild_tensor_v2",
        storage_ops,
        value(offset),
        value(tuple(size)),
        value(tuple(stride)),
        value(False),
        call("collections", "OrderedDict"),
    )


def state_dict(items):
    """A whole data.pkl: a dict of {name: opcodes}."""
    body = b"".join(value(name) + ops for name, ops in items)
    return b"\x80\x02}(" + body + b"u."


def archive(records, prefixes=("archive",), compression=zipfile.ZIP_STORED):
    """Zip bytes of (name, bytes) records under each prefix (duplicate names allowed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)    # "Duplicate name": on purpose
        for prefix in prefixes:
            for name, data in records:
                z.writestr(f"{prefix}/{name}", data)
    return buffer.getvalue()


def expected_view(flat, offset, size, stride):
    """What a valid geometry selects, computed with explicit indices (not as_strided):
    element [i0, i1, ...] is flat[offset + i0 * stride0 + i1 * stride1 + ...]."""
    index = np.full(tuple(size), offset, dtype=np.int64)
    for axis, (n, s) in enumerate(zip(size, stride)):
        shape = [1] * len(size)
        shape[axis] = n
        # i0 = 0: any stride
        index = index + np.arange(n, dtype=np.int64).reshape(shape) * (s if n > 1 else 0)
    return flat[index]
