"""The vis command lines: bad input ends in one clear line, not a traceback."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("module", ["filters", "saliency", "guided_backprop", "occlusion",
                                    "attribution", "max_patches", "neighbors", "embedding",
                                    "class_visualization", "fooling", "deepdream",
                                    "feature_inversion", "texture_synthesis", "texture_nn",
                                    "style_transfer", "fast_style", "fast_style_train",
                                    "multifaceted", "training_curve"])
def test_every_module_explains_itself(module, monkeypatch):
    done = run(f"vis.{module}", "--help")
    # the command as it is typed
    assert done.returncode == 0 and f"usage: python -m vis.{module} " in done.stdout
    assert f"example:\n  python -m vis.{module} " in done.stdout
    assert "--seed SEED" not in done.stdout or "random seed (default: 0)" in done.stdout
    # every option says what it does
    import argparse
    import importlib

    def check(parser, *args, **kwargs):
        silent = [a.option_strings[-1] for a in parser._actions if a.option_strings and not a.help]
        assert silent == [], f"vis.{module}: options without help: {silent}"
        raise SystemExit(0)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", check)
    with pytest.raises(SystemExit):
        importlib.import_module(f"vis.{module}").main([])


def test_the_argument_types_are_tinycnns_own():
    """vis parses with tinycnn.io.args, which python -m tinycnn.train shares: one parser class,
    one set of argument types, re-exported here under the names every vis module uses."""
    from tinycnn.io import args
    from vis import cli
    for name in ("ArgumentParser", "count", "index", "positive", "non_negative", "USAGE_ERROR"):
        assert getattr(cli, name) is getattr(args, name), name
    p = cli.parser("x")
    assert isinstance(p, args.ArgumentParser) and p.prog == "python -m tests.test_vis_cli"


def test_bad_input_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("not an image")
    cases = [
        (["vis.saliency", "--image", str(tmp_path / "missing.jpg")], "no image file at"),
        (["vis.saliency", "--image", str(tmp_path / "notes.txt")], "is not an image file"),
        (["vis.saliency", "--target", "espreso"],
         "unknown class 'espreso'; close matches: espresso"),
        (["vis.saliency", "--target", "1", "2"], "argument --target: 2 classes for 1 images"),
        (["vis.attribution", "--target", "1", "2"], "argument --target: 2 classes for 1 images"),
        (["vis.attribution", "--target", "missile"], "'missile' is ambiguous, it matches 2"),
        (["vis.guided_backprop", "--layer", "fire22"], "unknown layer 'fire22'"),
        (["vis.guided_backprop", "--layer", "fire2", "--channel", "500"],
         "channel 500 is out of range"),
        (["vis.guided_backprop", "--grid", "1000"], "--grid 1000: at most 8"),
        (["vis.filters", "--model", "squeezenet", "--layer", "relu1"], "not a convolution"),
        (["vis.filters", "--model", "alexnet"], "unknown model 'alexnet'"),
        (["vis.filters", "--layer", "conv2", "--sort"], "--sort orders RGB first-layer filters"),
    ]
    for args, message in cases:
        done = run(*args)
        assert done.returncode == 2 and message in done.stderr, (args, done.returncode,
                                                                  done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr


def test_every_bad_input_of_the_issue_is_one_line(tmp_path):
    """On the shipped CIFAR-10 net, so that it runs without ../shared."""
    from PIL import Image
    Image.new("RGB", (40, 40), "red").save(tmp_path / "red.png")
    (tmp_path / "red.png").write_bytes((tmp_path / "red.png").read_bytes()[:60])      # truncated
    Image.new("RGB", (40, 40), "blue").save(tmp_path / "blue.png")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "folder.jpg").mkdir()
    shipped = ROOT / "weights" / "cifar10_net.npz"
    (tmp_path / "truncated.npz").write_bytes(shipped.read_bytes()[:50_000])
    np.savez(tmp_path / "other.npz", **{"features.0.weight": np.zeros((64, 3, 3, 3), np.float32)})
    cifar = ["vis.saliency", "--model", "cifar10"]
    good = ["--image", str(tmp_path / "blue.png")]
    cases = [
        (cifar + ["--image", str(tmp_path / "missing.png")],
         f"no image file at {tmp_path / 'missing.png'}"),
        (cifar + ["--image", str(tmp_path / "red.png")],
         f"cannot read the image {tmp_path / 'red.png'}"),
        (cifar + ["--image", str(tmp_path / "notes.txt")], "notes.txt is not an image file"),
        (cifar + ["--image", str(tmp_path / "folder.jpg")], "folder.jpg holds no image files"),
        (cifar + good + ["--target", "unicorn"], "unknown class 'unicorn'"),
        (cifar + good + ["--target", "10"],
         "class index 10 is out of range: there are 10 classes"),
        (["vis.guided_backprop", "--model", "cifar10", "--layer", "conv9"] + good,
         "unknown layer 'conv9'; did you mean"),
        (["vis.guided_backprop", "--model", "cifar10", "--layer", "conv2", "--channel", "64"]
         + good,
         "channel 64 is out of range: layer 'conv2' has 64 channels (0-63)"),
        (cifar + good + ["--weights", str(tmp_path / "other.npz")],
         "does not match the network (is it from another model?)"),
        (cifar + good + ["--weights", str(tmp_path / "truncated.npz")],
         "truncated.npz is not a readable .npz"),
        (cifar + good + ["--out", str(tmp_path / "notes.txt" / "x.png")],
         f"cannot write to the output folder {tmp_path / 'notes.txt'}: it is a file, "
         "not a folder"),
        (cifar + good + ["--size", "48"], "this model classifies 32x32 images only"),
        (["vis.deepdream", "--model", "cifar10", "--image", "cifar:0", "--size", "48"],
         "--size needs photos"),
        (["vis.gallery", "--only", "salency"], "unknown figure salency"),
        (["vis.gallery", "--out", str(tmp_path / "empty"), "--thumbnails", str(tmp_path / "docs")],
         f"no figures in {tmp_path / 'empty'}/ to make thumbnails of"),
    ]
    for args, message in cases:
        done = run(*args)
        assert done.returncode == 2 and message in done.stderr, (args, done.returncode,
                                                                  done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
    assert not (tmp_path / "notes.txt").is_dir()


def test_saliency_of_whole_uncropped_photos(tmp_path, monkeypatch):
    """--size: each photo whole, its short side --size, one figure row each (SqueezeNet is fully
    convolutional); without it, the model's centre crop."""
    from PIL import Image
    from vis import cli
    rng = np.random.default_rng(0)
    for name, shape in (("wide.png", (40, 90, 3)), ("tall.png", (70, 40, 3))):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(tmp_path / name)
    net = cli.load_net(cli.parse_args(cli.parser("x"), [], ""))
    photos = [str(tmp_path / "wide.png"), str(tmp_path / "tall.png")]
    assert [x.shape for x in cli.load_uncropped(net, photos, 64)] == [(1, 3, 64, 144),
                                                                       (1, 3, 112, 64)]
    # at 128 px the photos are shown at their size (smaller ones are enlarged 4x): 128 x 288 and
    # 224 x 128
    done = run("vis.saliency", "--image", *photos, "--size", "8")
    assert done.returncode == 2 and done.stderr == (
        "error: --size 8 is too small for this model: its layers shrink a photo of 8 px to "
        "nothing (its input size is 224)\n"), done.stderr
    done = run("vis.saliency", "--image", *photos, "--size", "128",
               "--out", str(tmp_path / "s.png"))
    assert done.returncode == 0, done.stderr
    figure = np.asarray(Image.open(tmp_path / "s.png"))
    assert figure.shape[1] >= 5 * 288                # five panels of the wide photo, side by side
    assert 128 + 224 < figure.shape[0] < 2 * (128 + 224)   # both rows, each photo at its height


def test_cupy_asked_for_but_missing_is_one_line():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    done = subprocess.run([sys.executable, "-m", "vis.filters"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "TINYCNN_BACKEND": "cupy"})
    assert done.returncode == 2 and "CuPy is not installed" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bare_image_name_is_found_in_the_images_folder(tmp_path, monkeypatch):
    from PIL import Image
    from vis import cli
    (tmp_path / "photos").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "photos" / "cat.png")
    monkeypatch.setenv("TINYCNN_IMAGES_DIR", str(tmp_path))
    assert cli.find_image("cat.png") == tmp_path / "photos" / "cat.png"
    assert cli.find_image("photos/cat.png") == tmp_path / "photos" / "cat.png"
    shipped = cli.PROJECT_IMAGES
    monkeypatch.setattr(cli, "PROJECT_IMAGES", tmp_path / "a clone without make images")
    with pytest.raises(FileNotFoundError,
                       match="no image file at dog.jpg .*; `make images` fetches it"):
        cli.find_image("dog.jpg")
    monkeypatch.setattr(cli, "PROJECT_IMAGES", shipped)
    # (not: set the variable)
    with pytest.raises(FileNotFoundError, match=r"no image file at cow.png .*; give a path$"):
        cli.find_image("cow.png")
    # the repository's own images are found whatever the variable says
    assert cli.find_image("chelsea.png") == cli.PROJECT_IMAGES / "photos" / "chelsea.png"
    assert cli.find_image("styles/the_scream.jpg") == (cli.PROJECT_IMAGES / "styles" /
                                                       "the_scream.jpg")


def test_without_the_variable_the_repository_images_are_used(monkeypatch):
    from vis import cli
    monkeypatch.delenv("TINYCNN_IMAGES_DIR", raising=False)
    assert cli.images_dir() == cli.PROJECT_IMAGES
    assert cli.find_image("textures/brick.png") == cli.PROJECT_IMAGES / "textures" / "brick.png"
    with pytest.raises(FileNotFoundError,
                       match="no image file at cow.png .*; give a path, or set "
                             "TINYCNN_IMAGES_DIR"):
        cli.find_image("cow.png")


def test_a_folder_stands_for_its_image_files(tmp_path):
    from PIL import Image

    from vis import cli
    for name in ("b.png", "a.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub.png").mkdir()
    assert cli.expand_folders([str(tmp_path), "cifar:3"]) == [str(tmp_path / "a.jpg"),
                                                              str(tmp_path / "b.png"), "cifar:3"]


@pytest.mark.parametrize("error, why", [
    (MemoryError(), "error: out of memory; a smaller --size"),  # Pillow's resize says no more
    (MemoryError("Unable to allocate 18.6 TiB for an array"),
     "error: out of memory: Unable to allocate 18.6 TiB"),
    ("bomb", "error: Image size (501760000 pixels) exceeds limit"),
])
def test_sizes_beyond_memory_are_one_line(error, why, capsys):
    """No size option has a fixed upper bound: memory is the bound, and running out of it is
    one line."""
    from PIL import Image

    from vis import cli

    def main():
        if error == "bomb":   # Pillow, an image past its pixel limit (max_patches --scales 100)
            raise Image.DecompressionBombError("Image size (501760000 pixels) exceeds limit of "
                                               "178956970 pixels")
        raise error
    with pytest.raises(SystemExit) as done:
        cli.run(main)
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.startswith(why) and len(err.splitlines()) == 1, err


def run_here(module, *argv):
    """(exit status, stderr) of ``python -m vis.<module> argv``, in this process, as cli.run
    runs it."""
    import contextlib
    import importlib
    import io

    from vis import cli
    main = importlib.import_module(f"vis.{module}").main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.run(lambda: main(list(argv)))
        except SystemExit as e:
            return e.code, err.getvalue()
    return 0, err.getvalue()


def test_an_unwritable_out_folder_is_one_line_with_the_true_cause(tmp_path, monkeypatch):
    """--out is checked before any work, and the line says why the folder cannot take the PNG."""
    import errno
    (tmp_path / "notes.txt").write_text("not a folder")
    cases = [
        (tmp_path / "notes.txt" / "x.png",
         f"{tmp_path / 'notes.txt'}: it is a file, not a folder"),
        (tmp_path / "notes.txt" / "a" / "b" / "x.png",
         f"{tmp_path / 'notes.txt' / 'a' / 'b'}: {tmp_path / 'notes.txt'} is a file, "
         "not a folder"),
    ]
    if Path("/proc/self").is_dir():   # Linux: /proc is there, takes no new files ("No such file")
        cases += [(Path("/proc/x.png"), "/proc: it does not accept new files"),
                  (Path("/proc/new/x.png"), "/proc/new: /proc does not accept new files")]
    for out, message in cases:
        status, err = run_here("filters", "--model", "cifar10", "--out", str(out))
        assert (status, err) == (2, f"error: cannot write to the output folder {message}\n")
    assert not (tmp_path / "notes.txt").is_dir()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    from vis import cli
    monkeypatch.setattr(cli.tempfile, "mkstemp", read_only)
    status, err = run_here("filters", "--model", "cifar10", "--out", str(tmp_path / "x.png"))
    assert err == f"error: cannot write to the output folder {tmp_path}: Read-only file system\n"
    assert status == 2


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root writes in any folder")
def test_a_read_only_out_folder_is_one_line(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    status, err = run_here("filters", "--model", "cifar10", "--out", str(locked / "x.png"))
    assert (status, err) == (2, f"error: cannot write to the output folder {locked}: "
                                "Permission denied\n")


def test_an_image_too_small_to_show_anything_is_one_line(tmp_path):
    """A 1x1 image enlarged to the network's input is one flat colour: refused, by name and
    size."""
    from types import SimpleNamespace

    from PIL import Image

    from tinycnn.io.images import MIN_SIDE
    from vis import cli
    Image.new("RGB", (1, 1), "red").save(tmp_path / "dot.png")
    Image.new("RGB", (MIN_SIDE - 1, 30), "red").save(tmp_path / "thin.png")
    Image.new("RGB", (MIN_SIDE, 30), "red").save(tmp_path / "small.png")
    for name, size in (("dot.png", "1x1"), ("thin.png", f"{MIN_SIDE - 1}x30")):
        status, err = run_here("saliency", "--model", "cifar10", "--image", str(tmp_path / name),
                               "--out", str(tmp_path / "s.png"))
        assert (status, err) == (2, f"error: {tmp_path / name} is {size} px, too small to show "
                                    f"anything: an image needs at least {MIN_SIDE} px a side\n")
    net = SimpleNamespace(meta=dict(input_size=32, mean=(0.5,) * 3, std=(0.25,) * 3))
    assert cli.load_inputs(net, [str(tmp_path / "small.png")])[0].shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="dot.png is 1x1 px, too small"):
        cli.load_one(net, tmp_path / "dot.png", 64)


@pytest.mark.parametrize("module", ["neighbors", "max_patches", "saliency"])
def test_an_empty_folder_of_images_is_named(module, tmp_path):
    (tmp_path / "empty").mkdir()
    status, err = run_here(module, "--image", str(tmp_path / "empty"),
                           "--out", str(tmp_path / "x.png"))
    assert status == 2, err
    assert err == f"error: the folder {tmp_path / 'empty'} holds no image files\n", err


def test_the_write_probe_follows_no_link(tmp_path):
    """--out's folder is probed with a new file of a name no one chose, created with O_EXCL and
    O_NOFOLLOW: links placed in the folder beforehand, at the name the probe once had and at
    others, are neither followed nor removed, and nothing appears where they point."""
    from vis import cli
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    names = [f".tinycnn-write-test-{os.getpid()}", ".tinycnn-write-test-", "x.png"]
    for k, name in enumerate(names):
        (out / name).symlink_to(outside / f"created{k}")
    cli.check_writable(out)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    assert all((out / name).is_symlink() for name in names)


@pytest.mark.parametrize("error, says", [
    (MemoryError(), "reading it asks for more memory than there is (a file of"),
    (RecursionError("maximum recursion depth exceeded"), "it is nested too deeply"),
    (OverflowError("Python int too large to convert to C long"), "a number in it is out of range"),
    (ValueError("cannot reshape array of size 3 into shape (2,)"), "cannot reshape array"),
])
def test_a_readers_error_is_one_line_naming_the_file(error, says, tmp_path, monkeypatch):
    """Whatever an image or weights reader raises, the command says which file, in one line; a
    MemoryError from reading a small file is the file's problem, not "out of memory"."""
    from PIL import Image

    import tinycnn.models
    from vis import cli
    Image.new("RGB", (40, 40), "blue").save(tmp_path / "blue.png")
    np.savez(tmp_path / "w.npz", x=np.zeros(3))

    def reader(*args, **kwargs):
        raise error
    common = ["--model", "cifar10", "--out", str(tmp_path / "s.png")]
    with monkeypatch.context() as patch:
        patch.setattr(cli, "load_image", reader)
        status, err = run_here("saliency", *common, "--image", str(tmp_path / "blue.png"))
    assert status == 2 and err.startswith(f"error: cannot read {tmp_path / 'blue.png'}: ") \
        and says in err and err.count("\n") == 1, err
    status, err = run_here("saliency", "--model", "alexnet", "--weights", str(tmp_path / "w.npz"))
    assert err.startswith("error: unknown model 'alexnet'"), err     # not the file's error
    monkeypatch.setattr(tinycnn.models, "load_model", reader)
    status, err = run_here("saliency", *common, "--weights", str(tmp_path / "w.npz"))
    assert status == 2 and err.startswith(f"error: cannot read {tmp_path / 'w.npz'}: ") \
        and says in err and err.count("\n") == 1, err
    assert "out of memory" not in err


@pytest.mark.parametrize("error, line", [
    (RecursionError("maximum recursion depth exceeded"), "error: input nested too deeply"),
    (OverflowError("int too large to convert to float"), "error: int too large to convert"),
    (MemoryError(), "error: out of memory; a smaller --batch-size"),
    (KeyError("conv9"), "error: conv9\n"),
])
def test_every_command_tells_bad_input_the_same_way(error, line, capsys):
    """tinycnn.io.args.one_line_errors, which cli.run and python -m tinycnn.train share."""
    from tinycnn.io.args import one_line_errors
    from tinycnn.io.torch_checkpoint import UnsafeCheckpointError
    for raised, start in ((error, line), (UnsafeCheckpointError("x.pth: global os.system"),
                                          "error: x.pth: global os.system\n")):
        with pytest.raises(SystemExit) as done:
            with one_line_errors("a smaller --batch-size needs less"):
                raise raised
        err = capsys.readouterr().err
        assert done.value.code == 2 and err.startswith(start) and err.count("\n") == 1, err


def test_one_target_class_per_image():
    from tinycnn.backend import to_numpy
    from vis.cli import PREDICTED, targets

    from .nets import relu_net, x_batch
    net, x = relu_net(), x_batch(3)
    net.meta = {"classes": [f"class {k}" for k in range(10)]}
    predicted = to_numpy(net(x)).argmax(axis=1)
    assert list(targets(net, x, ["4", PREDICTED, "class 7"])) == [4, predicted[1], 7]
    assert list(targets(net, x, "class 2")) == [2, 2, 2]
    with pytest.raises(ValueError, match="2 target classes for 3 images"):
        targets(net, x, ["1", "2"])
