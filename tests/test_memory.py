"""tinycnn.engine.memory: what the machine can give, what a run needs, and the one-line refusal."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from tinycnn import backend
from tinycnn.engine import memory
from vis import _memory
from tinycnn.layers import Conv2d, ReLU
from tinycnn.net import Network

# a child that ignored the guard would allocate until it failed: it gets this much address space
CHILD_ADDRESS_SPACE = 4 * 2**30


def squeezenet():
    from tinycnn.models import load_model
    from tinycnn.io.weights import find_weights
    try:
        find_weights("squeezenet1_1.npz")
    except FileNotFoundError as e:
        pytest.skip(f"needs the SqueezeNet weights: {e}")
    return load_model("squeezenet")


def limited_address_space():
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))


# children check host memory, on the host: CUDA would not even start within CHILD_ADDRESS_SPACE
HOST = {**os.environ, "TINYCNN_BACKEND": "numpy", "OMP_NUM_THREADS": "1"}


@pytest.mark.parametrize("command", [
    # the two cases, which used to print nothing
    ["vis.saliency", "--size", "100000"],
    # and die at 20-24 GB after a minute or more
    ["vis.deepdream", "--size", "20000"],
    ["vis.texture_synthesis", "--size", "100000"],
    ["vis.texture_nn", "--size", "100000"],
    ["vis.embedding", "--model", "cifar10", "--count", "10000"],
    ["vis.max_patches", "--image", "chelsea.png", "--scales", "1", "2", "1000"],
    ["vis.fast_style_train", "--crop", "100000"],
])
def test_a_run_too_large_is_refused_in_one_line_at_once(command, tmp_path):
    if "cifar10" not in command:
        squeezenet()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", *command, "--out", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limited_address_space,
        env=HOST,
    )
    seconds = time.perf_counter() - start
    option = [word for word in command if word.startswith("--")][-1]
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: --") and f"{option} {command[-1]}: " in done.stderr, (
        done.stderr
    )
    assert " of memory and " in done.stderr, done.stderr
    assert " or less fits\n" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert seconds < 20, f"refused after {seconds:.1f} s"
    assert not (tmp_path / "x.png").exists()


def test_the_available_memory_is_the_least_of_what_limits_it(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(
        "MemTotal:       24683792 kB\nMemFree:         2000000 kB\nMemAvailable:    3000000 kB\n"
    )
    assert memory.meminfo_available(meminfo) == 3000000 * 1024          # the kernel's kB are KiB
    assert memory.meminfo_available(tmp_path / "missing") is None
    # cgroup v2: this process in /a/b; b allows 1,000,000 bytes and uses 400,000; a has no limit
    # ("max")
    membership = tmp_path / "cgroup"
    membership.write_text("0::/a/b\n")
    root = tmp_path / "sys"
    (root / "a" / "b").mkdir(parents=True)
    for folder, limit, usage in (
        (root / "a" / "b", "1000000", "400000"),
        (root / "a", "max", "900000"),
    ):
        (folder / "memory.max").write_text(limit + "\n")
        (folder / "memory.current").write_text(usage + "\n")
    assert memory.cgroup_room(root, membership) == 600000
    (root / "a" / "memory.max").write_text("1200000\n")                  # a tighter group above
    assert memory.cgroup_room(root, membership) == 300000
    (root / "a" / "memory.stat").write_text(
        "anon 500000\ninactive_file 250000\nactive_file 150000\n"
    )
    # the kernel would drop that cache
    assert memory.cgroup_room(root, membership) == 550000
    # cgroup v1: the memory controller's own hierarchy, other controllers' lines ignored
    membership.write_text("5:devices:/\n4:cpu,memory:/x\n")
    (root / "memory" / "x").mkdir(parents=True)
    (root / "memory" / "x" / "memory.limit_in_bytes").write_text("5000000\n")
    (root / "memory" / "x" / "memory.usage_in_bytes").write_text("1000000\n")
    assert memory.cgroup_room(root, membership) == 4000000
    (root / "memory" / "x" / "memory.stat").write_text(
        "inactive_file 7\ntotal_inactive_file 500000\n"
    )
    assert memory.cgroup_room(root, membership) == 4500000
    membership.write_text("5:devices:/\n")
    assert memory.cgroup_room(root, membership) is None
    assert (
        memory.available_bytes(meminfo=meminfo, cgroups=root, membership=membership)
        <= 3000000 * 1024
    )


def test_nothing_known_refuses_nothing(tmp_path):
    missing = tmp_path / "missing"
    if memory.address_space_room(missing) is not None:
        pytest.skip("this process has an address-space limit")
    assert (
        memory.available_bytes(
            meminfo=missing, cgroups=missing, membership=missing, status=missing
        )
        == np.inf
    )
    memory.check_fits("--size", 10**9, lambda v: v ** 4, available=np.inf)


def test_a_run_that_does_not_fit_is_one_line_naming_what_fits():
    def need(size):
        return 100 * size * size
    memory.check_fits("--size", 31, need, available=100_000)             # 96,100 bytes: fits
    with pytest.raises(memory.TooLarge) as e:
        memory.check_fits("--size", 100, need, available=100_000)
    assert str(e.value) == (
        "--size 100: this run needs about 1 MB of memory and 100 kB is available; "
        "--size 31 or less fits"
    )
    # vis.cli.run prints it as one error: line, status 2
    assert isinstance(e.value, ValueError)
    # only multiples of 4 are suggested
    with pytest.raises(memory.TooLarge, match="--crop 28 or less fits"):
        memory.check_fits("--crop", 128, need, lowest=4, step=4, available=90_000)
    with pytest.raises(memory.TooLarge, match="it does not fit even with --count 10$"):
        memory.check_fits("--count", 500, need, lowest=10, available=100)


def test_bytes_read_as_people_write_them():
    assert [memory.readable(n) for n in (0, 512, 3.4e6, 12_345e6, 480e9, 18.6e12, 2e18)] == [
        "0 bytes", "512 bytes", "3.4 MB", "12 GB", "480 GB", "19 TB", "2,000 PB"]


def test_a_pass_is_counted_by_hand_on_a_tiny_network():
    """Conv2d(3, 4, 3, padding=1) then ReLU, on an 8 x 8 probe: the conv keeps its input (3 * 64 *
    4 = 768 bytes), the ReLU its mask (4 * 64 = 256) and the output is 4 * 64 * 4 = 1024, also the
    largest layer output."""
    net = Network([("conv", Conv2d(3, 4, 3, padding=1)), ("relu", ReLU())])
    x = backend.asarray(np.zeros((1, 3, 8, 8), np.float32))
    assert memory.held_bytes(net.forward(x)) == 768 + 256 + 1024
    views = memory.held_bytes([x, x[:, :2], {"again": x.T}])
    if hasattr(x, "base"):          # NumPy, CuPy: views count once
        assert views == 768
    # the strict stand-in does not tell a view's base: each counts whole
    else:
        assert views == 768 + 512 + 768
    held, largest = 2048, 1024
    assert (
        memory.pass_bytes_per_pixel(net, side=8)
        == (held + memory.BACKWARD_IN_FLIGHT * largest) / 64
    )
    assert (
        memory.pass_bytes_per_pixel(net, side=8, backward=False)
        == (held + memory.FORWARD_IN_FLIGHT * largest) / 64
    )
    assert (
        memory.pass_bytes_per_pixel(net, side=8, until="conv", backward=False)
        == (768 + 1024 * 3) / 64
    )


def test_the_estimates_rise_with_their_option():
    net = Network([("conv", Conv2d(3, 4, 3, padding=1)), ("relu", ReLU())])
    net.meta = {"input_size": 16}
    for need in (
        _memory.saliency_need(net, [(300, 451), (512, 512)]),
        _memory.deepdream_need(net, [(900, 1352)], ["relu"]),
        _memory.texture_synthesis_need(net, ["relu"], 1.5),
        _memory.texture_nn_need(11, 2),
        _memory.embedding_need(net, "relu", 8),
        _memory.max_patches_need(net, "relu", 5, (1, 2, 3)),
        _memory.fast_style_training_need(net, net, 4, 16),
    ):
        values = [need(v) for v in range(12, 400, 7)]
        assert values == sorted(values) and values[-1] > values[0]


def test_the_shapes_of_photos_come_from_their_headers(tmp_path):
    from PIL import Image
    Image.new("RGB", (451, 300)).save(tmp_path / "wide.png")
    (tmp_path / "notes.txt").write_text("not an image")
    shapes = memory.image_shapes(
        [tmp_path / "wide.png", tmp_path / "notes.txt", tmp_path / "missing.png"]
    )
    assert shapes == [(300, 451)]          # what cannot be read is left to the loader to report
    assert memory.resized((300, 451), 600) == (600, 902)


# NumPy reports its arrays to tracemalloc, so the traced peak of one pass is the bytes the pass
# held at once, whatever the C allocator kept from earlier (a high-water mark of the RSS is not:
# loading the model may have set it higher already)
MEASURE = """
import sys, tracemalloc
import numpy as np
from tinycnn.models import load_model
from vis.objectives import score_gradient
net = load_model("squeezenet")
side = int(sys.argv[1])
score_gradient(net, np.zeros((1, 3, 64, 64), np.float32), [0])           # warm up what a pass imports
x = np.random.default_rng(0).standard_normal((1, 3, side, side)).astype(np.float32)
tracemalloc.start()
before = tracemalloc.get_traced_memory()[0]
score_gradient(net, x, [0])
print(tracemalloc.get_traced_memory()[1] - before)
"""


@pytest.mark.parametrize("side", [448, 640])
def test_a_pass_estimate_bounds_its_measured_peak(side):
    """A forward and backward pass of SqueezeNet in a fresh process: the peak it adds is at most
    the
    estimate and at least half of it (about 0.8 of it, measured)."""
    net = squeezenet()
    estimate = memory.pass_bytes_per_pixel(net) * side * side
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(side)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limited_address_space,
        env=HOST,
    )
    assert done.returncode == 0, done.stderr
    measured = int(done.stdout)
    assert estimate / 2 <= measured <= estimate, (measured, estimate)


class GuardPassed(Exception):
    """Raised after a command's memory check passed, to stop it before its real work."""


# the commands that check their memory, and the option without which they have nothing to check
GUARDED = {
    "saliency": "--size",
    "deepdream": "--size",
    "texture_synthesis": "",
    "texture_nn": "",
    "embedding": "",
    "max_patches": "",
}


def test_the_gallery_figures_pass_the_check_with_4_gb_free(monkeypatch, capsys, tmp_path):
    """A check must never refuse a run that fits: every figure's own command (python -m vis.gallery
    --print) passes with 4 GB free, less what the process itself holds when it checks."""
    import importlib

    from vis.gallery import FIGURES
    squeezenet()
    check = memory.check_fits

    def check_then_stop(option, value, need, **kwargs):
        check(option, value, need, **{**kwargs, "available": 3.6e9})
        raise GuardPassed
    monkeypatch.setattr(memory, "check_fits", check_then_stop)
    checked = []
    for figure in FIGURES:
        module, *argv = figure.argv(tmp_path)
        name = module.removeprefix("vis.")
        if name not in GUARDED or (GUARDED[name] and GUARDED[name] not in argv):
            continue
        with pytest.raises(GuardPassed):
            importlib.import_module(module).main(argv)
        checked.append(figure.file)
    assert len(checked) >= 7, checked
