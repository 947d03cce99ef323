"""Fuzzing the file budget: forged checkpoints, .npz files and CIFAR-10 batches that declare
far more than they hold are refused, or read, within the memory and time SECURITY.md states.

The classes drawn: many tensor names over one storage (aliases), pickle memo indices far
beyond the pickle (CPython's unpickler would allocate its memo up to them), zip records
that share one compressed stream (an overlapping zip bomb), and many records, one of them
perhaps twice. Every file is read in a child process of its own, and measured: its peak
resident memory above what it held when it started (the interpreter and the readers'
imports) must stay within ``bound(size)``, and its time within ``SECONDS``.

Each child is forked from one server that has imported the readers once
(``children.ForkServer``): starting a fresh interpreter per file, as ``children.run_measured``
does, would make the fuzz profile's thousand examples take many minutes.
"""
import json
import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycnn.io.archives import budget

from . import forge
from .children import MB, ForkServer
from .conftest import fuzz_settings

SECONDS = 30


def bound(size):
    """What SECURITY.md promises for one file: at most twice its budget (the records it
    declares, then what is made of them), plus what reporting it costs the child."""
    return 2 * budget(size) + 8 * MB


SETUP = """
import json, pathlib
from tinycnn.io.torch_checkpoint import UnsafeCheckpointError, read_torch_checkpoint
from tinycnn.io.weights import StateDictError, read_npz
from tinycnn.io.data import DataError, _read_batch
readers = {".pth": read_torch_checkpoint, ".npz": read_npz,
           ".batch": lambda path: _read_batch(pathlib.Path(path))}

def report(path):
    try:
        got = readers[pathlib.Path(path).suffix](path)
        print(json.dumps(sorted(got) if isinstance(got, dict) else "batch"))
    except (UnsafeCheckpointError, StateDictError, DataError) as e:
        print(json.dumps("refused: " + str(e)))
"""


@pytest.fixture(scope="module")
def reader():
    """read(path) -> (what the reader returned, exit status, peak above the imports, seconds)."""
    with ForkServer(SETUP, seconds=SECONDS) as server:
        def read(path):
            run = server.run(f"report({str(path)!r})")
            return (json.loads(run.stdout) if run.stdout else None), run.returncode, run.peak, \
                run.seconds
        yield read


# -- cases: (suffix, file bytes, expected); expected is "refused" or the sorted names read ----
@st.composite
def aliases(draw):
    """Many names, each a stride-0 view of one small storage: torch reads them as views; the
    reader must not copy each, and refuses them once they hold more than the file's budget."""
    numel = draw(st.integers(1, 16))
    count = draw(st.integers(1, 3000))
    length = 1 << draw(st.integers(0, 22))
    state = {f"w{i}": ("0", draw(st.integers(0, numel - 1)), (length,), (0,))
             for i in range(count)}
    pkl = forge.torch_like_pickle(state, {"0": ("FloatStorage", numel)})
    data = forge.archive([("data.pkl", pkl), ("data/0", bytes(4 * numel))])
    held = count * length * 4
    return ".pth", data, "refused" if held > budget(len(data)) else sorted(state)


# opcodes whose index can be huge: 4-byte (LONG_BINPUT, LONG_BINGET) and text (PUT, GET)
MEMO_OPCODES = {"LONG_BINPUT": b"r", "LONG_BINGET": b"j", "PUT": b"p", "GET": b"g"}


@st.composite
def memo_indices(draw):
    """A good state dict or CIFAR-10 batch with one memo opcode naming a huge index put in,
    first or last."""
    name = draw(st.sampled_from(sorted(MEMO_OPCODES)))
    index = draw(st.integers(1 << 16, (1 << 32) - 1))
    arg = index.to_bytes(4, "little") if name.startswith("LONG") else b"%d\n" % index
    forged = b"N" + MEMO_OPCODES[name] + arg + b"0"         # None, put or get, pop
    if draw(st.booleans()):
        pkl = forge.torch_like_pickle({"w": ("0", 0, (2,), (1,))}, {"0": ("FloatStorage", 2)})
        suffix = ".pth"
    else:
        pkl = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, 3)
        suffix = ".batch"
    pkl = pkl[:2] + forged + pkl[2:] if draw(st.booleans()) else pkl[:-1] + forged + b"."
    data = forge.archive([("data.pkl", pkl), ("data/0", bytes(8))]) if suffix == ".pth" else pkl
    return suffix, data, "refused"


@st.composite
def overlapping(draw):
    """Records that all inflate one shared stream of zeros."""
    count = draw(st.integers(2, 64))
    kernel = bytes(draw(st.integers(1, 1 << 20)))
    if draw(st.booleans()):
        return ".npz", forge.overlapping_zip([f"k{i}.npy" for i in range(count)], kernel), \
            "refused"
    names = [f"archive/data/{i}" for i in range(count)]
    sizes = [len(kernel) + sum(30 + len(name) for name in names[i + 1:]) for i in range(count)]
    pkl = forge.state_dict([(f"t{i}", forge.tensor(forge.storage("ByteStorage", str(i), n), 0,
                                                   (n,), (1,))) for i, n in enumerate(sizes)])
    data = forge.overlapping_zip(names, kernel, first=[("archive/data.pkl", pkl)])
    return ".pth", data, "refused"


@st.composite
def many_records(draw):
    """Thousands of records, perhaps one of them twice: read or refused in linear time."""
    count = draw(st.integers(1, 5000))
    twice = draw(st.one_of(st.none(), st.integers(0, count - 1)))
    if draw(st.booleans()):
        records = [(f"k{i}.npy", forge.npy(np.full(1, i, np.int32))) for i in range(count)]
        records += [records[twice]] if twice is not None else []
        expected = sorted(f"k{i}" for i in range(count))
        return ".npz", forge.zip_of(records), "refused" if twice is not None else expected
    state = {f"t{i}": (str(i), 0, (1,), (1,)) for i in range(count)}
    pkl = forge.torch_like_pickle(state, {str(i): ("FloatStorage", 1) for i in range(count)})
    records = [("data.pkl", pkl)] + [(f"data/{i}", bytes(4)) for i in range(count)]
    if twice is not None:
        records.append(records[1 + twice])
    return ".pth", forge.archive(records), "refused" if twice is not None else sorted(state)


@pytest.mark.fuzz
@fuzz_settings(6)
@given(st.one_of(aliases(), memo_indices(), overlapping(), many_records()))
def test_forged_files_stay_within_the_budget(tmp_path_factory, reader, case):
    suffix, data, expected = case
    path = tmp_path_factory.mktemp("budget") / f"forged{suffix}"
    path.write_bytes(data)
    got, status, peak, seconds = reader(path)
    assert status == 0, f"the reader died or hung (status {status}) on {path}"
    if expected == "refused":
        assert isinstance(got, str) and got.startswith("refused: "), (suffix, str(got)[:300])
        assert "\n" not in got and str(path) in got, got        # one line naming the file
    else:
        assert got == expected, (suffix, str(got)[:300])
    assert peak <= bound(len(data)), \
        f"reading {len(data)} bytes took {peak / MB:.0f} MB (bound {bound(len(data)) / MB:.0f} MB)"
    assert seconds < SECONDS
