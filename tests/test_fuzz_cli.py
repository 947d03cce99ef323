"""Fuzzing every ``python -m vis.<technique>`` command line with bad arguments.

Each example is one generated argument list holding at least one bad argument (an
unknown flag, a number out of range or not a number, an empty string, a bad choice,
a folder where a file is wanted, a channel the layer does not have) among good ones.
The module's ``main(argv)`` runs in-process, wrapped by ``cli.run`` as under
``python -m``: it must end in exit status 2 with one ``error:`` line on stderr, and
fast (the arguments are checked before any heavy work).
"""
import argparse
import contextlib
import importlib
import io
import os
import string
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tinycnn.io.data import DataError, find_cifar10
from vis import cli

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
            ["--model", "cifar10", "--k", "3000"],  # compared with the class's images
            "3000 facets need at least 3000 images of the class",
        ),
        (
            "attribution",
            ["--model", "cifar10", "--layer", "fc7"],
            "Grad-CAM needs a layer with spatial positions",
        ),
        ("deepdream", ["--octaves", "20"], "20 octaves (--octaves) shrink the image that far"),
        ("texture_synthesis", ["--size", "1"], "1x1 px is too small for the layers up to fire7"),
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
