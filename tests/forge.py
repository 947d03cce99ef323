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
import struct
import warnings
import zipfile
import zlib

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
    return zip_of([(f"{prefix}/{name}", data) for prefix in prefixes for name, data in records],
                  compression)


def zip_of(records, compression=zipfile.ZIP_STORED):
    """Zip bytes of (name, bytes) records, as named (duplicate names allowed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as z, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)    # "Duplicate name": on purpose
        for name, data in records:
            z.writestr(name, data)
    return buffer.getvalue()


def npy(array):
    """The .npy bytes of ``array``, as np.save writes them."""
    buffer = io.BytesIO()
    np.save(buffer, array)
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


def overlapping_zip(names, kernel, first=()):
    """Zip bytes whose records all share one deflate stream (Fifield, "A better zip bomb",
    WOOT 2019): each record's data is a stored deflate block quoting the next record's local
    header, then that record's data, so every record inflates to the headers after it and
    ``kernel``. zipfile reads each record (names and CRCs agree) without seeing the overlap.
    first: (name, bytes) records stored before them, as usual."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    data, content = squeeze.compress(kernel) + squeeze.flush(), kernel
    records = []            # (name, crc, compressed size, size, offset), the last first
    for name in reversed(names):
        header = _local_header(name, zlib.crc32(content), len(data), len(content))
        records.insert(0, [name, zlib.crc32(content), len(data), len(content), 0])
        # the data of the record before: BFINAL 0, BTYPE 00 (stored), LEN and its complement
        # (RFC 1951, 3.2.4), the header, then this record's data
        quote = b"\0" + struct.pack("<HH", len(header), 0xFFFF ^ len(header))
        data, content = quote + header + data, header + content
    head, stored = b"", []
    for name, content in first:
        stored.append([name, zlib.crc32(content), len(content), len(content), len(head)])
        head += _local_header(name, zlib.crc32(content), len(content), len(content), 0) + content
    body = head + data[len(quote):]             # record 0's header and data: the whole stream
    records[0][4] = len(head)
    for before, record in zip(records, records[1:]):
        record[4] = before[4] + 30 + len(before[0].encode()) + len(quote)
    directory = b"".join(
        struct.pack("<4s6H3I5HII", b"PK\x01\x02", 20, 20, 0, 8 if i >= len(stored) else 0, 0,
                    0x21, crc, csize, usize, len(name.encode()), 0, 0, 0, 0, 0, offset)
        + name.encode() for i, (name, crc, csize, usize, offset) in enumerate(stored + records))
    count = len(stored) + len(records)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, count, count, len(directory),
                      len(body), 0)
    return body + directory + end


def _local_header(name, crc, csize, usize, method=8):
    """A record's local header (APPNOTE 4.3.7), deflated unless ``method``, dated 1980-01-01."""
    return struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc, csize, usize,
                       len(name.encode()), 0) + name.encode()


def torch_like_pickle(state, storages):
    """data.pkl as torch.save writes it (protocol 2, storages as persistent ids), without
    torch: ``state`` is {name: (storage key, offset, size, stride)}, ``storages`` {key:
    (storage type name, numel)}. Like torch's state_dict(), the OrderedDict carries a
    ``_metadata`` attribute, which pickle writes with BUILD."""
    import collections
    import sys
    import types

    fake = {name: types.ModuleType(name) for name in ("torch", "torch._utils")}

    def rebuild(*args):
        raise AssertionError("never called: only pickled")
    rebuild.__module__, rebuild.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    fake["torch._utils"]._rebuild_tensor_v2 = rebuild
    for type_name in {t for t, _ in storages.values()}:
        setattr(fake["torch"], type_name, type(type_name, (), {"__module__": "torch"}))

    class Tensor:
        def __init__(self, key, offset, size, stride):
            self.args = (Storage(key), offset, tuple(size), tuple(stride), False,
                         collections.OrderedDict())

        def __reduce__(self):
            return rebuild, self.args

    class Storage:
        def __init__(self, key):
            self.key = key

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                type_name, numel = storages[obj.key]
                return ("storage", getattr(fake["torch"], type_name), obj.key, "cpu", numel)
            return None
    saved = {name: sys.modules.get(name) for name in fake}
    sys.modules.update(fake)
    try:
        od = collections.OrderedDict((k, Tensor(*v)) for k, v in state.items())
        od._metadata = collections.OrderedDict([("", {"version": 1})])
        buffer = io.BytesIO()
        Pickler(buffer, protocol=2).dump(od)
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name)
            else:
                sys.modules[name] = module
    return buffer.getvalue()
