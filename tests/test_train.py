"""Training: augmentation, SGD, schedule, a tiny problem learnt, bit-exact resume."""
import io

import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import to_numpy
from tinycnn.optim import SGD, warmup_cosine
from tinycnn.train import augment, train

from .conftest import on_device


def test_augment_crops_and_flips():
    x = np.random.default_rng(0).standard_normal((64, 2, 6, 6)).astype(np.float32)
    same = augment(x, np.random.default_rng(1), pad=0)      # no padding: only flips remain
    flipped = [np.array_equal(a, b[:, :, ::-1]) for a, b in zip(same, x)]
    kept = [np.array_equal(a, b) for a, b in zip(same, x)]
    assert all(f or k for f, k in zip(flipped, kept)) and 16 < sum(flipped) < 48
    out = augment(x, np.random.default_rng(1), pad=2)
    assert out.shape == x.shape
    # every output is a window of the zero-padded (possibly flipped) input
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for a, p in zip(out[:8], padded[:8]):
        windows = [p[:, i:i + 6, j:j + 6] for i in range(5) for j in range(5)]
        assert any(np.array_equal(a, w) or np.array_equal(a, w[:, :, ::-1]) for w in windows)


def test_sgd_step_by_hand():
    lin = tc.Linear(2, 1, dtype=np.float64)
    lin.params = {"weight": on_device(np.array([[1.0, -2.0]])), "bias": on_device(np.array([0.5]))}
    net = tc.Network([("fc", lin)])
    opt = SGD(net, momentum=0.9, weight_decay=0.1, nesterov=False)
    grads = {"fc.weight": on_device(np.array([[0.2, 0.4]])), "fc.bias": on_device(np.array([1.0]))}
    opt.step(grads, lr=0.5)
    # g = grad + 0.1 * w (weights only); v = g; w -= 0.5 * v
    np.testing.assert_allclose(to_numpy(lin.params["weight"]), [[1 - 0.5 * 0.3, -2 - 0.5 * 0.2]])
    np.testing.assert_allclose(to_numpy(lin.params["bias"]), [0.5 - 0.5 * 1.0])
    opt.step(grads, lr=0.5)  # v = 0.9 v + g
    w1 = np.array([0.85, -2.1])
    v = 0.9 * np.array([0.3, 0.2]) + (np.array([0.2, 0.4]) + 0.1 * w1)
    np.testing.assert_allclose(to_numpy(lin.params["weight"])[0], w1 - 0.5 * v)


def test_warmup_cosine_schedule():
    assert warmup_cosine(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert warmup_cosine(55, 100, 1.0, 10) == pytest.approx(0.5)
    assert warmup_cosine(100, 100, 1.0, 10) == pytest.approx(0.0)


def toy_data(n, seed):
    """Two classes a small CNN separates easily, even after random crops and horizontal
    flips: a bright band near the top or near the bottom."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 0.3, (n, 3, 16, 16)).astype(np.float32)
    for i in range(n):
        x[i, :, (1 if y[i] == 0 else 11):(5 if y[i] == 0 else 15)] += 1.5
    return x, y


def toy_net():
    return tc.Network([("conv1", tc.Conv2d(3, 4, 3, padding=1, seed=1)), ("relu1", tc.ReLU()),
                       ("pool1", tc.MaxPool2d(2)), ("flatten", tc.Flatten()),
                       ("fc", tc.Linear(256, 2, seed=2))])


def test_training_learns_a_toy_problem():
    x, y = toy_data(256, 0)
    xt, yt = toy_data(128, 1)
    history = train(toy_net(), (x, y, xt, yt), epochs=3, batch_size=32, lr=0.05,
                    log=lambda s: None)
    assert history[-1]["test_acc"] > 0.95 and history[-1]["loss"] < history[0]["loss"]


def test_resume_is_bit_exact(tmp_path):
    x, y = toy_data(128, 0)
    data = (x, y, x[:32], y[:32])
    straight = toy_net()
    train(straight, data, epochs=2, batch_size=32, log=lambda s: None)
    resumed = toy_net()
    ckpt = tmp_path / "ckpt.npz"
    train(resumed, data, epochs=1, batch_size=32, checkpoint=ckpt, log=lambda s: None)
    # a fresh net, as after a crash: everything comes back from the checkpoint
    resumed = toy_net()
    history = train(resumed, data, epochs=2, batch_size=32, checkpoint=ckpt, resume=True,
                    log=lambda s: None)
    assert [h["epoch"] for h in history] == [1, 2]
    for (k, a), (_, b) in zip(straight.named_params(), resumed.named_params()):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=k)


def broken_checkpoints(good):
    """(what, bytes) of checkpoints --resume must refuse in one line, made from a good one's
    bytes (tests/test_checkpoint.py forges many more)."""
    other = io.BytesIO()
    np.savez(other, **{"param/conv1.w": np.zeros((1, 1)), "epoch": np.array(1)})
    no_rng = io.BytesIO()
    with np.load(io.BytesIO(good)) as f:
        np.savez(no_rng, **{k: f[k] for k in f.files if k != "rng"})
    return [("garbage", b"xx"), ("truncated", good[:len(good) // 2]),
            ("another net's", other.getvalue()), ("no random state", no_rng.getvalue())]


def test_resume_from_a_broken_checkpoint_is_one_error(tmp_path):
    from tinycnn.io.checkpoint import CheckpointError
    x, y = toy_data(64, 0)
    data = (x, y, x[:32], y[:32])
    ckpt = tmp_path / "ckpt.npz"
    train(toy_net(), data, epochs=1, batch_size=32, checkpoint=ckpt, log=lambda s: None)
    good = ckpt.read_bytes()
    for what, forged in broken_checkpoints(good):
        ckpt.write_bytes(forged)
        with pytest.raises(CheckpointError, match=f"cannot resume from {ckpt}"):
            train(toy_net(), data, epochs=2, batch_size=32, checkpoint=ckpt, resume=True,
                  log=lambda s: None)


@pytest.mark.parametrize("argv, why", [
    (["--epochs", "0"], "--epochs: '0' is not a positive integer"),
    (["--batch-size", "-3"], "--batch-size: '-3' is not a positive integer"),
    (["--lr", "nan"], "--lr: 'nan' is not a positive number"),
    (["--lr", "0"], "--lr: '0' is not a positive number"),
    (["--seed", "-1"], "--seed: '-1' is not a non-negative integer"),
    (["--limit", "0"], "--limit: '0' is not a positive integer"),
    (["--epochs", "abc"], "--epochs: 'abc' is not a positive integer"),
    (["--out", "w"], "--out: w is not the path of an .npz"),
    (["--checkpoint", "."], "--checkpoint: . is not the path of an .npz"),
])
def test_bad_training_options_are_one_line_before_any_data_is_read(argv, why, capsys, monkeypatch):
    from tinycnn import train as train_module
    monkeypatch.setattr("tinycnn.io.data.load_cifar10",
                        lambda *a, **k: pytest.fail("read data for a bad command line"))
    with pytest.raises(SystemExit) as done:
        train_module.main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2 and why in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.filterwarnings("error")      # NumPy's overflow warnings would come before the line
def test_a_diverged_run_writes_no_weights(tmp_path, capsys, monkeypatch):
    from tinycnn import train as train_module
    rng = np.random.default_rng(0)
    fake = (rng.random((64, 3, 32, 32), np.float32), rng.integers(0, 10, 64))
    monkeypatch.setattr("tinycnn.io.data.load_cifar10", lambda split: fake)
    out = tmp_path / "w.npz"
    with pytest.raises(SystemExit) as done:
        train_module.main(["--epochs", "3", "--batch-size", "32", "--lr", "1e30",
                           "--out", str(out), "--checkpoint", str(tmp_path / "c.npz")])
    message = capsys.readouterr().err
    assert done.value.code == 2 and message.count("\n") == 1, message
    assert message.startswith("error: training diverged") and "at epoch 1, step" in message
    # stopped at the first progress line
    assert not out.exists() and not (tmp_path / "c.npz").exists()


def test_an_update_that_overflows_after_the_last_loss_writes_nothing(tmp_path, capsys,
                                                                     monkeypatch):
    """The loss is read before each update; the epoch's last update can still leave a parameter
    infinite. That run must stop before its checkpoint, naming the parameter."""
    from tinycnn import train as train_module
    real, calls = train_module.train_step, []

    def overflowing_last_step(net, opt, x, y, lr):
        out = real(net, opt, x, y, lr)
        calls.append(1)
        if len(calls) == 2:                      # the last of the epoch's two steps
            dict(net.named_params())["conv1.weight"][0, 0, 0, 0] = np.inf
        return out
    monkeypatch.setattr(train_module, "train_step", overflowing_last_step)
    rng = np.random.default_rng(0)
    fake = (rng.random((64, 3, 32, 32), np.float32), rng.integers(0, 10, 64))
    monkeypatch.setattr("tinycnn.io.data.load_cifar10", lambda split: fake)
    out = tmp_path / "w.npz"
    with pytest.raises(SystemExit) as done:
        train_module.main(["--epochs", "1", "--batch-size", "32", "--out", str(out),
                           "--checkpoint", str(tmp_path / "c.npz")])
    message = capsys.readouterr().err
    assert done.value.code == 2 and message.startswith(
        "error: training diverged (parameter 'conv1.weight' holds 1 NaN or infinite value(s) "
        "after epoch 1)"), message
    assert len(calls) == 2 and not out.exists() and not (tmp_path / "c.npz").exists()


def fake_cifar10(monkeypatch, n=64):
    rng = np.random.default_rng(0)
    fake = (rng.random((n, 3, 32, 32), np.float32), rng.integers(0, 10, n))
    monkeypatch.setattr("tinycnn.io.data.load_cifar10", lambda split: fake)


def test_make_train_runs_end_to_end_and_resumes(tmp_path, capsys, monkeypatch):
    """python -m tinycnn.train on a tiny data set: weights and log written; --resume of a
    finished run trains nothing more and writes the same weights; a corrupt checkpoint is one
    error line."""
    import json

    from tinycnn import train as train_module
    from tinycnn.io.weights import read_npz
    fake_cifar10(monkeypatch)
    out, ckpt = tmp_path / "w" / "net.npz", tmp_path / "c" / "ckpt.npz"
    argv = ["--epochs", "1", "--batch-size", "32", "--out", str(out), "--checkpoint", str(ckpt)]
    train_module.main(argv)
    first = read_npz(out)
    log = json.loads(out.with_suffix(".log.json").read_text())
    assert [h["epoch"] for h in log["history"]] == [1] and log["args"]["resume"] is False
    train_module.main(argv + ["--resume"])
    assert "resumed from" in capsys.readouterr().out
    for k, v in read_npz(out).items():
        np.testing.assert_array_equal(v, first[k], err_msg=k)
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(SystemExit) as done:
        train_module.main(argv + ["--resume"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.startswith(f"error: cannot resume from {ckpt}: ") \
        and err.count("\n") == 1, err


def test_make_train_explains_itself(capsys):
    from tinycnn import train as train_module
    with pytest.raises(SystemExit) as done:
        train_module.main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and out.startswith("usage: python -m tinycnn.train ")
    assert "--epochs EPOCHS" in out and "(default: 15)" in out


EPOCH = {"epoch": 1, "loss": 2.3, "train_acc": 0.1, "test_acc": 0.12, "lr": 0.05, "seconds": 3.0}


def test_check_history_takes_what_train_records():
    from tinycnn.train import check_history
    x, y = toy_data(64, 0)
    recorded = train(toy_net(), (x, y, x[:32], y[:32]), epochs=2, batch_size=32,
                     log=lambda s: None)
    for history in (recorded, [], [EPOCH], [EPOCH, {**EPOCH, "epoch": 2, "lr": 0}]):
        check_history(history)


@pytest.mark.parametrize("history", [
    [5], [[1, 2.0]], [{**EPOCH, "epoch": 2}], [EPOCH, EPOCH], [{**EPOCH, "epoch": True}],
    [{**EPOCH, "epoch": 1.0}], [{**EPOCH, "loss": float("nan")}], [{**EPOCH, "loss": "2.3"}],
    [{**EPOCH, "test_acc": 1.5}], [{**EPOCH, "train_acc": -0.1}], [{**EPOCH, "lr": -1}],
    [{**EPOCH, "seconds": 10 ** 400}], [{**EPOCH, "seconds": float("inf")}],
    [{k: v for k, v in EPOCH.items() if k != "lr"}], [EPOCH, None],
])
def test_check_history_refuses_what_train_does_not_record(history):
    from tinycnn.train import check_history
    with pytest.raises(ValueError, match=f"entry {len(history)} is not the record of epoch"):
        check_history(history)


def forged_resumes(good):
    """(what, bytes) of forged checkpoints for make train --resume, from a good one's bytes."""
    from .test_checkpoint import DEEP_SHAPE, PCG64, _json, _set, forged, npy_with_header, \
        with_member
    return [
        ("a history of numbers", forged(good, _set("history", _json([5])))),
        ("a history without a loss", forged(good, _set("history", _json([{**EPOCH,
                                                                         "loss": None}])))),
        ("a random state beyond 128 bits", forged(good, _set("rng", _json(
            PCG64 | {"state": {"state": 10 ** 400, "inc": 1}})))),
        ("a header the parser cannot hold", with_member(good, "history.npy",
                                                        npy_with_header(DEEP_SHAPE))),
    ]


def test_make_train_resumes_only_from_its_own_checkpoints(tmp_path, capsys, monkeypatch):
    """python -m tinycnn.train --resume with a forged checkpoint: one line naming it, exit
    status 2, no weights written; also when its reader runs out of memory or recursion depth
    (which must not read as the machine's "out of memory")."""
    from tinycnn import train as train_module
    fake_cifar10(monkeypatch)
    out, ckpt = tmp_path / "net.npz", tmp_path / "ckpt.npz"
    argv = ["--epochs", "1", "--batch-size", "32", "--out", str(out), "--checkpoint", str(ckpt)]
    train_module.main(argv)
    good = ckpt.read_bytes()
    cases = forged_resumes(good) + [("a reader out of memory", MemoryError()),
                                    ("a reader out of depth", RecursionError("max depth"))]
    for what, forgery in cases:
        out.unlink(missing_ok=True)
        ckpt.write_bytes(good)
        with monkeypatch.context() as patch:
            if isinstance(forgery, bytes):
                ckpt.write_bytes(forgery)
            else:
                patch.setattr("tinycnn.io.checkpoint.read_npz",
                              lambda *a, error=None, e=forgery: (_ for _ in ()).throw(e))
            with pytest.raises(SystemExit) as done:
                train_module.main(argv + ["--resume"])
        err = capsys.readouterr().err
        assert done.value.code == 2 and err.startswith(f"error: cannot resume from {ckpt}: "), \
            (what, err)
        assert err.count("\n") == 1 and "out of memory" not in err, (what, err)
        assert not out.exists(), what


@pytest.mark.parametrize("error, line", [
    (MemoryError(), "error: cannot read the CIFAR-10 data: reading it asks for more memory"),
    (RecursionError("maximum recursion depth exceeded"),
     "error: cannot read the CIFAR-10 data: it is nested too deeply"),
    (OverflowError("Python int too large"), "error: cannot read the CIFAR-10 data: a number"),
    (ValueError("data/cifar-10-batches-py/data_batch_1 holds 0-d labels"),
     "error: data/cifar-10-batches-py/data_batch_1 holds 0-d labels"),
])
def test_make_train_tells_a_data_readers_error_in_one_line(error, line, tmp_path, capsys,
                                                          monkeypatch):
    from tinycnn import train as train_module

    def reader(split):
        raise error
    monkeypatch.setattr("tinycnn.io.data.load_cifar10", reader)
    with pytest.raises(SystemExit) as done:
        train_module.main(["--out", str(tmp_path / "w.npz"),
                           "--checkpoint", str(tmp_path / "c.npz")])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.startswith(line) and err.count("\n") == 1, err
