"""Gatys et al.'s texture synthesis: its per-layer weights undo a rescaled layer."""
import numpy as np
import pytest

from tinycnn.backend import to_numpy

from .conftest import on_device
from .nets import small_net


def test_texture_layer_weights_undo_a_rescaled_layer():
    """Gatys et al. rescale the network so each layer's mean activation is 1; the weights do the
    same, so scaling a layer's activations by k (conv weights and bias by k, ReLU is
    positively homogeneous) leaves the weighted texture objective unchanged."""
    from vis.objectives import style_targets_of, synthesis_objective
    from vis.texture_synthesis import layer_weights
    rng = np.random.default_rng(1)
    texture, x = (on_device(rng.standard_normal((1, 3, 8, 8))) for _ in range(2))
    losses = []
    for k in (1.0, 7.0):
        net = small_net()
        net.layer("conv").params = {name: v * k for name, v in net.layer("conv").params.items()}
        objective = synthesis_objective(
            net, style_targets=style_targets_of(net, texture, ("relu",)),
            style_weights=layer_weights(net, texture, ("relu",)))
        losses.append(float(objective(x)[0]))
    assert losses[0] > 0 and abs(losses[1] - losses[0]) < 1e-9 * losses[0]
    weights = layer_weights(small_net(), texture, ("conv", "relu"))
    mean = float(to_numpy(small_net().activations(texture, "relu")["relu"]).mean())
    assert weights["relu"] == pytest.approx(0.25 / mean ** 4)


def test_the_series_adds_layers_and_draws_the_last_image_larger(monkeypatch):
    """One image per layer set, each the synthesis from those layers' Grams; the last (every
    layer) at large times the size: Grams do not fix an image's size."""
    import vis.texture_synthesis as ts
    monkeypatch.setattr(ts, "LAYER_SETS", (("conv",), ("conv", "relu")))
    net = small_net().astype(np.float32)        # the dtype of the noise it starts from
    texture = on_device(np.random.default_rng(2).standard_normal((1, 3, 6, 6)).astype(np.float32))
    series = ts.layer_series(net, texture, size=6, large=1.5, steps=2, seed=4)
    assert [layers for layers, _, _ in series] == [("conv",), ("conv", "relu")]
    assert [x.shape for _, x, _ in series] == [(1, 3, 6, 6), (1, 3, 9, 9)]
    for (layers, x, seconds), side in zip(series, (6, 9)):
        alone = ts.synthesize_texture(net, texture, layers, size=side, steps=2, seed=4)
        np.testing.assert_array_equal(x, alone)
        assert seconds >= 0


@pytest.mark.parametrize("text", ["0", "-1", "8.5", "nan", "inf", "x"])
def test_large_beyond_its_bounds_is_refused_where_it_enters(text, tmp_path, monkeypatch):
    from vis import cli

    from .test_vis_cli import run_here
    monkeypatch.setattr(cli, "load_net", lambda *a, **k: pytest.fail("the model was loaded first"))
    status, err = run_here("texture_synthesis", "--large", text, "--out", str(tmp_path / "x.png"))
    assert status == 2 and err.count("\n") == 1, err
    assert f"argument --large: '{text}' is not a multiple of --size between 0 and 8" in err, err


@pytest.mark.parametrize("text", ["0.5", "4.5", "nan", "x"])
def test_zoom_beyond_its_bounds_is_refused_where_it_enters(text, tmp_path):
    from .test_vis_cli import run_here
    status, err = run_here("texture_synthesis", "--zoom", text, "--out", str(tmp_path / "x.png"))
    assert status == 2 and err.count("\n") == 1, err
    assert f"argument --zoom: '{text}' is not a multiple of --size between 1 and 4" in err, err


def test_the_start_is_a_little_noise_around_the_textures_mean_colour():
    from vis._optimize import uniform_image
    from vis.texture_synthesis import start_image
    rng = np.random.default_rng(5)
    texture = on_device(rng.normal([[[0.5]], [[-1.0]], [[2.0]]], 0.3, (1, 3, 9, 9))
                        .astype(np.float32))                   # the dtype of real images
    lo, hi = (on_device(np.full((1, 3, 1, 1), v, np.float32)) for v in (-2.0, 2.0))
    x = to_numpy(start_image(texture, (1, 3, 40, 40), lo, hi, seed=1, noise=0.2))
    mean = to_numpy(texture).mean(axis=(2, 3), keepdims=True)
    u = to_numpy(uniform_image((1, 3, 40, 40), lo, hi, 1))            # in [-2, 2)
    np.testing.assert_allclose(x, np.clip(mean + 0.2 * u, -2, 2), rtol=1e-6, atol=1e-6)
    assert abs(x[0, :2] - mean[0, :2]).max() <= 0.4 + 1e-6 and x.max() <= 2  # third: clipped


def test_the_sample_is_the_centre_of_the_zoomed_texture(tmp_path):
    from PIL import Image

    from vis import cli
    from vis.texture_synthesis import sample
    net = small_net()
    net.meta = {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "t.png")
    whole = to_numpy(cli.load_one(net, tmp_path / "t.png", 20, crop=True))
    np.testing.assert_array_equal(to_numpy(sample(net, tmp_path / "t.png", 20)), whole)
    np.testing.assert_array_equal(to_numpy(sample(net, tmp_path / "t.png", 10, zoom=2)),
                                  whole[:, :, 5:15, 5:15])
