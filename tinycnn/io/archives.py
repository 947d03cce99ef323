"""Zip archives and pickles (.npz weights, torch.save checkpoints, CIFAR-10 batches) read
without trusting what they declare.

The budget of a file. Whatever reads one file may hold, all together, at most

    budget(size) = BUDGET_RATIO * size + BUDGET_SLACK

bytes of what the file declares: the uncompressed sizes of all its zip records, the
objects its pickle can build, the tensors it names. A file that declares more is refused
before anything of that size exists. The ratio leaves room for deflated records of
real weights (they compress little); the slack for tiny files of zeros.

Zip: a record declares its own sizes and its own place in the file, and a forged one can
declare anything: a record that inflates to gigabytes from a few kilobytes (a zip bomb),
two records of one name, many records that share one compressed stream (an overlapping
zip bomb, which Python's zipfile does not see). ``checked_records`` refuses those before
a byte is decompressed.

Pickle: CPython's unpickler allocates its memo up to the largest index a PUT names (a few
bytes can ask for gigabytes), some opcodes build objects without a call (INST, OBJ,
NEWOBJ), and BUILD sets the attributes of whatever object it is given. ``check_pickle``
walks the opcodes once, without running them, and refuses every opcode a state dict or a
CIFAR-10 batch does not need, memo indices beyond the pickle's length, and pickles whose
objects would not fit the budget. What the unpicklers let a pickle reach is ``Allowed``
(callable, nothing else, BUILD refused by ``refuse_build``) or made by the pickle itself,
so BUILD, SETITEMS and APPENDS can change only what the pickle made. The callers name the
error class, so that each file format keeps its own.
"""
import collections
import os
import pickletools
import zipfile
import zlib

BUDGET_RATIO = 16
BUDGET_SLACK = 16 << 20


def budget(size):
    """Bytes that reading a file of ``size`` bytes may declare, all together."""
    return BUDGET_RATIO * size + BUDGET_SLACK


# What zipfile raises on a forged archive, besides OSError (which the callers tell apart from a
# missing file): broken structure (BadZipFile, EOFError, ValueError, OverflowError), broken
# deflate data (zlib.error), and features it does not implement: a "version needed to extract"
# above 6.3 or strong encryption (NotImplementedError), a password (RuntimeError).
FORGED_ZIP = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    ValueError,
    OverflowError,
    NotImplementedError,
    RuntimeError,
)
# General-purpose flag bits of a record that tinycnn never writes nor reads (APPNOTE 4.4.4):
# encrypted, compressed patched data, strong encryption
UNREAD_FLAGS = {
    0x1: "is encrypted",
    0x20: "holds compressed patched data",
    0x40: "uses strong encryption",
}
DATA_DESCRIPTOR = 0x8      # sizes follow the data, the local header's are zero (APPNOTE 4.4.4)

# Deflate cannot compress better than 1032:1 (zlib technical details, "Maximum
# compression factor", https://zlib.net/zlib_tech.html); a record declaring more is forged.
MAX_DEFLATE_RATIO = 1032
# A local file header: 30 bytes, then the name and the extra field (APPNOTE 4.3.7)
LOCAL_HEADER = 30
READ_CHUNK = 1 << 20


def regular_file(path, error):
    """``path``, checked to be a regular file: zipfile would read a device such as /dev/zero
    for ever, and block on a FIFO. A missing file is left to the caller's FileNotFoundError."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise error(f"{path} is not a regular file")
    return path


def checked_records(archive, path, error):
    """Names of the archive's records, after checking every record against the file: no name
    twice, each stored or deflated and able to hold its declared size, each local header and
    data inside the file, agreeing with the central directory and overlapping no other, and
    all declared sizes together within the file's budget. Linear in the number of records
    (a sort aside)."""
    infos = archive.infolist()
    counts = collections.Counter(info.filename for info in infos)
    twice = sorted(name for name, n in counts.items() if n > 1)
    if twice:
        raise error(
            f"{path} has {len(twice)} duplicate record(s) ({twice[0]}, ...): a forged archive?"
        )
    size = os.path.getsize(path)
    spans = []
    with open(path, "rb") as f:
        for info in infos:
            check_info(info, path, error)
            spans.append((_local_span(f, info, size, path, error), info.filename))
    spans.sort()
    for (before, first), (after, second) in zip(spans, spans[1:]):
        if after[0] < before[1]:
            raise error(f"{path}: records {first} and {second} overlap: a forged archive "
                        "(one compressed stream read many times)?")
    declared = sum(info.file_size for info in infos)
    if declared > budget(size):
        raise error(f"{path} declares {declared} bytes in its records, more than tinycnn reads "
                    f"from a file of {size} bytes ({BUDGET_RATIO} x its size + "
                    f"{BUDGET_SLACK >> 20} MB): a zip bomb?")
    return list(counts)


def _local_span(f, info, size, path, error):
    """(start, end) of a record's local header and data in the file, checked to lie inside it
    and its sizes to agree with the central directory's."""
    def bad(why):
        return error(f"{path}: record {info.filename} {why}: a forged archive?")
    start = info.header_offset
    if not 0 <= start <= size - LOCAL_HEADER:
        raise bad("starts outside the file")
    f.seek(start)
    header = f.read(LOCAL_HEADER)
    if header[:4] != b"PK\x03\x04":
        raise bad("has no local header where the directory says")
    flags = int.from_bytes(header[6:8], "little")
    compressed, plain = (int.from_bytes(header[i:i + 4], "little") for i in (18, 22))
    if not flags & DATA_DESCRIPTOR and 0xFFFFFFFF not in (compressed, plain) and \
            (compressed, plain) != (info.compress_size, info.file_size):
        raise bad(f"declares {plain} bytes ({compressed} compressed) in its local header and "
                  f"{info.file_size} ({info.compress_size}) in the directory")
    names = int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
    end = start + LOCAL_HEADER + names + info.compress_size
    if end > size:
        raise bad(f"reaches byte {end} of a file of {size}")
    return start, end


def check_info(info, source, error):
    """``error`` unless the record is stored or deflated and its compressed bytes can hold its
    declared size."""
    name = info.filename
    for bit, why in UNREAD_FLAGS.items():
        if info.flag_bits & bit:
            raise error(f"{source}: record {name} {why}; weights are plain zip records")
    if info.compress_type == zipfile.ZIP_STORED:
        ok = info.file_size == info.compress_size
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        ok = info.file_size <= MAX_DEFLATE_RATIO * info.compress_size
    else:
        raise error(f"{source}: record {name} uses zip compression method {info.compress_type}; "
                    "only stored and deflated records are read")
    if not ok:
        raise error(f"{source}: record {name} declares {info.file_size} bytes, more than its "
                    f"{info.compress_size} compressed bytes can hold (a zip bomb?)")
    return info


def record_info(archive, name, source, error):
    """The ZipInfo of record ``name``, checked by ``check_info``; ``error`` if it is missing."""
    try:
        return check_info(archive.getinfo(name), source, error)
    except KeyError:
        raise error(f"{source} has no record {name}") from None


def read_record(archive, name, source, error):
    """The bytes of record ``name``, as a bytearray of exactly its declared size, read in
    chunks (nothing larger is ever held); a bad CRC or a short record is ``error``."""
    info = record_info(archive, name, source, error)
    data = bytearray(info.file_size)
    view = memoryview(data)
    try:
        with archive.open(info) as f:
            done = 0
            while done < len(data):
                n = f.readinto(view[done:done + READ_CHUNK])
                if not n:
                    raise EOFError(f"it ends after {done} of {len(data)} bytes")
                done += n
            if f.read(1):
                raise ValueError(f"it holds more than its {len(data)} bytes")
    except (OSError, *FORGED_ZIP) as e:
        raise error(f"{source}: record {name} is corrupt: {e}") from None
    return data


# -- pickles -----------------------------------------------------------------------------------
# Opcodes a state dict (tensors rebuilt by allowed calls) or a CIFAR-10 batch (dicts, lists,
# strings, bytes, numbers) needs; INST, OBJ, NEWOBJ(_EX), EXT1/2/4, PERSID, sets and buffers
# are not among them.
PICKLE_OPCODES = frozenset("""
    PROTO FRAME STOP MARK POP POP_MARK DUP
    NONE NEWTRUE NEWFALSE INT BININT BININT1 BININT2 LONG LONG1 LONG4 FLOAT BINFLOAT
    STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8
    BINBYTES SHORT_BINBYTES BINBYTES8
    EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3 EMPTY_LIST LIST APPEND APPENDS
    EMPTY_DICT DICT SETITEM SETITEMS
    GLOBAL STACK_GLOBAL REDUCE BUILD BINPERSID
    PUT BINPUT LONG_BINPUT MEMOIZE GET BINGET LONG_BINGET
""".split())
MEMO_INDEX = frozenset("PUT BINPUT LONG_BINPUT GET BINGET LONG_BINGET".split())
# Memory the unpickler may hold per opcode, besides the opcode's own bytes: the largest
# object one allowed opcode makes (an empty dict, 64 bytes), its stack slot and a memo slot,
# rounded up
BYTES_PER_OPCODE = 128


def check_pickle(data, source, error, limit):
    """``error`` unless the pickle ``data`` (bytes) uses only PICKLE_OPCODES, names memo
    indices below its opcode count, and the objects it can build fit in ``limit`` bytes (the
    file's budget). One pass over the opcodes; none of them runs."""
    count = 0
    try:
        for opcode, arg, at in pickletools.genops(data):
            count += 1
            if opcode.name not in PICKLE_OPCODES:
                raise error(f"{source}: its pickle uses opcode {opcode.name} (byte {at}), which "
                            "tinycnn never unpickles")
            if opcode.name in MEMO_INDEX and not (type(arg) is int and 0 <= arg < count):
                raise error(f"{source}: its pickle names memo index {arg} after {count} "
                            "opcodes: a forged pickle?")
            if count * BYTES_PER_OPCODE + len(data) > limit:
                raise error(f"{source}: its pickle would build more objects than tinycnn reads "
                            f"from this file (more than {limit} bytes)")
    except error:
        raise
    except Exception as e:      # genops: an unknown opcode, an argument cut short
        raise error(f"{source}: its pickle is not readable: {type(e).__name__}: {e}") from None
    return count


class PickleRefused(Exception):
    """What ``refuse_build`` raises inside an unpickler; the readers turn it into their own
    error class."""


def refuse_build(obj, state):
    """__setstate__ of every object a pickle can reach but did not make: pickle's BUILD on it
    would set attributes of a live object (tinycnn's own functions among them)."""
    raise PickleRefused(f"its pickle changes (BUILD) an object it did not make "
                        f"({type(obj).__name__}): refused")


class Allowed:
    """A global a pickle may call (what find_class returns): it calls ``function`` and is
    nothing else: no attributes to set, no items, BUILD refused."""
    __slots__ = ("function",)

    def __init__(self, function):
        self.function = function

    def __call__(self, *args):
        return self.function(*args)

    __setstate__ = refuse_build
