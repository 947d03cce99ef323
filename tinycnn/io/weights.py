"""Weight files: finding them, reading them safely, downloading public checkpoints.

Lookup: a file is looked for in the project's ``weights/`` folder, then in
``$TINYCNN_WEIGHTS_DIR``; a missing file is an error that says where it looked
and which command fetches it.

Safety: ``.npz`` files are read member by member, each header checked against the
member's size before its data is read, and object arrays (pickles) are refused;
PyTorch checkpoints (pickles inside a zip) are read by ``torch_checkpoint``, which
knows only the handful of globals a tensor checkpoint needs and checks every tensor
against its storage. A malicious file cannot run code, read memory or exhaust it.

    make weights     # torchvision's squeezenet1_1 -> weights/squeezenet1_1_torchvision.npz

The SqueezeNet weights every figure uses ship in ``weights/squeezenet1_1.npz`` (the ONNX
model zoo's, Apache-2.0, see weights/README.md); ``make weights`` fetches torchvision's,
another training run of the same architecture, for ``--weights``.
"""
import argparse
import hashlib
import io
import math
import os
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from .archives import FORGED_ZIP, checked_records, read_record, regular_file
from ..backend import get_array_module
from .arrays import count_not_finite
from .torch_checkpoint import UnsafeCheckpointError, read_torch_checkpoint  # noqa: F401 (public here)

PROJECT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights"
TORCHVISION_NPZ = "squeezenet1_1_torchvision.npz"        # what make weights writes
HOW_TO_GET = {
    "cifar10_net.npz": "it ships with tinycnn in weights/; `make train` reproduces it",
    "squeezenet1_1.npz": "it ships with tinycnn in weights/; "
                         "`git checkout weights/squeezenet1_1.npz` restores it",
    TORCHVISION_NPZ: "run `make weights` to download and convert torchvision's checkpoint",
}
# torchvision's public SqueezeNet 1.1 checkpoint; torch.hub checks that the file's
# sha256 starts with the 8 hex digits in its name, and so do we.
SQUEEZENET_URL = "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth"
SQUEEZENET_CHECKSUM = "sha256:b8a52dc0"


class StateDictError(ValueError):
    """Saved parameters that do not match the network (missing, extra, wrong shape)."""


def key_mismatch(source, missing, extra, expected, what="the network"):
    """A StateDictError naming the first missing and unexpected keys of a weights file."""
    def show(keys):
        return ", ".join(keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
    parts = ([f"missing {len(missing)} key(s): {show(missing)}"] if missing else []) + \
            ([f"unexpected {len(extra)} key(s): {show(extra)}"] if extra else [])
    hint = " (is it from another model?)" if len(missing) + len(extra) > expected // 2 else ""
    return StateDictError(f"{source} does not match {what}{hint}: " + "; ".join(parts))


def check_state_dict(own, state, source):
    """Raise StateDictError unless ``state`` fits the parameters ``own`` ({name: array}) exactly:
    every key present, none extra, every shape equal, every value finite."""
    missing = [k for k in own if k not in state]
    extra = [k for k in state if k not in own]
    if missing or extra:
        raise key_mismatch(source, missing, extra, len(own))
    for key, value in own.items():
        new = state[key]
        if tuple(new.shape) != tuple(value.shape):
            raise StateDictError(f"{source}: parameter {key!r} has shape {tuple(new.shape)} "
                                 f"but the network expects {tuple(value.shape)}")
        bad = count_not_finite(new)
        if bad:  # a diverged training run: every picture drawn from it would be wrong
            raise StateDictError(
                f"{source}: parameter {key!r} holds {bad} NaN or infinite value(s)"
            )
        if value.dtype.kind == "f" and new.dtype.itemsize > value.dtype.itemsize:
            xp = get_array_module(new)
            big = int((xp.abs(new) > np.finfo(value.dtype).max).sum())
            if big:  # 1e308 in a float64 file would become infinity in float32 parameters
                raise StateDictError(
                    f"{source}: parameter {key!r} holds {big} value(s) beyond "
                    f"{value.dtype}'s range (largest {np.finfo(value.dtype).max:.3g})"
                )


# tinycnn's SqueezeNet layer -> torchvision's squeezenet1_1 module index
_FEATURES = {"conv1": 0, "fire2": 3, "fire3": 4, "fire4": 6, "fire5": 7, "fire6": 9, "fire7": 10,
             "fire8": 11, "fire9": 12}


def torchvision_name(name):
    """Our parameter name -> torchvision's: "fire2.expand.3x3.conv.weight" ->
    "features.3.expand3x3.weight"."""
    parts = name.split(".")
    if parts[0] == "conv10":
        return "classifier.1." + parts[-1]
    index = _FEATURES[parts[0]]
    if parts[0] == "conv1":
        return f"features.{index}.{parts[-1]}"
    module = "squeeze" if parts[1] == "squeeze" else "expand" + parts[2]
    return f"features.{index}.{module}.{parts[-1]}"


def read_torchvision_squeezenet(path, names):
    """{our name: array} for ``names`` from a SqueezeNet 1.1 file keyed by torchvision's names."""
    stored = read_npz(path)
    wanted = [torchvision_name(name) for name in names]
    missing, extra = [k for k in wanted if k not in stored], sorted(set(stored) - set(wanted))
    if missing or extra:       # named as in the file: torchvision's keys
        raise key_mismatch(path, missing, extra, len(wanted),
                           "SqueezeNet 1.1 (keyed by torchvision's names)")
    return {name: stored[torchvision_name(name)] for name in names}


def find_weights(filename):
    """Path of ``filename`` in $TINYCNN_WEIGHTS_DIR (when set), then weights/; FileNotFoundError
    otherwise. The variable comes first, as for images and data: it names another copy on
    purpose."""
    places = [PROJECT_WEIGHTS]
    if os.environ.get("TINYCNN_WEIGHTS_DIR"):
        places.insert(0, Path(os.environ["TINYCNN_WEIGHTS_DIR"]))
    for folder in places:
        if (folder / filename).is_file():
            return folder / filename
    raise FileNotFoundError(
        f"weights {filename} not found in {' or '.join(str(p) for p in places)}"
        + ("" if len(places) > 1 else " ($TINYCNN_WEIGHTS_DIR is not set)")
        + f"; {HOW_TO_GET.get(filename, 'see weights/README.md')}"
    )


def read_npz(path, keys=None, *, error=StateDictError):
    """{key: array} from an .npz file of numeric arrays, never unpickling objects.

    The archive's records are checked against the file first (``archives.checked_records``:
    no overlapping or duplicate records, their sizes together within the file's budget), then
    each member's .npy header against the member's real size before its data is read: a
    header declaring a huge shape over a few bytes fails at once, without allocating that
    shape. Every problem is one ``error`` naming the file. keys: read only these members
    (every one must be there), not all.
    """
    regular_file(path, error)
    try:
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        how = HOW_TO_GET.get(Path(path).name)
        raise FileNotFoundError(
            f"no weights file at {path}" + (f"; {how}" if how else "")
        ) from None
    except (OSError, *FORGED_ZIP) as e:
        raise error(f"{path} is not a readable .npz of arrays: {e}") from None
    with archive:
        names = checked_records(archive, path, error)
        if keys is not None:
            missing = sorted(set(keys) - {n[:-len(".npy")] for n in names if n.endswith(".npy")})
            if missing:
                raise error(f"{path} lacks the arrays {missing}")
            names = [f"{k}.npy" for k in keys]
        return {name[:-len(".npy")]: _read_npy(archive, name, path, error) for name in names}


# NumPy's own limits: the longest header np.load reads (numpy.lib.format), the most dimensions
MAX_HEADER = 10000
MAX_DIMS = 64


def _read_npy(archive, name, source, error):
    """One .npy member of an .npz, its header checked before its data is read."""
    def bad(why):
        return error(f"{source} is not a readable .npz of arrays: {name} {why}")
    if not name.endswith(".npy"):
        raise bad("is not an .npy member")
    data = read_record(archive, name, source, error)
    shape, fortran, dtype, start = _npy_header(data, bad)
    if dtype.hasobject:
        raise bad("holds Python objects (pickles), which tinycnn never loads")
    if dtype.kind not in "biuf":
        raise bad(f"has dtype {dtype}: weights are numbers")
    if not (isinstance(shape, tuple) and len(shape) <= MAX_DIMS
            and all(type(n) is int and n >= 0 for n in shape)):
        raise bad(f"declares shape {_short(shape)}: not up to {MAX_DIMS} sizes >= 0")
    if math.prod(n for n in shape if n) * dtype.itemsize >= 1 << 63 or \
            math.prod(shape) * dtype.itemsize != len(data) - start:
        raise bad(f"declares shape {_short(shape)} of {dtype} "
                  f"({math.prod(shape) * dtype.itemsize} bytes) but holds {len(data) - start}")
    # a view of the member's bytearray: writable, like np.load's, and no copy
    array = np.frombuffer(data, dtype, offset=start)
    return array.reshape(shape, order="F" if fortran else "C")


def _npy_header(data, bad):
    """(shape, fortran_order, dtype, data offset) of the .npy bytes ``data``. Its header is a
    Python literal; one that makes the parser run out of memory or recursion (deeply nested,
    huge) is ``bad`` like any other."""
    member = io.BytesIO(bytes(memoryview(data)[:12 + MAX_HEADER]))  # magic, length, header
    try:
        version = np.lib.format.read_magic(member)
    except ValueError as e:
        raise bad(f"is not an .npy array: {_short(e)}") from None
    read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                   (2, 0): np.lib.format.read_array_header_2_0}.get(version)
    if read_header is None:
        raise bad(f"has .npy format version {version}, not 1.0 or 2.0")
    try:
        shape, fortran, dtype = read_header(member, max_header_size=MAX_HEADER)
    except Exception as e:      # ValueError, MemoryError, RecursionError from the parser
        raise bad(f"has an unreadable .npy header: {type(e).__name__}: {_short(e)}") from None
    return shape, fortran, dtype, member.tell()


def _short(value, n=80):
    text = str(value).replace("\n", " ")
    return text if len(text) <= n else text[:n] + "..."


# -- downloading ----------------------------------------------------------------------------
class DownloadError(RuntimeError):
    """A download that failed or whose content did not match its hash."""


def download(url, path, *, checksum=None, timeout=15, log=print):
    """Fetch ``url`` to ``path`` with progress, check it, then move it into place.

    checksum: "sha256:<hex prefix>" or "md5:<hex>"; the file's digest must start with it.
    """
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    algorithm, _, expected = (checksum or "sha256:").partition(":")
    digest = hashlib.new(algorithm)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                log(
                    f"\r{path.name}: {done / 1e6:.1f}"
                    + (f" / {total / 1e6:.1f} MB" if total else " MB"),
                    end="",
                )
        log("")
    except ValueError as e:     # urllib: "unknown url type", "Invalid IPv6 URL"
        tmp.unlink(missing_ok=True)
        raise DownloadError(f"could not download {url!r}: {e}") from None
    except (urllib.error.URLError, OSError) as e:
        tmp.unlink(missing_ok=True)
        reason = getattr(e, "reason", e)
        raise DownloadError(f"could not download {url}: {reason}. Is this machine offline? "
                            f"Fetch the file elsewhere and put it at {path}.") from None
    if not digest.hexdigest().startswith(expected):
        tmp.unlink(missing_ok=True)
        raise _hash_mismatch(url, algorithm, digest.hexdigest(), expected,
                             "the download is corrupt or not the expected file")
    tmp.replace(path)
    return path


def _hash_mismatch(what, algorithm, hexdigest, expected, hint):
    return DownloadError(
        f"{what} has {algorithm} {hexdigest}, expected one starting with {expected}; {hint}"
    )


def check_file(path, checksum):
    """DownloadError unless the file's digest starts with checksum's ("sha256:<hex prefix>")."""
    algorithm, _, expected = checksum.partition(":")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    if not digest.hexdigest().startswith(expected):
        raise _hash_mismatch(path, algorithm, digest.hexdigest(), expected,
                             "it is not the expected file: delete it to download it again")


def fetch_squeezenet(folder=PROJECT_WEIGHTS, url=SQUEEZENET_URL, checksum=SQUEEZENET_CHECKSUM):
    """Download torchvision's squeezenet1_1 checkpoint and convert it to
    squeezenet1_1_torchvision.npz.
    A squeezenet1_1.pth already in ``folder`` is converted only if its hash matches."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pth = folder / "squeezenet1_1.pth"
    if pth.is_file():
        check_file(pth, checksum)   # a file left there is trusted no more than a fresh download
    else:
        download(url, pth, checksum=checksum)
    state = read_torch_checkpoint(pth)
    np.savez(folder / TORCHVISION_NPZ, **{k: v.astype(np.float32) for k, v in state.items()})
    return folder / TORCHVISION_NPZ


def fetch_command(argv, *, target, description, url, out, out_help, fetch,
                  url_help="where the file is (its hash is checked all the same)", module=None):
    """The command line of ``make {target}``: --url, --out, then fetch(out, url); every failure
    is one 'make {target}:' line."""
    parser = argparse.ArgumentParser(
        prog=f"python -m tinycnn.io.{module or target}", description=description
    )
    parser.add_argument("--url", default=url, help=url_help)
    parser.add_argument("--out", default=str(out), help=f"folder {out_help}")
    args = parser.parse_args(argv)
    if not args.out:
        sys.exit(f"make {target}: --out is empty; give the folder {out_help}")
    try:
        path = fetch(args.out, args.url)
    except (DownloadError, UnsafeCheckpointError) as e:
        sys.exit(f"make {target}: {e}")
    except OSError as e:        # --out a file, a folder that cannot be made or written
        sys.exit(f"make {target}: cannot write into {args.out}: {e}")
    print(f"wrote {path}")


def main(argv=None):
    fetch_command(
        argv,
        target="weights",
        description="Download and convert SqueezeNet 1.1 weights (make weights).",
        url=SQUEEZENET_URL,
        out=PROJECT_WEIGHTS,
        out_help=f"to write {TORCHVISION_NPZ} into",
        fetch=fetch_squeezenet,
    )


if __name__ == "__main__":
    main()
