"""Training fast style transfer's transform network (vis/fast_style_train.py): random crops
of the photos, training that resumes bit-exactly from its checkpoint, a diverged update
that is not saved, and the command (make train_fast_style) end to end."""
import numpy as np
import pytest
from PIL import Image

from tinycnn.backend import asarray
from tinycnn.models import squeezenet1_1
from tinycnn.optim import Adam
from vis import fast_style, fast_style_train
from vis.style_transfer import PRESETS

from .test_vis_fast_style import run_command


COLOURS = [(200, 30, 40), (20, 180, 90)]


@pytest.fixture
def photos(tmp_path):
    """Two photos, 40 x 56 noise and 48 x 48 noise."""
    rng = np.random.default_rng(0)
    paths = []
    for k, size in enumerate([(40, 56), (48, 48)]):
        path = tmp_path / f"p{k}.png"
        Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def plain_photos(tmp_path):
    """Two one-colour photos of different sizes, one smaller than the crops asked below."""
    paths = []
    for k, (size, colour) in enumerate(zip([(40, 56), (12, 20)], COLOURS)):
        path = tmp_path / f"plain{k}.png"
        Image.new("RGB", size[::-1], colour).save(path)
        paths.append(path)
    return paths


def _train(photos, steps, checkpoint, resume=False):
    net = squeezenet1_1(weights=False, seed=1)
    tnet = fast_style.transform_net(width=2, blocks=1, seed=4)
    style = asarray(np.random.default_rng(2).standard_normal((1, 3, 24, 24)).astype(np.float32))
    history = fast_style_train.train(tnet, net, style, photos, preset=PRESETS["starry_night"],
                                     steps=steps, batch=2, crop=16, seed=5, checkpoint=checkpoint,
                                     resume=resume, checkpoint_every=2)
    return tnet.state_dict(), history


def test_training_resumes_bit_exactly(photos, tmp_path):
    whole, h_whole = _train(photos, 4, tmp_path / "a.ckpt.npz")
    _train(photos, 2, tmp_path / "b.ckpt.npz")
    resumed, h_resumed = _train(photos, 4, tmp_path / "b.ckpt.npz", resume=True)   # b's 2, 2 more
    assert [s for s, _ in h_resumed] == [1, 2, 3, 4]
    assert h_resumed == h_whole
    for k in whole:
        np.testing.assert_array_equal(resumed[k], whole[k], err_msg=k)


def test_an_update_that_overflows_is_not_saved(photos, tmp_path, monkeypatch):
    """The loss is read before each update; an update can still leave a parameter infinite.
    The checkpoint after it must not be written (resuming from it would fail on load)."""
    real, calls = Adam.step, []

    def overflowing_second_step(self, grads, lr):
        real(self, grads, lr)
        calls.append(1)
        if len(calls) == 2:
            next(iter(self.net.named_params()))[1][...] = np.nan
    monkeypatch.setattr(Adam, "step", overflowing_second_step)
    why = r"parameter '.+' became NaN or infinite by step 2; try a smaller --lr"
    with pytest.raises(ValueError, match=why):
        _train(photos, 2, tmp_path / "c.ckpt.npz")
    assert not (tmp_path / "c.ckpt.npz").exists()


def test_crops_are_the_size_asked_and_come_from_the_photos(plain_photos):
    crops = fast_style_train.Crops(plain_photos, 16, np.random.default_rng(0)).batch(20)
    assert crops.shape == (20, 16, 16, 3) and crops.dtype == np.uint8
    # a crop of a one-colour photo is that colour throughout; both photos are drawn
    seen = {tuple(int(v) for v in crop[0, 0]) for crop in crops}
    assert all((crop == crop[0, 0]).all() for crop in crops) and seen == set(COLOURS)
    with pytest.raises(ValueError, match="no training photos"):
        fast_style_train.Crops([], 16, np.random.default_rng(0))


def test_make_train_fast_style_runs_end_to_end_and_resumes(photos, tmp_path, monkeypatch):
    """python -m vis.fast_style_train at a tiny size: weights, log and loss curve written; a run
    of 2 steps resumed to 3 ends with the weights of 3 steps in one go; a corrupt checkpoint and
    bad arguments are one error line each."""
    from tinycnn.io.weights import read_npz
    monkeypatch.setenv("TINYCNN_IMAGES_DIR", str(tmp_path))      # no photos/ there: --images only
    small = ["--images", *map(str, photos), "--crop", "16", "--batch", "1", "--width", "2",
             "--blocks", "1", "--out", str(tmp_path / "loss.png")]

    def trained(name, steps, *more):
        status, out, err = run_command("fast_style_train", small + [
            "--steps", str(steps), "--net", str(tmp_path / name), *more])
        assert status == 0, err
        return read_npz(tmp_path / name), out
    straight, _ = trained("a.npz", 3)
    assert (tmp_path / "a.log.json").is_file() and (tmp_path / "a.ckpt.npz").is_file()
    assert Image.open(tmp_path / "loss.png").mode == "RGB"
    trained("b.npz", 2)
    resumed, out = trained("b.npz", 3, "--resume")
    assert f"resumed from {tmp_path / 'b.ckpt.npz'} after step 2" in out
    for k in straight:
        np.testing.assert_array_equal(resumed[k], straight[k], err_msg=k)
    back = fast_style.load_transform_net(tmp_path / "b.npz")        # the figure reads it
    assert back.meta["width"] == 2 and back.meta["blocks"] == 1
    (tmp_path / "b.ckpt.npz").write_bytes(b"not a zip")
    cases = [(["--steps", "3", "--net", str(tmp_path / "b.npz"), "--resume"],
              f"error: cannot resume from {tmp_path / 'b.ckpt.npz'}: "),
             (["--crop", "18"],
              "error: python -m vis.fast_style_train: argument --crop: 18 is not a multiple of 4"),
             (["--lr", "nan"], "argument --lr: 'nan' is not a positive number"),
             (["--net", str(tmp_path)], f"argument --net: {tmp_path} is not the path of an .npz"),
             (["--steps", "0"], "argument --steps: '0' is not a positive integer")]
    for argv, message in cases:
        status, _, err = run_command("fast_style_train", small + argv)
        assert status == 2 and message in err and err.count("\n") == 1, (argv, err)


@pytest.mark.parametrize("history, ok", [
    ([], True), ([[1, 2.5], [2, 0]], True), ([[1, 2.5], [3, 1.0]], False), ([[1, -1.0]], False),
    ([[1, float("nan")]], False), ([[1, 10 ** 400]], False), ([[True, 1.0]], False),
    ([[1.0, 1.0]], False), ([[1, "1.0"]], False), ([[1, 1.0, 7]], False), ([5], False),
    ([{"epoch": 1}], False),
])
def test_check_history_takes_only_what_training_records(history, ok):
    if ok:
        fast_style_train.check_history(history)
    else:
        with pytest.raises(ValueError, match=f"entry {len(history)} is not"):
            fast_style_train.check_history(history)


def test_resuming_from_a_history_training_does_not_record_is_refused(photos, tmp_path):
    """A checkpoint whose history is forged ([step, loss] pairs are what --resume counts its
    steps by) is one CheckpointError naming it, not a traceback in the middle of the run."""
    import json

    from tinycnn.io.checkpoint import CheckpointError

    from .test_checkpoint import forged
    ckpt = tmp_path / "c.ckpt.npz"
    _, history = _train(photos, 2, ckpt)
    assert [s for s, _ in history] == [1, 2]
    good = ckpt.read_bytes()
    for bad in ([1, 2], [[1, 5.0], [2, float("inf")]], [[1, 5.0], [2, 1.0, 0]]):
        ckpt.write_bytes(forged(good, lambda a: a.__setitem__("history", np.frombuffer(
            json.dumps(bad).encode(), np.uint8))))
        with pytest.raises(CheckpointError, match=f"^cannot resume from {ckpt}: .*entry"):
            _train(photos, 3, ckpt, resume=True)
