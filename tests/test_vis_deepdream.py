"""DeepDream (Mordvintsev et al. 2015): its objective's gradient and the blurred step by finite
differences, the octaves raising the layer's energy, the blur moving the dream's detail from
pixel-sized specks to larger shapes, and --steps per layer."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter

from tinycnn.backend import to_numpy
from tinycnn.gradcheck import numeric_grad, rel_error

from .conftest import on_device
from .nets import photo, real_squeezenet, small_net  # noqa: F401 (real_squeezenet: the net fixture)
from .strategies import seeds


@pytest.mark.gradcheck
@given(seeds)
def test_deepdream_objective_gradient(seed):
    from vis.deepdream import dream_objective
    net = small_net()
    x = on_device(np.random.default_rng(seed).standard_normal((1, 3, 6, 6)))
    f = dream_objective(net, "relu")
    numeric = numeric_grad(lambda: float(f(x)[0]), x, np.ones(()))
    assert rel_error(to_numpy(f(x)[1]), to_numpy(numeric)) < 1e-6


@pytest.mark.gradcheck
@given(seeds, st.sampled_from([0.5, 1.0, 2.0]))
def test_the_smoothed_step_is_the_blurred_finite_difference_gradient_and_ascends(seed, sigma):
    from vis.deepdream import dream_objective, smoothed
    net = small_net()
    x = on_device(np.random.default_rng(seed).standard_normal((1, 3, 8, 8)))
    f = dream_objective(net, "relu")
    loss, step = smoothed(f, sigma)(x)
    numeric = to_numpy(numeric_grad(lambda: float(f(x)[0]), x, np.ones(())))
    assume(np.abs(numeric).max() > 1e-6)              # a layer that sees something
    blurred = gaussian_filter(numeric, (0, 0, sigma, sigma), mode="reflect")   # SciPy's, on the host
    assert float(loss) == float(f(x)[0])              # the objective itself is unchanged
    assert rel_error(to_numpy(step), blurred) < 1e-6
    # still a descent direction of the loss -1/2 ||a||^2, i.e. an ascent of the energy
    assert float(np.sum(numeric * to_numpy(step))) > 0


def test_deepdream_amplifies_the_layer():
    from vis.deepdream import deepdream
    net = small_net().astype(np.float32)
    x = on_device(np.random.default_rng(0).normal(0, 0.5, (1, 3, 12, 12)).astype(np.float32))
    out = deepdream(net, x, "relu", octaves=2, steps=5)
    energy = [float((to_numpy(net.activations(on_device(a.astype(np.float32)),
                                              "relu")["relu"]) ** 2).sum())
              for a in (to_numpy(x), out)]
    assert out.shape == x.shape and energy[1] > energy[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_blur_moves_the_detail_from_pixel_specks_to_larger_shapes(seed):
    """The share of the dreamt detail's energy that a 1 px blur removes: the plain gradient's
    dream puts much of it in pixel-sized specks, the blurred step's far less."""
    from vis.deepdream import deepdream
    net = small_net().astype(np.float32)
    x = on_device(np.random.default_rng(seed).normal(0, 0.5, (1, 3, 24, 24)).astype(np.float32))

    plain, blurred = (speckle(deepdream(net, x, "relu", octaves=2, steps=5, smooth=s)
                              - to_numpy(x)) for s in (0.0, 1.0))
    assert blurred < plain / 2


def speckle(detail):
    """The share of an image's (or change's) energy that a 1 px Gaussian blur removes."""
    detail = to_numpy(detail)
    return 1 - (gaussian_filter(detail, (0, 0, 1, 1)) ** 2).sum() / (detail ** 2).sum()


def test_on_squeezenet_fire9s_gradient_is_mostly_specks_and_the_blur_removes_them(net):
    """The module's reason for the blur, on the real network and a sample photo. Pixel-sized
    specks (white noise) lose 1 - 1/(4 pi) = 0.92 of their energy to a 1 px blur; specks
    blurred once by 1 px lose half to a second blur (the Gaussians' squared sums, 1/(8 pi)
    against 1/(4 pi))."""
    from vis.deepdream import deepdream, dream_objective
    x = photo(net, "rocket.jpg")
    assert speckle(dream_objective(net, "fire9")(x)[1]) > 0.75
    plain, blurred = (speckle(deepdream(net, x, "fire9", octaves=1, steps=10, smooth=s)
                              - to_numpy(x)) for s in (0.0, 1.0))
    assert plain > 0.75 and blurred < 0.55


def test_steps_take_one_value_or_one_per_layer(capsys):
    from vis.deepdream import main
    with pytest.raises(SystemExit) as stop:
        main(["--layer", "fire3", "fire9", "--steps", "10", "20", "30"])
    assert stop.value.code == 2
    assert "--steps: give one, or one per --layer (2)" in capsys.readouterr().err
