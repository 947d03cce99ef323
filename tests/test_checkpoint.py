"""Training checkpoints (tinycnn/io/checkpoint.py): a run restored from one continues as if
it had not stopped; a file that is not a checkpoint of the run is one CheckpointError, and
nothing of it is used."""
import io
import json

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


BROKEN = {
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
        open(file, "wb").write(b"half")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError):
        save_checkpoint(path, net, opt, rng, [{"epoch": 1}, {"epoch": 2}])
    assert path.read_bytes() == good
