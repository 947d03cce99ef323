"""Zip archives (.npz weights, torch.save checkpoints) read without trusting their headers.

A zip record declares its own uncompressed size, and a forged one can declare
anything: a record that inflates to gigabytes from a few kilobytes (a zip bomb), two
records of the same name (which one is meant?). ``records`` and ``record_info``
refuse those before a byte is decompressed; the caller names the error class, so
that each file format keeps its own.
"""
import os
import zipfile
import zlib

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

# Deflate cannot compress better than 1032:1 (zlib technical details, "Maximum
# compression factor", https://zlib.net/zlib_tech.html); a record declaring more is forged.
MAX_DEFLATE_RATIO = 1032


def regular_file(path, error):
    """``path``, checked to be a regular file: zipfile would read a device such as /dev/zero
    for ever, and block on a FIFO. A missing file is left to the caller's FileNotFoundError."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise error(f"{path} is not a regular file")
    return path


def records(archive, source, error):
    """Names of the archive's records; ``error`` if a name appears twice."""
    names = archive.namelist()
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise error(
            f"{source} has {len(twice)} duplicate record(s) ({twice[0]}, ...): a forged archive?"
        )
    return names


def record_info(archive, name, source, error):
    """The ZipInfo of record ``name``, checked: present, stored or deflated, and its
    declared size one that its compressed bytes can hold."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise error(f"{source} has no record {name}") from None
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


def read_record(archive, name, source, error):
    """The bytes of record ``name`` (checked by ``record_info``; a bad CRC is ``error``)."""
    record_info(archive, name, source, error)
    try:
        return archive.read(name)
    except (OSError, *FORGED_ZIP) as e:
        raise error(f"{source}: record {name} is corrupt: {e}") from None
