"""The training-curve figure's log reader: a log that is not one of make train's is one error."""
import json
import os

import numpy as np
import pytest

from vis.training_curve import read_log

EPOCH = {"epoch": 1, "loss": 2.0, "train_acc": 0.3, "test_acc": 0.4}


def test_a_log_of_make_train_reads(tmp_path):
    (tmp_path / "log.json").write_text(json.dumps({"history": [EPOCH, {**EPOCH, "epoch": 2}]}))
    assert [h["epoch"] for h in read_log(tmp_path / "log.json")["history"]] == [1, 2]


@pytest.mark.parametrize("text, why", [
    ("{", "is not a JSON training log"), ("[]", "expected a 'history'"),
    ('{"history": {}}', "expected a 'history'"), ('{"history": []}', "expected a 'history'"),
    (json.dumps({"history": [{"epoch": 1}]}), "expected a 'history'"),
    (json.dumps({"history": [{**EPOCH, "loss": float("nan")}]}), "a diverged run's loss is NaN"),
    (json.dumps({"history": [{**EPOCH, "test_acc": "0.4"}]}), "expected a 'history'"),
])
def test_a_broken_log_is_one_error(tmp_path, text, why):
    (tmp_path / "log.json").write_text(text)
    with pytest.raises(ValueError, match=why):
        read_log(tmp_path / "log.json")


def test_non_utf8_and_special_files_are_refused(tmp_path):
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match="bin.json is not a JSON training log"):
        read_log(tmp_path / "bin.json")
    os.mkfifo(tmp_path / "fifo.json")                 # would block for ever
    with pytest.raises(FileNotFoundError, match="no training log file at"):
        read_log(tmp_path / "fifo.json")


def _log(**changes):
    return json.dumps({"history": [{**EPOCH, **changes}]})


@pytest.mark.parametrize("text, why", [
    ("[" * 100_000 + "]" * 100_000, "is not a JSON training log: it is nested too deeply"),
    ('{"history": [' * 50_000, "is not a JSON training log: it is nested too deeply"),
    ('{"history": [{"epoch": 1, "loss": ' + "9" * 5000 + "}]}",
     "is not a JSON training log: Exceeds the limit"),      # Python's int(str) bound: 4300 digits
    (_log(epoch=10 ** 400), "expected a 'history' of epochs 1, 2, ..."),
    (_log(loss=10 ** 400), "the loss at most"),
    (_log(loss=1e308), "the loss at most"), (_log(loss=-1.0), "the loss at most"),
    (_log(loss=float("inf")), "the loss at most"), (_log(test_acc=1.5), "accuracies in [0, 1]"),
    (_log(train_acc=-1e-9), "accuracies in [0, 1]"), (_log(epoch=True), "epochs 1, 2, ..."),
    (_log(epoch=2), "epochs 1, 2, ..."), (_log(epoch=1.0), "epochs 1, 2, ..."),
    (json.dumps({"history": [EPOCH, EPOCH]}), "epochs 1, 2, ..."),
    (json.dumps({"history": [EPOCH, None]}), "epochs 1, 2, ..."),
    (json.dumps({"history": [EPOCH] * 3, "args": {}})[:-30], "is not a JSON training log"),
])
def test_a_forged_log_is_one_error_naming_it(tmp_path, text, why):
    (tmp_path / "log.json").write_text(text)
    with pytest.raises(ValueError) as e:
        read_log(tmp_path / "log.json")
    assert str(e.value).startswith(str(tmp_path / "log.json")) and why in str(e.value), e.value
    assert "\n" not in str(e.value)


def test_a_log_too_large_to_be_one_is_refused_unread(tmp_path):
    """Only MAX_LOG_BYTES + 1 bytes are read: a huge file is refused by its size, fast."""
    import time

    from vis.training_curve import MAX_LOG_BYTES
    with open(tmp_path / "big.json", "wb") as f:
        f.truncate(64 * MAX_LOG_BYTES)          # sparse: 256 MB of zeros that cost no disk
    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"big.json is larger than {MAX_LOG_BYTES >> 20} MB"):
        read_log(tmp_path / "big.json")
    assert time.perf_counter() - start < 2


def test_the_extremes_a_log_may_hold_are_drawn(tmp_path):
    """A loss of MAX_LOSS in every epoch and accuracies of 0 and 1 still draw (the plot's
    scale needs a range; a larger loss would leave it none)."""
    from vis.training_curve import MAX_LOSS, training_curve
    history = [{"epoch": k, "loss": MAX_LOSS, "train_acc": 0, "test_acc": 1} for k in (1, 2)]
    (tmp_path / "log.json").write_text(json.dumps({"history": history}))
    image = training_curve(read_log(tmp_path / "log.json")["history"])
    assert image.dtype == np.uint8 and image.ndim == 3 and image.std() > 0


def test_the_command_tells_a_forged_log_in_one_line(tmp_path):
    from .test_vis_cli import run_here
    (tmp_path / "deep.json").write_text("[" * 100_000)
    (tmp_path / "huge.json").write_text(_log(epoch=10 ** 400))
    for name in ("deep.json", "huge.json"):
        status, err = run_here("training_curve", "--log", str(tmp_path / name),
                               "--out", str(tmp_path / "curve.png"))
        assert status == 2 and err.startswith(f"error: {tmp_path / name}") \
            and err.count("\n") == 1, err
    assert not (tmp_path / "curve.png").exists()
