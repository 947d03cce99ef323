"""Fuzzing every ``python -m vis.<technique>`` command line with bad arguments, and the
commands' own files with forgeries.

Each example of the first property is one generated argument list holding at least one bad
argument (an unknown flag, a number out of range or not a number, an empty string, a bad
choice, a folder where a file is wanted, a channel the layer does not have) among good
ones. The module's ``main(argv)`` runs in-process, wrapped by ``cli.run`` as under
``python -m``: it must end in exit status 2 with one ``error:`` line on stderr, and fast
(the arguments are checked before any heavy work).

The others forge what the commands read besides images and weights (SECURITY.md): a
checkpoint for ``--resume`` (members replaced by .npy headers no writer makes, random
bytes, nested or extreme JSON), a training log for ``vis.training_curve --log`` (nesting
200,000 deep, numbers of thousands of digits, NaN, values out of range, wrong structure), a
transform network for ``vis.fast_style --net`` (huge widths over no data, thousands of
blocks, wrong dtypes and shapes), and links placed where ``--out``'s write probe writes.
Each is refused in one line naming the file, or read; the properties whose promise is
memory run the reader in a child (tests/children.py) and assert its peak above the imports
against the file's size, and its time.
"""
import argparse
import contextlib
import functools
import importlib
import io
import json
import os
import string
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tinycnn.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tinycnn.io.data import DataError, find_cifar10
from tinycnn.optim import Adam
from vis import cli, fast_style_train
from vis.fast_style import transform_shapes
from vis.training_curve import MAX_LOG_BYTES

from .children import MB, ForkServer
from .conftest import fuzz_settings
from .test_checkpoint import npy_with_header, params, small_net, stepped, with_member

MODULES = [
    "filters",
    "saliency",
    "guided_backprop",
    "occlusion",
    "attribution",
    "max_patches",
    "neighbors",
    "embedding",
    "class_visualization",
    "fooling",
    "deepdream",
    "feature_inversion",
    "texture_synthesis",
    "texture_nn",
    "fast_style_train",
    "style_transfer",
    "fast_style",
    "multifaceted",
    "training_curve",
    "gallery",
]
BAD_NUMBERS = {
    cli.count: ["0", "-1", "-7", "x", "1.5", " ", "1e3"],
    cli.index: ["-1", "-12", "x", "2.0", "0x1"],
    cli.positive: ["0", "-0.5", "nan", "inf", "-inf", "x"],
    cli.non_negative: ["-0.5", "nan", "inf", "x"],
}
PATHS = ["--image", "--weights", "--out", "--log", "--content", "--texture", "--style"]
HUGE_CHANNEL = {
    "guided_backprop": ["--layer", "conv2", "--channel"],
    "class_visualization": ["--layer", "conv2", "--channels", "0"],
    "max_patches": ["--layer", "conv2", "--channels", "1"],
    "neighbors": ["--queries", "2"],
}
# "fast": no technique runs; a slow shared machine loading SqueezeNet stays far below this
SECONDS = 10


def cifar10_missing():
    """Why CIFAR-10 is absent (naming where it was looked for and how to fetch it), or None."""
    try:
        find_cifar10()
    except DataError as e:
        return str(e)
    return None


def needs_cifar10(*case):
    """A case whose argument can only be checked against CIFAR-10 itself: skipped, saying why,
    where it is absent."""
    missing = cifar10_missing()
    return pytest.param(
        *case, marks=pytest.mark.skipif(missing is not None, reason=f"needs CIFAR-10: {missing}")
    )


class _Parsed(Exception):
    pass


def options(module):
    """{flag: argparse action} of a module's parser, captured as main() parses."""
    def capture(parser, *args, **kwargs):
        raise _Parsed(parser)
    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = capture
    try:
        importlib.import_module(f"vis.{module}").main([])
    except _Parsed as e:
        return {
            a.option_strings[-1]: a for a in e.args[0]._actions if a.option_strings[-1] != "--help"
        }
    finally:
        argparse.ArgumentParser.parse_args = original


OPTIONS = {m: options(m) for m in MODULES}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder to run in (figures/ is created there), with a small photo and a sub-folder."""
    folder = tmp_path_factory.mktemp("cli")
    Image.new("RGB", (40, 40), "blue").save(folder / "blue.png")
    (folder / "a_folder").mkdir()
    before = os.getcwd()
    os.chdir(folder)
    yield folder
    os.chdir(before)


@st.composite
def bad_fragment(draw, module):
    """Tokens holding one bad argument for ``module``."""
    opts = OPTIONS[module]
    kinds = ["unknown", "empty"]
    typed = [f for f, a in opts.items() if a.type in BAD_NUMBERS]
    kinds += ["number"] * bool(typed) + ["choice"] * any(a.choices for a in opts.values())
    kinds += ["folder"] * any(
        f in PATHS and not (module == "gallery" and f == "--out") for f in opts
    )
    kinds += ["channel"] * (module in HUGE_CHANNEL)
    kind = draw(st.sampled_from(kinds))
    if kind == "unknown":
        return [f"--no-such-{draw(st.text(string.ascii_lowercase + '-', min_size=1, max_size=8))}"]
    if kind == "empty":
        flag = draw(
            st.sampled_from([f for f, a in opts.items() if a.type is None and a.nargs != 0])
        )
        return [flag, ""]
    if kind == "number":
        flag = draw(st.sampled_from(typed))
        value = draw(st.sampled_from(BAD_NUMBERS[opts[flag].type]))
        return (
            [flag] + (["1"] if opts[flag].nargs == "+" and draw(st.booleans()) else []) + [value]
        )
    if kind == "choice":
        flag = draw(st.sampled_from([f for f, a in opts.items() if a.choices]))
        return [flag, draw(st.sampled_from(["", "bogus", "ADAM"]))]
    if kind == "folder":
        return [
            draw(
                st.sampled_from(
                    [f for f in opts if f in PATHS and not (module == "gallery" and f == "--out")]
                )
            ),
            "a_folder",
        ]
    return ["--model", "cifar10"] * (module != "neighbors") + HUGE_CHANNEL[module] + \
        [str(draw(st.integers(10**4, 10**30)))]


@st.composite
def bad_command_line(draw):
    module = draw(st.sampled_from(MODULES))
    bad = draw(bad_fragment(module))
    good = {"--model": ["cifar10"], "--image": ["blue.png"], "--seed": ["3"], "--out": ["o.png"]}
    usable = [[f] + v for f, v in good.items() if f in OPTIONS[module] and f not in bad
              and not (module == "gallery" and f == "--out")]
    fragments = draw(st.permutations(usable + [bad]))
    return module, [token for fragment in fragments[:draw(st.integers(1, len(fragments)))] + [bad]
                    for token in fragment]


def run(module, argv):
    """(exit status, stderr) of ``python -m vis.<module> argv``, in this process."""
    main = importlib.import_module(f"vis.{module}").main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            cli.run(lambda: main(argv))
        except SystemExit as e:
            return e.code, err.getvalue()
    return 0, err.getvalue()


@pytest.mark.fuzz
@given(bad_command_line())
def test_a_bad_command_line_is_one_error_line_and_status_2(workdir, command):
    module, argv = command
    start = time.perf_counter()
    status, err = run(module, argv)
    assert status == 2, (module, argv, status, err)
    assert err.startswith("error: ") and err.count("\n") == 1, (module, argv, err)
    assert "CIFAR-10 not found" not in err, (
        module,
        argv,
        "loads CIFAR-10 before checking its arguments",
    )
    assert time.perf_counter() - start < SECONDS, (
        module,
        argv,
        "took",
        time.perf_counter() - start,
    )


@pytest.mark.parametrize(
    "module, argv, message",
    [
        ("occlusion", ["--stride", "0"], "argument --stride: '0' is not a positive integer"),
        (
            "guided_backprop",
            ["--channel", "-3"],
            "argument --channel: '-3' is not a non-negative integer",
        ),
        ("class_visualization", ["--lr", "nan"], "argument --lr: 'nan' is not a positive number"),
        ("saliency", ["--out", "a_folder"], "argument --out: a_folder is a folder"),
        ("saliency", ["--target", ""], "argument --target: an empty string"),
        ("filters", ["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (
            "saliency",
            ["--out", "figures/x"],
            "figures/x does not end in an extension of a colour image format; end it in .png",
        ),
        (
            "saliency",
            ["--out", "figures/x.xbm"],
            "figures/x.xbm does not end in an extension of a colour image format",
        ),
        (
            "saliency",
            ["--out", "figures/x.pdf"],
            "figures/x.pdf does not end in an extension of a colour image format",
        ),
        (
            "class_visualization",
            ["--model", "cifar10", "--layer", "conv2", "--channels", "64"],
            "channel 64 is out of range: layer 'conv2' has 64 channels",
        ),
        (
            "max_patches",
            ["--model", "cifar10", "--count", "20000"],
            "--count 20000 is more than the 10000",
        ),
        (
            "embedding",
            ["--model", "cifar10", "--grid", "50"],
            "a 50 x 50 grid needs at least 2500 images",
        ),
        (
            "embedding",
            ["--model", "cifar10", "--count", "20000"],
            "--count 20000 is more than the 10000",
        ),
        needs_cifar10(
            "multifaceted",
            ["--model", "cifar10", "--k", "6000"],  # compared with the class's images
            "6000 facets need at least 6000 images of the class",
        ),
        (
            "attribution",
            ["--model", "cifar10", "--layer", "fc7"],
            "Grad-CAM needs a layer with spatial positions",
        ),
        ("deepdream", ["--octaves", "20"], "20 octaves (--octaves) shrink the image that far"),
        ("texture_synthesis", ["--size", "1"], "1x1 px is too small for the layers up to fire5"),
        ("texture_synthesis", ["--large", "0.01"], "make --large times --size larger"),
        (
            "style_transfer",
            ["--model", "cifar10"],
            "--model cifar10: this technique runs on squeezenet only",
        ),
    ],
)
def test_bad_arguments_named(workdir, module, argv, message):
    status, err = run(module, argv)
    assert status == 2 and message in err and err.count("\n") == 1, (status, err)


# -- forged files: checkpoints, training logs, transform networks, links at --out ------------

# number texts JSON holds but no training writes: thousands of digits, beyond float64, special
NUMBERS = st.one_of(st.integers(1, 6000).map(lambda n: "9" * n),
                    st.sampled_from(["1e999", "-1e999", "1e-400", "-0", "NaN", "-Infinity",
                                     "true", "null", '"0.5"', "[]", "{}", "1E+308", "2.5"]),
                    st.integers(-10 ** 30, 10 ** 30).map(str), st.floats().map(json.dumps))
CLOSE = {"[": "]", '{"a": ': "}", '{"history": [': "]}", '{"history": [{"epoch": ': "}]}"}


@st.composite
def json_texts(draw):
    """JSON (or nearly) of every shape a forger might try: nested up to 200,000 deep, closed
    or not; make train's structure holding extreme numbers; truncated."""
    kind = draw(st.sampled_from(["nested", "record", "cut"]))
    if kind == "nested":
        opener = draw(st.sampled_from(sorted(CLOSE)))
        depth = draw(st.integers(1, 200_000))
        closed = draw(st.booleans())
        return opener * depth + ("1" + CLOSE[opener] * depth if closed else "")
    keys = ("epoch", "loss", "train_acc", "test_acc", "lr", "seconds")
    records = draw(st.lists(st.dictionaries(st.sampled_from(keys), NUMBERS, min_size=3),
                            min_size=1, max_size=4))
    text = '{"history": [' + ", ".join(
        "{" + ", ".join(f'"{k}": {v}' for k, v in r.items()) + "}" for r in records) + "]}"
    return text[:draw(st.integers(0, len(text)))] if kind == "cut" else text


@functools.lru_cache(maxsize=None)
def good_checkpoint():
    """The bytes of a checkpoint of a small net with Adam's state and a fast-style history."""
    net, opt, rng = stepped(Adam)
    with tempfile.TemporaryDirectory() as folder:
        save_checkpoint(Path(folder) / "c.npz", net, opt, rng, [[1, 2.0], [2, 1.0]])
        return (Path(folder) / "c.npz").read_bytes()


DESCRS = ["<f4", "<f8", "|u1", "|O", "<U3", "V8", "<c8", ">f4", "<i8", "|b1", "<M8[s]", "x"]


@st.composite
def npy_headers(draw):
    """An .npy header text: a dtype no reader wants, or a shape negative, huge, nested,
    or deeper than the parser holds."""
    shape = draw(st.one_of(
        st.lists(st.integers(-10 ** 20, 10 ** 20), max_size=4).map(lambda s: repr(tuple(s))),
        st.integers(1, 9000).map(lambda n: "(" + "-" * n + "1,)"),
        st.integers(1, 4000).map(lambda n: "(" * n + ")" * n),
        st.text(string.printable, max_size=40)))
    fortran = draw(st.sampled_from(["False", "True", "1", "None"]))
    return (f"{{'descr': {draw(st.sampled_from(DESCRS))!r}, 'fortran_order': {fortran}, "
            f"'shape': {shape}, }}")


@st.composite
def forged_checkpoints(draw):
    """The bytes of good_checkpoint() with one to three members replaced by a forged .npy
    member, random bytes or JSON bytes, or dropped."""
    with zipfile.ZipFile(io.BytesIO(good_checkpoint())) as z:
        names = z.namelist()
    data = good_checkpoint()
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(names))
        kind = draw(st.sampled_from(["header", "bytes", "json", "drop"]))
        if kind == "header":
            member = npy_with_header(draw(npy_headers()), draw(st.binary(max_size=64)))
        elif kind == "bytes":
            member = draw(st.binary(max_size=200))
        elif kind == "json":
            text = draw(json_texts()).encode()
            member = npy_with_header(f"{{'descr': '|u1', 'fortran_order': False, "
                                     f"'shape': ({len(text)},), }}", text)
        else:
            member = None
        data = with_member(data, name, member) if member is not None else _without(data, name)
    return data


def _without(good, name):
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as old, zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            if info.filename != name:
                new.writestr(info.filename, old.read(info))
    return out.getvalue()


@pytest.mark.fuzz
@fuzz_settings(30)
@given(forged=forged_checkpoints())
def test_a_forged_checkpoint_is_one_error_and_nothing_is_restored(forged):
    """--resume (tinycnn.io.checkpoint, as python -m tinycnn.train and vis.fast_style_train
    read it): a forgery is one CheckpointError naming the file, and the net, the optimiser
    and the generator are as they were."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.npz"
        path.write_bytes(forged)
        net, rng = small_net(seed=7), np.random.default_rng(99)
        opt = Adam(net)
        before, state = params(net), rng.bit_generator.state
        start = time.perf_counter()
        try:
            load_checkpoint(path, net, opt, rng, fast_style_train.check_history)
        except CheckpointError as e:
            assert str(e).startswith(f"cannot resume from {path}: ") and "\n" not in str(e), e
            assert all(np.array_equal(params(net)[k], v) for k, v in before.items())
            assert opt.t == 0 and rng.bit_generator.state == state
        assert time.perf_counter() - start < SECONDS


@pytest.mark.fuzz
@fuzz_settings(30)
@given(text=json_texts())
def test_a_forged_training_log_is_one_line_or_a_curve(workdir, text):
    """vis.training_curve --log: a log is drawn, or refused in one line naming it."""
    log, out = workdir / "log.json", workdir / "curve.png"
    log.write_text(text)
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    status, err = run("training_curve", ["--log", str(log), "--out", str(out)])
    assert (status, err) == (0, "") and out.is_file() or (
        status == 2 and err.startswith(f"error: {log}") and err.count("\n") == 1), (status, err)
    assert time.perf_counter() - start < SECONDS


@st.composite
def forged_nets(draw):
    """{name: array} of a transform network with one to three forgeries: a huge width over no
    data, thousands of residual blocks, a dtype or shape of its own, a key dropped or added."""
    width, blocks = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    arrays = {k: np.full(shape, 0.1, np.float32)
              for k, shape in transform_shapes(width, blocks).items()}
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["width", "blocks", "dtype", "shape", "drop", "add"]))
        key = draw(st.sampled_from(sorted(arrays))) if arrays else "down1.conv.weight"
        if kind == "width":
            arrays["down1.conv.weight"] = np.zeros((draw(st.integers(10 ** 3, 10 ** 9)), 0, 9, 9),
                                                   np.float32)
        elif kind == "blocks":
            n = draw(st.integers(blocks + 1, 3000))
            arrays.update({f"res{i}.conv.weight": np.zeros(0, np.float32)
                           for i in range(blocks + 1, n + 1)})
        elif kind == "dtype" and key in arrays:
            arrays[key] = arrays[key].astype(draw(st.sampled_from(
                [np.int8, np.float16, np.bool_, np.uint64, np.float64])))
        elif kind == "shape":
            dims = draw(st.lists(st.integers(0, 10 ** 6), min_size=1, max_size=4))
            arrays[key] = np.zeros(dims if 0 in dims else [min(d, 3) for d in dims], np.float32)
        elif kind == "drop":
            arrays.pop(key, None)
        else:
            arrays[draw(st.text(string.ascii_lowercase + ".", min_size=1, max_size=12))] = \
                np.zeros(1, np.float32)
    return arrays


@st.composite
def forged_files(draw):
    """(kind, bytes): a forged checkpoint, training log or transform network."""
    kind = draw(st.sampled_from(["net", "log", "checkpoint"]))
    if kind == "log":
        return kind, draw(json_texts()).encode()
    if kind == "net":
        out = io.BytesIO()
        np.savez(out, **draw(forged_nets()))
        return kind, out.getvalue()
    return kind, draw(forged_checkpoints())


# what a child runs for each kind (PATH: the forged file); the server imports for all kinds
SETUP = """
import numpy as np
from tests.test_checkpoint import small_net
from tinycnn.io.args import one_line_errors
from tinycnn.io.checkpoint import load_checkpoint
from tinycnn.optim import Adam
from vis import cli
from vis.fast_style import load_transform_net
from vis.fast_style_train import check_history
from vis.training_curve import read_log
"""
READERS = {
    "net": "cli.run(lambda: load_transform_net(PATH))",
    "log": "cli.run(lambda: read_log(PATH))",
    "checkpoint": "net = small_net(7)\n"
                  "with one_line_errors('out of memory'):\n"
                  "    load_checkpoint(PATH, net, Adam(net), np.random.default_rng(0), "
                  "check_history)",
}
# JSON costs Python objects: up to a few dozen bytes of them per byte of text (a log is at
# most MAX_LOG_BYTES); arrays cost at most a few times their bytes
PER_BYTE = {"net": 8, "log": 64, "checkpoint": 8}


@pytest.fixture(scope="module")
def forks():
    with ForkServer(SETUP, seconds=30, memory_limit=3 << 30) as server:
        yield server


@pytest.mark.fuzz
@fuzz_settings(3)
@given(forgery=forged_files())
def test_a_forged_file_costs_no_more_than_it_holds(forks, forgery):
    """The reader of each forgery, in a child under an address-space limit: one error line
    naming the file (or the file read), its peak memory above the imports within a small
    multiple of the file's size plus 16 MB, and a few seconds."""
    kind, data = forgery
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("log.json" if kind == "log" else "forged.npz")
        path.write_bytes(data)
        run = forks.run(READERS[kind].replace("PATH", repr(str(path))))
    budget = PER_BYTE[kind] * min(len(data), MAX_LOG_BYTES) + 16 * MB
    assert run.returncode in (0, 2) and not run.timed_out, (kind, run.returncode, run.stderr)
    if run.returncode == 2:
        assert run.stderr.startswith("error: ") and str(path) in run.stderr \
            and run.stderr.count("\n") == 1, (kind, run.stderr)
    assert run.peak < budget, (kind, len(data), run.peak)
    assert run.seconds < 30, (kind, run.seconds)


@pytest.mark.fuzz
@fuzz_settings(30)
@given(names=st.lists(st.one_of(
    st.just("pid"), st.just("x.png"),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789_", min_size=8, max_size=8).map(
        lambda s: ".tinycnn-write-test-" + s)), min_size=1, max_size=6, unique=True),
    target=st.sampled_from(["missing", "file", "folder"]))
def test_the_write_probe_follows_no_link_placed_for_it(names, target):
    """Links placed in --out's folder (at the name the probe once had, at names of its
    pattern, at the output's) pointing outside: check_writable creates nothing there,
    changes nothing there and leaves the links as they were."""
    names = [f".tinycnn-write-test-{os.getpid()}" if n == "pid" else n for n in names]
    with tempfile.TemporaryDirectory() as root:
        out, outside = Path(root) / "out", Path(root) / "outside"
        out.mkdir()
        outside.mkdir()
        (outside / "file").write_bytes(b"kept")
        for k, name in enumerate(names):
            (out / name).symlink_to(outside / ("file" if target == "file" else
                                               "" if target == "folder" else f"new{k}"))
        cli.check_writable(out)
        assert sorted(p.name for p in outside.iterdir()) == ["file"]
        assert (outside / "file").read_bytes() == b"kept"
        assert sorted(p.name for p in out.iterdir()) == sorted(names)
        assert all((out / name).is_symlink() for name in names)
