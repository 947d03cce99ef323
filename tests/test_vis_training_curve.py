"""The training-curve figure's log reader: a log that is not one of make train's is one error."""
import json
import os

import pytest

from vis.training_curve import read_log

EPOCH = {"epoch": 1, "loss": 2.0, "train_acc": 0.3, "test_acc": 0.4}


def test_a_log_of_make_train_reads(tmp_path):
    (tmp_path / "log.json").write_text(json.dumps({"history": [EPOCH, {**EPOCH, "epoch": 2}]}))
    assert [h["epoch"] for h in read_log(tmp_path / "log.json")["history"]] == [1, 2]


@pytest.mark.parametrize("text, why", [
    ("{", "is not a JSON training log"), ("[]", "expected a 'history'"), ('{"history": {}}', "expected a 'history'"),
    ('{"history": []}', "expected a 'history'"), (json.dumps({"history": [{"epoch": 1}]}), "expected a 'history'"),
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
