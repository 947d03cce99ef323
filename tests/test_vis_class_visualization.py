"""Class visualisation (Simonyan et al. 2014, Yosinski et al. 2015) on a small network:
each regulariser raises the class score, the zero start is the mean image, the figure
draws one row per regulariser."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycnn.backend import to_numpy
from vis.class_visualization import class_visualization

from .conftest import on_device
from .nets import small_net
from .strategies import seeds


@pytest.mark.parametrize("regularizer",
                         ["l2", "cs231n", "yosinski1", "yosinski2", "yosinski3", "yosinski4"])
def test_class_visualization_raises_the_score(regularizer):
    net = small_net().astype(np.float32)
    x, _ = class_visualization(net, 1, regularizer=regularizer, steps=20, lr=1.0)
    blank = net(on_device(np.zeros((1, 3, 6, 6), np.float32)))
    assert float(net(on_device(x))[0, 1]) > float(blank[0, 1])
    # clamped to pixels 0..1 in normalised units
    assert x.min() >= -2 - 1e-6 and x.max() <= 2 + 1e-6
    with pytest.raises(ValueError, match="unknown regularizer 'l3'"):
        class_visualization(net, 1, regularizer="l3")


def test_the_zero_start_is_zero_in_the_input_space_that_is_the_mean_image():
    from tinycnn.io.images import deprocess
    from vis.class_visualization import start_image
    net = small_net().astype(np.float32)
    # zero biases would leave the zero image's ReLUs, and gradient, dead
    net.layer("conv").params["bias"] += 0.1
    zero = start_image("zeros", (1, 3, 6, 6))
    assert not to_numpy(zero).any()                         # exactly 0 in the normalised input ...
    assert (deprocess(to_numpy(zero)[0], mean=net.meta["mean"],
                      std=net.meta["std"]) == 128).all()                      # ... = mean 0.5
    # init names the start: the same run as passing that image, and randn stays the default
    for init in ("zeros", "randn"):
        x, _ = class_visualization(net, 1, regularizer="l2", init=init, steps=5, lr=1.0, seed=3)
        same, _ = class_visualization(net, 1, regularizer="l2", steps=5, lr=1.0, seed=3,
                                      x0=start_image(init, (1, 3, 6, 6), seed=3))
        np.testing.assert_array_equal(x, same)
        assert float(net(on_device(x))[0, 1]) > float(
            net(start_image(init, (1, 3, 6, 6), seed=3))[0, 1])
    default, _ = class_visualization(net, 1, regularizer="l2", steps=5, lr=1.0, seed=3)
    np.testing.assert_array_equal(default, x)
    with pytest.raises(ValueError, match="unknown init 'ones'"):
        class_visualization(net, 1, init="ones")


def test_class_visualization_draws_one_row_per_regularizer(tmp_path):
    # the figure compares regularisers on the same classes: one captioned row each
    from PIL import Image
    from vis.class_visualization import main
    common = ["--model", "cifar10", "--target", "cat", "ship", "--steps", "2"]
    main(common + ["--regularizer", "cs231n", "--out", str(tmp_path / "one.png")])
    main(common + ["--regularizer", "l2", "cs231n", "yosinski1",
                   "--out", str(tmp_path / "three.png")])
    one, three = (np.asarray(Image.open(tmp_path / f)) for f in ("one.png", "three.png"))
    assert three.shape[0] > 2.5 * one.shape[0]
    # --init: one for every row, or one per row; a zero-started row says so
    main(common + ["--regularizer", "l2", "l2", "--init", "randn", "zeros",
                   "--out", str(tmp_path / "two.png")])
    assert np.asarray(Image.open(tmp_path / "two.png")).shape[0] > 1.5 * one.shape[0]
    with pytest.raises(SystemExit):
        main(common + ["--regularizer", "l2", "l2", "cs231n", "--init", "randn", "zeros"])


def test_targets_are_classes_by_name_or_index_or_channels_of_a_layer():
    from vis.class_visualization import targets_of
    net = small_net()
    net.meta["classes"] = ["tabby, tabby cat", "ship", "dog"]
    assert targets_of(net, "cifar10", classes=["dog", "0"]) == ([2, 0], ["dog", "tabby"])
    assert targets_of(net, "cifar10") == ([0, 1, 2], ["tabby", "ship", "dog"])   # no defaults: all
    assert targets_of(net, "cifar10", layer="conv", channels=[1, 3]) == (
        [("conv", 1), ("conv", 3)], ["conv:1", "conv:3"])


def test_each_regularizer_runs_its_own_number_of_steps_unless_told():
    from vis.class_visualization import default_steps
    # CS231n's exercise: 100 iterations; Yosinski et al. 2015, Table 1: 500, 750, 1000, 1000
    assert [default_steps(r) for r in ("l2", "cs231n", "yosinski1", "yosinski2", "yosinski3",
                                       "yosinski4")] == [100, 100, 500, 750, 1000, 1000]
    assert default_steps("fourier") == 256
    net = small_net().astype(np.float32)
    told, _ = class_visualization(net, 1, regularizer="l2", steps=100, lr=1.0)
    default, _ = class_visualization(net, 1, regularizer="l2", lr=1.0)
    fewer, _ = class_visualization(net, 1, regularizer="l2", steps=99, lr=1.0)
    np.testing.assert_array_equal(default, told)
    assert not np.array_equal(default, fewer)


# -- the Fourier parameterisation (Olah et al. 2017) ------------------------------------------
def fourier_setup(seed, size):
    from vis.class_visualization import fourier_basis
    net = small_net()                                    # float64
    mean, std = (on_device(np.asarray(net.meta[k]).reshape(1, 3, 1, 1)) for k in ("mean", "std"))
    p = on_device(np.random.default_rng(seed).normal(0, 0.5, (2, 3, size, size // 2 + 1)))
    return net, fourier_basis(size, np.float64), mean, std, p


@pytest.mark.gradcheck
@given(seeds, st.sampled_from([4, 5, 6]), st.integers(0, 2))
def test_the_fourier_objective_gradient_matches_finite_differences(seed, size, jitter):
    from tinycnn.gradcheck import numeric_grad, rel_error
    from vis.class_visualization import fourier_objective
    from vis.objectives import score_objective
    net, basis, mean, std, p = fourier_setup(seed, size)

    def f(p):          # a fresh objective each call: the same roll every evaluation
        return fourier_objective(score_objective(net, 1, l2=0.1), basis, mean, std,
                                 jitter=jitter, seed=seed)(p)
    _, analytic = f(p)
    numeric = numeric_grad(lambda: float(f(p)[0]), p, np.ones(()))
    assert rel_error(analytic, numeric) < 1e-6


def test_the_fourier_image_is_the_weighted_sum_of_its_waves_in_decorrelated_colours():
    # an independent sum, wave by wave, against the basis products
    from vis.class_visualization import COLORS, fourier_image
    size = 5
    net, basis, mean, std, p = fourier_setup(0, size)
    x, _ = fourier_image(p, basis, mean, std)
    a, b = to_numpy(p)
    t = np.zeros((3, size, size))
    for ky in range(size):
        for kx in range(size // 2 + 1):
            fy, fx = np.fft.fftfreq(size)[ky], np.fft.rfftfreq(size)[kx]
            w = 1 / (4 * size * max(np.hypot(fy, fx), 1 / size))
            angle = 2 * np.pi * (ky * np.arange(size)[:, None] + kx * np.arange(size)) / size
            t += w * (a[:, ky, kx, None, None] * np.cos(angle)
                      + b[:, ky, kx, None, None] * np.sin(angle))
    rgb = np.einsum("cd,dyx->cyx", COLORS, t)
    expected = (1 / (1 + np.exp(-rgb)) - 0.5) / 0.25
    np.testing.assert_allclose(to_numpy(x)[0], expected, rtol=1e-12, atol=1e-12)


def test_the_fourier_parameterisation_raises_the_score():
    net = small_net().astype(np.float32)
    start = class_visualization(net, 1, regularizer="fourier", steps=1)[0]
    x, _ = class_visualization(net, 1, regularizer="fourier", steps=60)
    assert float(net(on_device(x))[0, 1]) > float(net(on_device(start))[0, 1]) + 0.1
    # pixels come out of a sigmoid: within 0..1, normalised
    assert x.min() > -2 and x.max() < 2
