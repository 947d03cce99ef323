"""Style controls: blended Gram targets and preset weights, colour histogram matching,
luminance-only transfer, and the command line that asks for them."""
import argparse

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.backend import asarray, to_numpy
from tinycnn.io.images import deprocess, preprocess
from vis.objectives import mixed_style_targets
from vis.style_transfer import (PRESETS, YIQ, blend_presets, keep_colours, luminance,
                                match_colours, match_luminance, mix_weights, style_transfer,
                                stylize_photo, variants, with_chroma)

from .strategies import seeds


def _net():
    return tc.Network([("conv", tc.Conv2d(3, 4, 3, padding=1, seed=1)), ("relu", tc.ReLU()),
                       ("conv2", tc.Conv2d(4, 5, 3, stride=2, seed=2))])


@given(seeds, st.lists(st.floats(0.0, 4.0), min_size=3, max_size=3).filter(lambda w: sum(w) > 0.1))
@settings(max_examples=20, deadline=None)
def test_blended_targets_are_the_weighted_sum_of_each_styles_gram(seed, weights):
    net = _net().astype(np.float64)
    rng = np.random.default_rng(seed)
    styles = [rng.standard_normal((1, 3, 8 + 2 * k, 9)) for k in range(3)]     # any sizes
    got = mixed_style_targets(net, [asarray(s) for s in styles], weights, ["relu", "conv2"])
    for layer in ("relu", "conv2"):
        expected = 0
        for w, s in zip(weights, styles):      # the definition, written out with einsum
            f = to_numpy(net.activations(asarray(s), layer)[layer])[0]
            C, H, W = f.shape
            expected = expected + w / sum(weights) * np.einsum("chw,dhw->cd", f, f) / (C * H * W)
        np.testing.assert_allclose(to_numpy(got[layer])[0], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("weights", [[1.0], [1.0, -1.0], [0.0, 0.0], [np.nan, 1.0], [np.inf, 1.0]])
def test_blend_weights_are_checked(weights):
    style = asarray(np.zeros((1, 3, 6, 6), np.float32))
    with pytest.raises(ValueError, match="non-negative weight per style") as refused:
        mixed_style_targets(_net(), [style, style], weights, ["relu"])
    assert f"got {[float(w) for w in weights]}" in str(refused.value)   # not np.float64(...)


def test_weights_whose_sum_overflows_are_refused():
    """1e308 + 1e308 is infinity: refused, not blended into zeros or NaN (the command line's
    --mix refuses them before any work, test_a_mix_that_is_not_a_blend_is_refused_...)."""
    style = asarray(np.zeros((1, 3, 6, 6), np.float32))
    with pytest.raises(ValueError, match="positive, finite sum; got"), np.errstate(over="ignore"):
        mixed_style_targets(_net(), [style, style], [1e308, 1e308], ["relu"])


def _mid_range_image(rng, shape, mix):
    """Colours in [0.3, 0.7] mixed across channels: correlated, never clipped after matching."""
    base = rng.uniform(-1, 1, shape) @ mix
    return 0.5 + 0.2 * base / np.abs(base).max()


@given(seeds)
@settings(max_examples=20, deadline=None)
def test_histogram_matching_gives_the_contents_colour_mean_and_covariance(seed):
    rng = np.random.default_rng(seed)
    content = _mid_range_image(rng, (20, 30, 3), rng.standard_normal((3, 3)))
    # a near-singular mix gives colours on a plane (an eigenvalue ~1e-9, seed 132): match_colours
    # floors eigenvalues at 1e-8 on purpose, so there its covariance cannot come out exact
    assume(np.linalg.eigvalsh(np.cov(content.reshape(-1, 3), rowvar=False)).min() > 1e-6)
    style = rng.uniform(0, 1, (16, 12, 3)) ** 2
    out = match_colours(style, content).reshape(-1, 3)
    assume(0 < out.min() and out.max() < 1)    # clipped: the moments no longer hold exactly
    np.testing.assert_allclose(out.mean(0), content.reshape(-1, 3).mean(0), atol=1e-10)
    np.testing.assert_allclose(np.cov(out, rowvar=False),
                               np.cov(content.reshape(-1, 3), rowvar=False), atol=1e-10)


@given(seeds)
@settings(max_examples=20, deadline=None)
def test_luminance_only_transfer_keeps_the_photos_chroma(seed):
    rng = np.random.default_rng(seed)
    photo = _mid_range_image(rng, (10, 12, 3), np.eye(3) + 0.3 * rng.standard_normal((3, 3)))
    grey = np.repeat(rng.uniform(0.4, 0.6, (10, 12, 1)), 3, axis=2)     # a stylised luminance
    out = with_chroma(grey, photo)
    assume(0 < out.min() and out.max() < 1)
    yiq_out, yiq_photo = out @ YIQ.T, photo @ YIQ.T
    np.testing.assert_allclose(yiq_out[..., 0], grey[..., 0], atol=1e-12)    # Y: stylised
    np.testing.assert_allclose(yiq_out[..., 1:], yiq_photo[..., 1:], atol=1e-12)   # I, Q: photo
    np.testing.assert_allclose(with_chroma(luminance(photo), photo), photo, atol=1e-12)


def test_matched_luminance_has_the_photos_mean_and_spread():
    rng = np.random.default_rng(1)
    photo = _mid_range_image(rng, (10, 12, 3), np.eye(3))
    style = rng.uniform(0.2, 0.9, (14, 9, 3))
    out = match_luminance(style, photo)
    assert np.allclose(out[..., 0], out[..., 1]) and np.allclose(out[..., 0], out[..., 2])   # grey
    np.testing.assert_allclose(out.mean(), luminance(photo).mean(), atol=1e-12)
    np.testing.assert_allclose(out.std(), luminance(photo).std(), atol=1e-12)


@pytest.mark.parametrize("text", ["nan,1", "inf,1", "1,-1", "0,0", "a,b", "", "1e308,1e308"])
def test_mix_weights_that_are_not_a_blend_are_refused_by_their_type(text):
    with pytest.raises(argparse.ArgumentTypeError, match="non-negative weights with a positive, "):
        mix_weights(text)


def test_a_mix_that_is_not_a_blend_is_refused_before_any_work(tmp_path, monkeypatch):
    from vis import cli

    from .test_vis_cli import run_here
    monkeypatch.setattr(cli, "load_net", lambda *a, **k: pytest.fail("the model was loaded first"))
    for mix, message in (("1e308,1e308", "argument --mix: '1e308,1e308' is not comma-separated"),
                         ("1,1,1", "--mix: give 2 weights, one per style, in each blend")):
        status, err = run_here("style_transfer", "--style", "starry_night", "the_scream",
                               "--mix", mix, "--out", str(tmp_path / "x.png"))
        assert status == 2 and err.startswith("error: ") and message in err, err
        assert err.count("\n") == 1, err


def test_each_blend_is_captioned_with_its_ratios():
    columns = variants(["starry_night", "styles/the_scream.jpg"], mix=[[3.0, 1.0], [0.0, 2.0]])
    assert [v.label for v in columns] == ["0.75 starry_night + 0.25 the_scream.jpg",
                                          "1 the_scream.jpg"]
    assert [v.mix for v in columns] == [[3.0, 1.0], [0.0, 2.0]]
    with pytest.raises(ValueError, match="two or more"):
        variants(["starry_night"], mix=[[1.0]])
    with pytest.raises(ValueError, match="choose one of --mix, --colour and --content-scale"):
        variants(["starry_night", "the_scream"], mix=[[1.0, 1.0]], colour=["luminance"])


def test_blended_presets_are_the_weighted_sum_of_each_styles_weights():
    a, b = PRESETS["starry_night"], PRESETS["the_scream"]
    params, w = blend_presets([a, b], [3.0, 1.0])
    assert w == [0.75, 0.25]
    assert params["content_weight"] == pytest.approx(0.75 * 6e-2 + 0.25 * 3e-2, rel=1e-15)
    assert params["tv_weight"] == pytest.approx(0.75 * a["tv_weight"] + 0.25 * b["tv_weight"],
                                                rel=1e-15)
    np.testing.assert_allclose(params["style_weights"],
                               [0.75 * 300000 + 0.25 * 200000, 0.75 * 1000 + 0.25 * 800,
                                0.75 * 15 + 0.25 * 12, 0.75 * 3 + 0.25 * 1], rtol=1e-15)
    alone, w = blend_presets([a])                     # one style: its own preset, exactly
    assert w == [1.0] and alone == dict(content_weight=6e-2, tv_weight=a["tv_weight"],
                                        style_weights=[300000.0, 1000.0, 15.0, 3.0])


def _coloured_net():
    net = _net()
    net.meta.update(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))     # ImageNet's
    return net


def _normalised(net, rgb):
    return asarray(preprocess(rgb, mean=net.meta["mean"], std=net.meta["std"]))


def _rgb(net, x):
    return deprocess(to_numpy(x)[0], mean=net.meta["mean"], std=net.meta["std"])


def _photo(rng, shape):
    """uint8 colours in mid range with chroma: nothing clipped once recoloured."""
    mix = np.eye(3) + 0.3 * rng.standard_normal((3, 3))
    return np.rint(255 * _mid_range_image(rng, shape, mix)).astype(np.uint8)


@given(seeds)
@settings(max_examples=5, deadline=None)
def test_luminance_only_style_transfer_keeps_the_photos_chroma(seed):
    """Wherever no channel is clipped (0 or 255), the result's I and Q of YIQ are the photo's,
    up to the rounding to uint8 (half a level per channel, times YIQ's row sums)."""
    net, rng = _coloured_net(), np.random.default_rng(seed)
    photo, painting = _photo(rng, (12, 14, 3)), rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)
    x, _ = style_transfer(net, _normalised(net, photo), _normalised(net, painting),
                          content_weight=1.0, style_weights=(1.0,), tv_weight=0.0,
                          content_layer="relu", style_layers=("conv2",), colour="luminance",
                          steps=3, seed=seed)
    out = _rgb(net, x)
    inside = ((out > 0) & (out < 255)).all(axis=2)
    assert inside.mean() > 0.5
    rounding = 0.5 / 255 * np.abs(YIQ[1:]).sum(axis=1) + 1e-9
    iq_out, iq_photo = (out / 255.0 @ YIQ[1:].T)[inside], (photo / 255.0 @ YIQ[1:].T)[inside]
    assert (np.abs(iq_out - iq_photo) <= rounding).all()
    assert np.abs(out.astype(int) - photo).max() > 1      # but styled: its luminance moved


@given(seeds)
@settings(max_examples=10, deadline=None)
def test_colour_modes_give_the_paintings_the_photos_colours(seed):
    """keep_colours: "histogram" gives each painting the photo's colour mean and covariance,
    "luminance" makes it grey with the photo's luminance mean and spread and the content grey;
    each up to the rounding to uint8 (1/255 in a mean, a variance of 1/12 level^2)."""
    net, rng = _coloured_net(), np.random.default_rng(seed)
    photo = _photo(rng, (16, 20, 3))
    painting = np.rint(255 * (0.25 + 0.5 * rng.uniform(0, 1, (14, 12, 3)) ** 2)).astype(np.uint8)
    c = photo.reshape(-1, 3) / 255.0
    x, styles = _normalised(net, photo), [_normalised(net, painting)]
    content, (style,), _ = keep_colours(net, x, styles, "histogram")
    assume(0 < _rgb(net, style).min() and _rgb(net, style).max() < 255)   # clipped: moments change
    s = _rgb(net, style).reshape(-1, 3) / 255.0
    np.testing.assert_array_equal(_rgb(net, content), photo)
    np.testing.assert_allclose(s.mean(0), c.mean(0), atol=1 / 255)
    np.testing.assert_allclose(np.cov(s, rowvar=False), np.cov(c, rowvar=False), atol=2e-4)
    content, (style,), _ = keep_colours(net, x, styles, "luminance")
    for grey in (_rgb(net, content), _rgb(net, style)):
        assert (grey == grey[..., :1]).all()
    y = c @ YIQ[0]
    np.testing.assert_allclose(_rgb(net, content)[..., 0] / 255.0, y.reshape(16, 20),
                               atol=0.5 / 255 + 1e-9)
    s = _rgb(net, style)[..., 0] / 255.0
    assert abs(s.mean() - y.mean()) <= 1 / 255 and abs(s.std() - y.std()) <= 1 / 255


def test_no_colour_mode_is_no_change_and_an_unknown_one_is_refused():
    net = _coloured_net()
    rng = np.random.default_rng(0)
    content, style = (asarray(rng.standard_normal((1, 3, 8, 8)).astype(np.float32)) for _ in "ab")
    got, styles, restore = keep_colours(net, content, [style], "none")
    assert got is content and styles[0] is style and restore(content) is content
    with pytest.raises(ValueError, match="unknown colour mode 'sepia'"):
        keep_colours(net, content, [style], "sepia")


def test_a_photo_is_painted_at_its_presets_size_with_the_content_weight_scaled(monkeypatch):
    """stylize_photo: the photo at the first preset's image size, each painting at its own
    style size, the blended weights, the content weight times content_scale."""
    import vis.style_transfer as module
    calls = []

    def recorded(net, content, styles, **kw):
        calls.append(([to_numpy(s).shape for s in [content] + styles], kw))
        return to_numpy(content), []
    monkeypatch.setattr(module, "style_transfer", recorded)
    net, rng = _coloured_net(), np.random.default_rng(0)
    presets = [dict(image_size=12, style_size=10, content_weight=2.0, style_weights=(4.0,),
                    tv_weight=1.0),
               dict(image_size=99, style_size=14, content_weight=6.0, style_weights=(8.0,),
                    tv_weight=3.0)]
    photo = rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)
    paintings = [rng.integers(0, 256, (20, 20, 3), dtype=np.uint8) for _ in presets]
    out = stylize_photo(net, photo, paintings, presets, mix=[1.0, 3.0], content_scale=10.0,
                        steps=7)
    assert out.dtype == np.uint8 and out.shape == (12, 18, 3)
    shapes, kw = calls[0]
    assert shapes == [(1, 3, 12, 18), (1, 3, 10, 10), (1, 3, 14, 14)]
    assert kw["mix"] == [0.25, 0.75] and kw["colour"] == "none" and kw["steps"] == 7
    assert kw["content_weight"] == pytest.approx(10 * (0.25 * 2.0 + 0.75 * 6.0))
    assert kw["style_weights"] == [0.25 * 4.0 + 0.75 * 8.0] and kw["tv_weight"] == 2.5


PRESET_LIST = "choose a preset (composition_vii, the_scream, starry_night)"


@pytest.mark.parametrize("module, argv, message", [
    ("style_transfer", ["--style", "starry"],
     f"unknown style 'starry' (did you mean starry_night?); {PRESET_LIST} or give an image file "
     "of a painting"),
    ("style_transfer", ["--style", "starry_night", "monet"],
     f"unknown style 'monet'; {PRESET_LIST}"),
    ("fast_style", ["--style", "scream"],
     f"unknown style 'scream' (did you mean the_scream?); {PRESET_LIST}"),
    ("fast_style_train", ["--style", "Starry_Night"],                # make train_fast_style
     "(did you mean starry_night?)"),
    ("style_transfer", ["--style", "paintings/monet.jpg"],           # a path
     "no image file at paintings/monet.jpg"),
])
def test_an_unknown_style_lists_the_presets_before_any_work(module, argv, message, tmp_path,
                                                           monkeypatch):
    """Told in one line before the model loads (no SqueezeNet weights are needed to say it)."""
    from vis import cli

    from .test_vis_cli import run_here

    monkeypatch.setattr(cli, "load_net", lambda *a, **k: pytest.fail("the model was loaded first"))
    status, err = run_here(module, *argv, "--out", str(tmp_path / "x.png"))
    assert status == 2 and err.startswith("error: ") and message in err, err
    assert err.count("\n") == 1, err


def test_a_style_image_too_small_to_show_anything_is_refused_before_any_work(tmp_path,
                                                                             monkeypatch):
    from PIL import Image

    from vis import cli

    from .test_vis_cli import run_here
    Image.new("RGB", (4, 4), "blue").save(tmp_path / "dot.png")
    monkeypatch.setattr(cli, "load_net", lambda *a, **k: pytest.fail("the model was loaded first"))
    for module in ("style_transfer", "fast_style"):
        status, err = run_here(module, "--style", str(tmp_path / "dot.png"),
                               "--out", str(tmp_path / "o.png"))
        assert status == 2, err
        assert err.startswith(f"error: {tmp_path / 'dot.png'} is 4x4 px, too small"), err
