"""Style controls: blended Gram targets, colour histogram matching, luminance-only transfer."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.backend import asarray, to_numpy
from vis.objectives import mixed_style_targets
from vis.style_transfer import YIQ, luminance, match_colours, match_luminance, with_chroma

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
    assert f"got {[float(w) for w in weights]}" in str(refused.value)       # plain numbers, not np.float64(...)


def test_weights_near_the_float64_limit_blend_as_their_ratio():
    """1e308 + 1e308 is infinity: the blend must still be half and half, not zeros or NaN."""
    net = _net().astype(np.float64)
    rng = np.random.default_rng(3)
    styles = [asarray(rng.standard_normal((1, 3, 8, 8))) for _ in range(2)]
    got = mixed_style_targets(net, styles, [1e308, 1e308], ["conv2"])["conv2"]
    half = mixed_style_targets(net, styles, [1.0, 1.0], ["conv2"])["conv2"]
    np.testing.assert_allclose(to_numpy(got), to_numpy(half), rtol=1e-12)
    assert np.abs(to_numpy(got)).max() > 0


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
    np.testing.assert_allclose(np.cov(out, rowvar=False), np.cov(content.reshape(-1, 3), rowvar=False),
                               atol=1e-10)


@given(seeds)
@settings(max_examples=20, deadline=None)
def test_luminance_only_transfer_keeps_the_photos_chroma(seed):
    rng = np.random.default_rng(seed)
    photo = _mid_range_image(rng, (10, 12, 3), np.eye(3) + 0.3 * rng.standard_normal((3, 3)))
    grey = np.repeat(rng.uniform(0.4, 0.6, (10, 12, 1)), 3, axis=2)     # a stylised luminance
    out = with_chroma(grey, photo)
    assume(0 < out.min() and out.max() < 1)
    yiq_out, yiq_photo = out @ YIQ.T, photo @ YIQ.T
    np.testing.assert_allclose(yiq_out[..., 0], grey[..., 0], atol=1e-12)      # Y from the stylised image
    np.testing.assert_allclose(yiq_out[..., 1:], yiq_photo[..., 1:], atol=1e-12)   # I, Q from the photo
    np.testing.assert_allclose(with_chroma(luminance(photo), photo), photo, atol=1e-12)


def test_matched_luminance_has_the_photos_mean_and_spread():
    rng = np.random.default_rng(1)
    photo = _mid_range_image(rng, (10, 12, 3), np.eye(3))
    style = rng.uniform(0.2, 0.9, (14, 9, 3))
    out = match_luminance(style, photo)
    assert np.allclose(out[..., 0], out[..., 1]) and np.allclose(out[..., 0], out[..., 2])   # grey
    np.testing.assert_allclose(out.mean(), luminance(photo).mean(), atol=1e-12)
    np.testing.assert_allclose(out.std(), luminance(photo).std(), atol=1e-12)


@pytest.mark.parametrize("mix", [["nan,1"], ["inf,1"], ["1,-1"], ["0,0"], ["1"], ["a,b"]])
def test_bad_mix_weights_are_one_clear_error(mix):
    from argparse import Namespace

    from vis.style_transfer import _variants
    args = Namespace(style=["starry_night", "the_scream"], mix=mix, colour=None, content_scale=None)
    with pytest.raises(ValueError, match="--mix"):
        _variants(args)


def test_mix_weights_count_by_their_ratios_even_near_overflow():
    from argparse import Namespace

    from vis.style_transfer import _variants
    args = Namespace(style=["starry_night", "the_scream"], mix=["1e308,1e308", "1,1", "3,1"], colour=None,
                     content_scale=None)
    (huge, one, three) = [v[2] for v in _variants(args)]
    np.testing.assert_allclose(np.array(huge) / sum(huge), [0.5, 0.5])     # 1e308 + 1e308 is inf
    np.testing.assert_allclose(np.array(three) / sum(three), [0.75, 0.25])
    assert _variants(args)[0][0] == _variants(args)[1][0]                  # the same caption as 1,1


PRESET_LIST = "choose a preset (composition_vii, the_scream, starry_night)"


@pytest.mark.parametrize("module, argv, message", [
    ("style_transfer", ["--style", "starry"],
     f"unknown style 'starry' (did you mean starry_night?); {PRESET_LIST} or give an image file of a painting"),
    ("style_transfer", ["--style", "starry_night", "monet"], f"unknown style 'monet'; {PRESET_LIST}"),
    ("fast_style", ["--style", "scream"], f"unknown style 'scream' (did you mean the_scream?); {PRESET_LIST}"),
    ("fast_style", ["--train", "--style", "Starry_Night"], "(did you mean starry_night?)"),  # make train_fast_style
    ("style_transfer", ["--style", "paintings/monet.jpg"], "no image file at paintings/monet.jpg"),   # a path
])
def test_an_unknown_style_lists_the_presets_before_any_work(module, argv, message, tmp_path, monkeypatch):
    """Told in one line before the model loads (no SqueezeNet weights are needed to say it)."""
    from vis import cli

    from .test_vis_cli import run_here

    monkeypatch.setattr(cli, "load_net", lambda *a, **k: pytest.fail("the model was loaded first"))
    status, err = run_here(module, *argv, "--out", str(tmp_path / "x.png"))
    assert status == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err


def test_a_style_image_too_small_to_show_anything_is_refused_before_any_work(tmp_path, monkeypatch):
    from PIL import Image

    from vis import cli

    from .test_vis_cli import run_here
    Image.new("RGB", (4, 4), "blue").save(tmp_path / "dot.png")
    monkeypatch.setattr(cli, "load_net", lambda *a, **k: pytest.fail("the model was loaded first"))
    for module in ("style_transfer", "fast_style"):
        status, err = run_here(module, "--style", str(tmp_path / "dot.png"), "--out", str(tmp_path / "o.png"))
        assert status == 2 and err.startswith(f"error: {tmp_path / 'dot.png'} is 4x4 px, too small"), err
