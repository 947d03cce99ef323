"""Training checkpoints (tinycnn/io/checkpoint.py): a run restored from one continues as if
it had not stopped; a file that is not a checkpoint of the run is one CheckpointError, and
nothing of it is used."""
import io
import json
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import to_numpy
from tinycnn.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinycnn.optim import SGD, Adam

from .conftest import on_device


def small_net(seed=0):
    return tc.Network([("conv", tc.Conv2d(3, 2, 3, seed=seed)), ("relu", tc.ReLU()),
                       ("flatten", tc.Flatten()), ("fc", tc.Linear(8, 2, seed=seed + 1))])


def stepped(make, steps=2, seed=0):
    """A net, its optimiser after ``steps`` steps on random gradients, a generator drawn from."""
    net, rng = small_net(seed), np.random.default_rng(seed)
    opt = make(net)
    for _ in range(steps):
        opt.step({k: on_device(rng.standard_normal(p.shape).astype(np.float32))
                  for k, p in net.named_params()}, lr=0.01)
    return net, opt, rng


def params(net):
    return {k: to_numpy(v).copy() for k, v in net.named_params()}


@pytest.mark.parametrize("make, history", [(SGD, [{"epoch": 1, "loss": 2.302585092994046}]),
                                           (Adam, [[1, 812345.25], [2, 1 / 3]])])
def test_a_restored_run_is_the_saved_one(tmp_path, make, history):
    net, opt, rng = stepped(make)
    save_checkpoint(tmp_path / "c.npz", net, opt, rng, history)
    fresh_net, fresh_rng = small_net(seed=7), np.random.default_rng(99)
    fresh_opt = make(fresh_net)
    assert load_checkpoint(tmp_path / "c.npz", fresh_net, fresh_opt, fresh_rng) == history
    for k, v in params(net).items():
        np.testing.assert_array_equal(params(fresh_net)[k], v, err_msg=k)
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(fresh_opt.state_dict()[k], v, err_msg=k)
    np.testing.assert_array_equal(fresh_rng.random(5), rng.random(5))    # the same next draws


def forged(good, change):
    """The arrays of the checkpoint ``good`` (bytes), changed by change(dict), as .npz bytes."""
    with np.load(io.BytesIO(good)) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def _json(value):
    return np.frombuffer(json.dumps(value).encode(), np.uint8)


def _set(key, value):
    return lambda a: a.__setitem__(key, value)


def _drop(key):
    return lambda a: a.pop(key)


def npy_with_header(header, data=b""):
    """The bytes of an .npy member (format 1.0) whose header is the text ``header``, as it is,
    followed by ``data``: a header no writer would make."""
    text = header.encode("latin1")
    pad = -(10 + len(text) + 1) % 64          # the header ends in a newline at a multiple of 64
    return (b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text) + pad + 1) + text + b" " * pad
            + b"\n" + data)


def with_member(good, name, member):
    """The .npz bytes ``good`` with its member ``name`` replaced by the bytes ``member``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            new.writestr(info.filename, member if info.filename == name else old.read(info))
    return out.getvalue()


# a shape the parser cannot hold: 8,000 unary minus signs make CPython's parser raise MemoryError
DEEP_SHAPE = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + "-" * 8000 + "1,), }"
PCG64 = np.random.default_rng(0).bit_generator.state

BROKEN = {
    "a header the parser cannot hold": lambda good: with_member(good, "t.npy",
                                                                npy_with_header(DEEP_SHAPE)),
    "a negative shape": lambda good: with_member(good, "history.npy", npy_with_header(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (-5,), }")),
    "a random state beyond 64 bits": lambda good: forged(good, _set("rng", _json(
        PCG64 | {"has_uint32": 10 ** 30}))),
    "a random state beyond 128 bits": lambda good: forged(good, _set("rng", _json(
        PCG64 | {"state": {"state": 10 ** 400, "inc": 1}}))),
    "a number of 5000 digits": lambda good: forged(good, _set(
        "history", np.frombuffer(b"[" + b"7" * 5000 + b"]", np.uint8))),
    "garbage": lambda good: b"PK\x03\x04 not really a zip",
    "truncated": lambda good: good[:len(good) // 2],
    "another net's parameters": lambda good: forged(good, _set("param/fc.weight",
                                                               np.zeros((3, 8), np.float32))),
    "no random state": lambda good: forged(good, _drop("rng")),
    "no history": lambda good: forged(good, _drop("history")),
    "another generator's state": lambda good: forged(good, _set(
        "rng", _json(np.random.MT19937(0).state | {"state": {"key": [1], "pos": 0}}))),
    "a history that is not a list": lambda good: forged(good, _set("history", _json({"a": 1}))),
    "a history that is not JSON": lambda good: forged(good, _set("history", np.zeros(3))),
    "deeply nested JSON": lambda good: forged(good, _set(
        "history", np.frombuffer(b"[" * 100000 + b"]" * 100000, np.uint8))),
    "SGD's state for Adam": lambda good: forged(good, lambda a: [
        a.__setitem__(k.replace("m/", "velocity/", 1), a.pop(k)) for k in list(a)
        if k.startswith("m/")]),
    "a moment of another shape": lambda good: forged(good, _set("m/fc.weight",
                                                                np.zeros((2, 7), np.float32))),
    "a moment in float64": lambda good: forged(good, lambda a: a.__setitem__(
        "v/fc.weight", a["v/fc.weight"].astype(np.float64))),
    "a NaN moment": lambda good: forged(good, _set("m/conv.bias", np.full(2, np.nan, np.float32))),
    "a negative step count": lambda good: forged(good, _set("t", np.int64(-3))),
    "a pickled member": lambda good: forged(good, _set("t", np.array([{"x": 1}], object))),
}


@pytest.mark.parametrize("what", sorted(BROKEN))
def test_a_broken_checkpoint_is_one_error_and_nothing_is_restored(tmp_path, what):
    net, opt, rng = stepped(Adam)
    path = tmp_path / "c.npz"
    save_checkpoint(path, net, opt, rng, [[1, 2.0], [2, 1.0]])
    path.write_bytes(BROKEN[what](path.read_bytes()))
    fresh_net, fresh_rng = small_net(seed=7), np.random.default_rng(99)
    fresh_opt = Adam(fresh_net)
    before, opt_before = params(fresh_net), fresh_opt.state_dict()
    rng_before = fresh_rng.bit_generator.state
    with pytest.raises(CheckpointError, match=f"^cannot resume from {path}: ") as e:
        load_checkpoint(path, fresh_net, fresh_opt, fresh_rng)
    assert "\n" not in str(e.value)
    for k, v in before.items():
        np.testing.assert_array_equal(params(fresh_net)[k], v, err_msg=k)
    assert fresh_opt.t == 0 and all(np.array_equal(fresh_opt.state_dict()[k], v)
                                    for k, v in opt_before.items())
    assert fresh_rng.bit_generator.state == rng_before


def test_a_checkpoint_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """Written to a temporary file, then moved into place: a write that fails leaves the
    previous checkpoint as it was."""
    net, opt, rng = stepped(SGD)
    path = tmp_path / "c.npz"
    save_checkpoint(path, net, opt, rng, [{"epoch": 1}])
    good = path.read_bytes()

    def full_disk(file, **arrays):
        file.write(b"half")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError):
        save_checkpoint(path, net, opt, rng, [{"epoch": 1}, {"epoch": 2}])
    assert path.read_bytes() == good and list(tmp_path.iterdir()) == [path]   # no half file


def test_a_history_that_is_not_the_runs_is_one_error_and_nothing_is_restored(tmp_path):
    """check_history: the training's own check of what it recorded, run before anything is
    restored."""
    net, opt, rng = stepped(Adam)
    path = tmp_path / "c.npz"
    save_checkpoint(path, net, opt, rng, [[1, 2.0], "two"])
    fresh_net, fresh_rng = small_net(seed=7), np.random.default_rng(99)
    fresh_opt, before = Adam(fresh_net), params(small_net(seed=7))

    def check(history):
        if not all(isinstance(h, list) for h in history):
            raise ValueError("its history's entry 2 is not [2, the step's loss]")
    with pytest.raises(CheckpointError, match=f"^cannot resume from {path}: .*its history's "
                       "entry 2 is not"):
        load_checkpoint(path, fresh_net, fresh_opt, fresh_rng, check)
    assert all(np.array_equal(params(fresh_net)[k], v) for k, v in before.items())
    assert fresh_opt.t == 0 and fresh_rng.bit_generator.state == np.random.default_rng(99)\
        .bit_generator.state
    assert load_checkpoint(path, fresh_net, fresh_opt, fresh_rng) == [[1, 2.0], "two"]


ROOT = Path(__file__).resolve().parents[1]
READERS = {f"tinycnn/io/{name}.py" for name in ("weights", "archives", "torch_checkpoint", "data")}


def test_files_are_read_only_by_the_safe_readers():
    """Everything tinycnn and vis read from a file goes through the readers of tinycnn/io
    (read_npz, the torch and CIFAR-10 readers), which never unpickle objects: no module loads
    with np.load, pickle or NumPy's other unchecked readers."""
    unsafe = re.compile(r"\b(np|numpy)\.(load|fromfile|memmap|loadtxt|genfromtxt)\(|"
                        r"\bpickle\.loads?\(|allow_pickle|\bjoblib\b")
    sources = [path.relative_to(ROOT).as_posix() for folder in ("tinycnn", "vis")
               for path in sorted((ROOT / folder).rglob("*.py"))]
    assert "tinycnn/io/checkpoint.py" in sources and "tinycnn/train.py" in sources
    found = [f"{name}:{n}: {line.strip()}" for name in sources if name not in READERS
             for n, line in enumerate((ROOT / name).read_text().splitlines(), 1)
             if unsafe.search(line)]
    assert found == []
    assert unsafe.search("x = np.load(path)") and unsafe.search("pickle.loads(b)")


def test_a_checkpoint_is_never_written_through_a_link(tmp_path):
    """Links placed beside the checkpoint, at the name its temporary file once had and at the
    checkpoint's own, are not written through: what they point to stays as it was."""
    net, opt, rng = stepped(SGD)
    (tmp_path / "elsewhere").write_bytes(b"kept")
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "c.npz"
    (tmp_path / "run" / "c.npz.tmp.npz").symlink_to(tmp_path / "elsewhere")
    path.symlink_to(tmp_path / "elsewhere")
    save_checkpoint(path, net, opt, rng, [{"epoch": 1}])
    assert (tmp_path / "elsewhere").read_bytes() == b"kept"
    assert not path.is_symlink() and (tmp_path / "run" / "c.npz.tmp.npz").is_symlink()
    fresh = small_net(seed=7)
    assert load_checkpoint(path, fresh, SGD(fresh), np.random.default_rng(1)) == [{"epoch": 1}]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["c.npz", "c.npz.tmp.npz"]
