"""bench/loops.py's rows compute the same thing in tinycnn and in PyTorch.

Each pair runs a step or two on small inputs, and the two results must agree to 1e-4
(max-norm relative, as the oracle tests): a benchmark that timed two different
computations would mean nothing. Skipped without PyTorch.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinycnn import backend
from tinycnn.gradcheck import rel_error
from tinycnn.models import cifar10_net
from vis._optimize import pixel_range, uniform_image

from bench import loops

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed: pip install torch (CPU build) to run these"
)
if backend.name() == "cupy" and not torch.cuda.is_available():
    pytest.skip(
        "the CuPy backend without a CUDA PyTorch (the strict stand-in): the benchmark needs both on "
        "one device",
        allow_module_level=True,
    )
loops.torch_exact_float32(torch)          # cuDNN's default TF32 alone differs by ~1e-3 on a GPU
TOL = 1e-4
ROOT = Path(__file__).resolve().parents[1]


def agree(ours, theirs, what):
    err = rel_error(np.asarray(ours, np.float64), np.asarray(theirs, np.float64))
    assert err < TOL, f"{what}: relative error {err:.2e} between tinycnn and PyTorch"


@pytest.fixture(scope="module")
def squeezenet():
    return loops._net()


def images(n, size, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)


def test_torch_cifar10_agrees_layer_by_layer():
    net = cifar10_net().eval()                  # the shipped weights: activations of a trained net
    x = images(4, 32)
    forward, _ = loops.torch_cifar10(net, torch)
    theirs = forward(torch.from_numpy(x).to(loops._device()))
    ours = net.activations(backend.asarray(x), list(theirs))
    assert list(theirs) == net.names()
    for name in theirs:
        agree(backend.to_numpy(ours[name]), theirs[name].detach().cpu().numpy(), name)


def test_cifar_train_step_updates_agree():
    net = cifar10_net(weights=False).eval()    # no dropout: its masks are drawn differently
    x, y = images(8, 32), np.random.default_rng(1).integers(0, 10, 8)
    before = {k: backend.to_numpy(v).copy() for k, v in net.named_params()}
    # copies the parameters before ours move
    theirs = loops.torch_cifar_train_step(net, x, y)(2)
    ours = loops.tinycnn_cifar_train_step(net, x, y)(2)
    for k in before:
        agree(ours[k] - before[k], theirs[k] - before[k], f"{k}'s change after two steps")


def test_saliency_maps_agree(squeezenet):
    x, target = images(2, 64), np.array([1, 76])
    ours = loops.tinycnn_saliency_batch(squeezenet, x, target)(1)
    theirs = loops.torch_saliency_batch(squeezenet, x, target)(1)
    assert ours.shape == (2, 64, 64)
    agree(ours, theirs, "saliency maps")


def test_deepdream_steps_agree(squeezenet):
    lo, hi = pixel_range(squeezenet)
    # a valid image: clamping barely acts
    x = backend.to_numpy(uniform_image((1, 3, 64, 64), lo, hi, 0))
    ours = loops.tinycnn_deepdream_octave(squeezenet, x, dream_steps=2)(1)
    theirs = loops.torch_deepdream_octave(squeezenet, x, dream_steps=2)(1)
    agree(ours - x, theirs - x, "the dream's change to the image")


def test_texture_lbfgs_agrees(squeezenet):
    texture = images(1, 48)
    ours = loops.tinycnn_texture_lbfgs(squeezenet, texture)(2)
    theirs = loops.torch_texture_lbfgs(squeezenet, texture)(2)
    agree(ours, theirs, "texture after two L-BFGS iterations")


def test_command_runs_one_row_for_one_step():
    done = subprocess.run(
        [sys.executable, "-m", "bench.loops", "--only", "cifar_train", "--steps", "1", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["name"], r["steps"]) for r in rows] == [("cifar_train_step", 1)]
    assert rows[0]["tinycnn_s"] > 0 and rows[0]["torch_s"] > 0


def test_command_names_the_rows_when_none_match():
    done = subprocess.run([sys.executable, "-m", "bench.loops", "--only", "nothing"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "texture_lbfgs" in done.stderr


def test_fast_style_stylisation_agrees(squeezenet):
    tnet = loops.fast_style_inputs("fast_style_256")[1][0]
    x = images(1, 64)
    agree(
        loops.tinycnn_fast_style_256(squeezenet, tnet, x)(1),
        loops.torch_fast_style_256(squeezenet, tnet, x)(1),
        "a stylised image",
    )


def test_fast_style_train_steps_agree(squeezenet):
    from vis.fast_style import transform_net
    tnet, x, style = transform_net(width=4, blocks=1, seed=2), images(2, 32), images(1, 48, seed=1)
    before = {k: backend.to_numpy(v).copy() for k, v in tnet.named_params()}
    # copies the parameters first
    theirs = loops.torch_fast_style_train_step(squeezenet, tnet, x, style)(2)
    ours = loops.tinycnn_fast_style_train_step(squeezenet, tnet, x, style)(2)
    for k in before:
        if k != "out.conv.bias" and k.endswith(("conv.bias", "conv2.bias", "norm2.bias")):
            # no gradient (an instance norm follows): Adam's steps there are round-off / round-off
            continue
        # Adam divides by the gradients' running magnitude, which turns float32 round-off in small
        # gradients into up to ~2e-4 of the update (seen on res1.conv2.weight); a wrong gradient or
        # moment is off by far more
        err = rel_error(ours[k] - before[k], theirs[k] - before[k])
        assert err < 1e-3, (
            f"{k}'s change after two steps: relative error {err:.2e} between tinycnn and PyTorch"
        )
