"""Fast style transfer: the transform network's gradients, the perceptual loss's gradient,
the shipped network's loading, the figure's command. Training is tested in
test_vis_fast_style_train.py, Adam in test_optim.py, checkpoints in test_checkpoint.py."""
import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from PIL import Image

import tinycnn as tc
from tinycnn.backend import to_numpy
from tinycnn.models import squeezenet1_1
from vis import cli, fast_style
from vis.objectives import style_targets_of
from vis.style_transfer import PRESETS, STYLE_LAYERS

from .conftest import on_device
from .strategies import seeds
from .test_net import KINK_MARGIN, kink_margin


def tiny_transform_net(seed):
    """width 2, one residual block, float64, norms away from the identity."""
    net = fast_style.transform_net(width=2, blocks=1, seed=seed).astype(np.float64)
    rng = np.random.default_rng(seed)
    for name, layer in net.named_layers():
        if isinstance(layer, tc.InstanceNorm2d):
            C = layer.params["weight"].shape[0]
            layer.params = {"weight": on_device(rng.normal(1, 0.5, C)),
                            "bias": on_device(rng.normal(0, 0.5, C))}
    return net


def test_the_transform_network_keeps_the_image_size_and_names_its_parts():
    net = fast_style.transform_net(width=4, blocks=2)
    out, _ = net.forward(on_device(np.zeros((2, 3, 12, 16)), np.float32))
    assert out.shape == (2, 3, 12, 16)
    names = net.names()
    assert {"down1.conv", "down3.norm", "res2.conv2", "res2.norm2", "up1.up", "up2.conv",
            "out.conv"} <= set(names)
    assert "out.relu" not in names and "out.norm" not in names   # the last layer is linear


def _no_gradient(name):
    """Parameters whose gradient is exactly zero: a constant per channel that an instance
    norm downstream subtracts again (the biases of convolutions followed by a norm, and a
    residual body's last norm's bias, carried by the shortcut to up1's norm)."""
    return name.endswith((".conv.bias", ".conv2.bias", "norm2.bias")) and name != "out.conv.bias"


@pytest.mark.gradcheck
@given(seeds)
@example(8209).via("a draw whose slope curves fast (the h^2 error above)")
@example(2479867350).via("another")
@example(1855).via("round-off near a small slope")
def test_transform_network_gradients(seed):
    # through pads, strides, norms, the residual block and both upsamplings: the input and
    # every parameter along a random direction each (as Chainer's check_backward: a few
    # forward passes per array instead of two per element), by centred differences
    net = tiny_transform_net(seed % 1000)
    rng = np.random.default_rng(seed)
    x = on_device(rng.standard_normal((2, 3, 8, 8)))
    assume(kink_margin(net, x) > KINK_MARGIN)
    out, cache = net.forward(x)
    dout = on_device(rng.standard_normal(out.shape))
    dx, grads = net.backward(dout, cache)
    for name, p in [("x", x)] + list(net.named_params()):
        v = on_device(rng.standard_normal(p.shape))

        def slope(h):
            p[...] += h * v
            up = float((net(x) * dout).sum())
            p[...] -= 2 * h * v
            down = float((net(x) * dout).sum())
            p[...] += h * v
            return (up - down) / (2 * h)
        numeric, analytic = slope(1e-6), float(((dx if name == "x" else grads[name]) * v).sum())
        if not _no_gradient(name):
            # moving a whole array can carry a ReLU input across 0 (kink_margin only looks at
            # the unmoved net): half the step then gives another slope, and the draw is skipped.
            # The analytic gradient takes no part in this, so a wrong one is not skipped.
            half = slope(5e-7)
            assume(abs(numeric - half) <= 1e-6 * (abs(numeric) + abs(half)) + 3e-7)
            # where the slope curves fast, the differences' O(h^2) error alone can exceed the
            # tolerance (seed 8209, down1.conv.weight: 2.5e-6 relative at h = 1e-6, 6.3e-7 at
            # 5e-7, a quarter: h^2). The two steps measure it: numeric - half = 3/4 c h^2,
            # numeric's own error c h^2, which the comparison below allows on top.
            truncation = 4 / 3 * abs(numeric - half)
        if _no_gradient(name):
            assert float(abs(grads[name]).max()) < 1e-10 and abs(numeric) < 1e-5, name
        else:
            # plus the differences' own round-off, eps * |<net(x), dout>| / h ~ 1e-8, which
            # matters where a random direction gives a slope near 0
            tolerance = 1e-6 * (abs(numeric) + abs(analytic)) + 1e-7 + truncation
            assert abs(numeric - analytic) <= tolerance, (name, numeric, analytic)


@pytest.fixture(scope="module")
def loss_net():
    return squeezenet1_1(weights=False, seed=3).astype(np.float64)


@pytest.mark.gradcheck
@given(seeds)
@settings(max_examples=5)           # each example: 6 passes of a (random) SqueezeNet
def test_perceptual_loss_gradient(loss_net, seed):
    # the batch-mean loss of outputs y for photos x, along a random direction of y
    rng = np.random.default_rng(seed)
    style, x, y = (on_device(rng.standard_normal(s))
                   for s in [(1, 3, 40, 36), (2, 3, 32, 32), (2, 3, 32, 32)])
    preset = dict(PRESETS["starry_night"], style_weights=(3e2, 1e2, 15, 3))
    loss = fast_style.perceptual_loss(loss_net, style_targets_of(loss_net, style, STYLE_LAYERS),
                                      preset)
    value, dy = loss(y, x)
    v = on_device(rng.standard_normal(y.shape))

    def slope(h):
        return (loss(y + h * v, x)[0] - loss(y - h * v, x)[0]) / (2 * h)
    numeric, analytic = slope(1e-5), float((dy * v).sum())
    # a ReLU or max-pool kink within the segment: the two step sizes disagree (one draw in ~25)
    assume(abs(numeric - slope(1e-6)) <= 1e-7 * abs(numeric))
    assert abs(numeric - analytic) <= 1e-6 * (abs(numeric) + abs(analytic)), (numeric, analytic)
    # one image alone gives its own loss: the batch loss is the mean, not the sum
    one = [loss(y[i:i + 1], x[i:i + 1])[0] for i in range(2)]
    assert value == pytest.approx(np.mean(one), rel=1e-12)


def test_loss_terms_are_the_loss_with_one_weight_left_on(loss_net):
    # each term is perceptual_loss with every other weight set to 0, and the terms sum to it
    rng = np.random.default_rng(5)
    style, x, y = (on_device(rng.standard_normal(s))
                   for s in [(1, 3, 40, 36), (2, 3, 32, 32), (2, 3, 32, 32)])
    targets = style_targets_of(loss_net, style, STYLE_LAYERS)
    preset = dict(PRESETS["starry_night"], style_weights=(3e2, 1e2, 15, 3))
    terms = fast_style.loss_terms(loss_net, targets, preset, y, x)
    assert list(terms) == ["content", *STYLE_LAYERS, "tv"]
    off = dict(preset, content_weight=0.0, tv_weight=0.0, style_weights=(0.0,) * 4)
    alone = {"content": dict(off, content_weight=preset["content_weight"]),
             "tv": dict(off, tv_weight=preset["tv_weight"])}
    for i, layer in enumerate(STYLE_LAYERS):
        weights = [0.0] * 4
        weights[i] = preset["style_weights"][i]
        alone[layer] = dict(off, style_weights=tuple(weights))
    for name, one in alone.items():
        value = fast_style.perceptual_loss(loss_net, targets, one)(y, x)[0]
        assert terms[name] == pytest.approx(value, rel=1e-12), name
        assert value > 0, name
    total = fast_style.perceptual_loss(loss_net, targets, preset)(y, x)[0]
    assert sum(terms.values()) == pytest.approx(total, rel=1e-12)


def test_training_weights_keep_the_presets_balance():
    preset = PRESETS["starry_night"]
    w = fast_style.training_weights(preset, preset["image_size"] // 2)
    assert w["content_weight"] == pytest.approx(4 * preset["content_weight"])
    assert w["tv_weight"] == pytest.approx(4 * preset["tv_weight"])
    assert w["style_weights"] == preset["style_weights"]


def test_saved_networks_load_with_their_width_and_blocks(tmp_path):
    net = fast_style.transform_net(width=3, blocks=2, seed=7)
    net.save(tmp_path / "t.npz")
    back = fast_style.load_transform_net(tmp_path / "t.npz")
    x = on_device(np.random.default_rng(0).standard_normal((1, 3, 8, 12)), np.float32)
    np.testing.assert_array_equal(to_numpy(back(x)), to_numpy(net(x)))
    with pytest.raises(FileNotFoundError, match="make train_fast_style"):
        fast_style.load_transform_net(tmp_path / "missing.npz")
    # forged: no channel in the first layer (was a ZeroDivisionError), no residual block (was a
    # 0-block net)
    state = net.state_dict()
    np.savez(tmp_path / "w0.npz",
             **{k: v[:0] if k == "down1.conv.weight" else v for k, v in state.items()})
    np.savez(tmp_path / "b0.npz", **{k: v for k, v in state.items() if not k.startswith("res")})
    with pytest.raises(tc.StateDictError, match=r"'down1.conv.weight' has shape \(0, 3, 9, 9\)"):
        fast_style.load_transform_net(tmp_path / "w0.npz")
    with pytest.raises(tc.StateDictError, match="missing .* res1.conv.weight"):
        fast_style.load_transform_net(tmp_path / "b0.npz")


def run_command(module, argv):
    """(exit status, stdout, stderr) of ``python -m vis.<module> argv``, in this process."""
    import contextlib
    import io
    import importlib
    main = importlib.import_module(f"vis.{module}").main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.run(lambda: main(argv))
        except SystemExit as e:
            return e.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_the_figure_command_draws_with_the_shipped_network(tmp_path):
    """python -m vis.fast_style without the comparison: one photo, the shipped weights."""
    status, out, err = run_command("fast_style", ["--content", "chelsea.png", "--no-compare",
                                                  "--out", str(tmp_path / "f.png")])
    assert status == 0, err
    assert "chelsea: network " in out and Image.open(tmp_path / "f.png").mode == "RGB"


@given(seeds)
def test_plainest_patch_is_the_window_of_least_variance_found_by_loops(seed):
    rng = np.random.default_rng(seed)
    H, W = rng.integers(3, 12, size=2)
    h, w = rng.integers(1, H + 1), rng.integers(1, W + 1)
    image = rng.integers(0, 256, size=(H, W, 3)).astype(np.uint8)
    grey = image.astype(np.float64).mean(axis=2)
    variance = np.array([[grey[i:i + h, j:j + w].var() for j in range(W - w + 1)]
                         for i in range(H - h + 1)])
    top, left = fast_style.plainest_patch(image, (h, w))
    # the loops' least variance, up to the summed-area tables' round-off (ties may differ)
    assert variance[top, left] <= variance.min() + 1e-7 * max(1.0, grey.var())


def test_the_close_ups_cut_the_plain_sky_and_enlarge_it():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(40, 64, 3)).astype(np.uint8)
    photo[28:38, 4:20] = 90                          # a plain 10 x 16 patch, the only one
    shown = [rng.integers(0, 256, size=(40, 64, 3)).astype(np.uint8) for _ in range(2)]
    assert fast_style.plainest_patch(photo, (10, 16)) == (28, 4)
    tiles = fast_style.close_ups(photo, shown, ["network", "L-BFGS"])
    k = fast_style.ZOOM
    for tile, picture in zip(tiles, shown):
        body = tile[-10 * k:, :16 * k]               # below the caption
        assert (body == np.repeat(np.repeat(picture[28:38, 4:20], k, 0), k, 1)).all()


@pytest.mark.parametrize("width, blocks", [(1, 1), (2, 3), (5, 0), (16, 3)])
def test_transform_shapes_are_the_networks(width, blocks):
    net = fast_style.transform_net(width, blocks)
    assert fast_style.transform_shapes(width, blocks) == {
        k: tuple(v.shape) for k, v in net.named_params()}


MB = 1 << 20


def forged_nets(folder):
    """{what: path} of forged transform-network files, each declaring a network thousands of
    times larger than itself: building it first would cost gigabytes."""
    real = {k: to_numpy(v) for k, v in fast_style.transform_net(16, 1).named_params()}
    empty = np.zeros(0, np.float32)
    cases = {
        "a width of a million over no data": {
            "down1.conv.weight": np.zeros((10 ** 6, 0, 9, 9), np.float32)},
        "every key, a width of 100,000 over no data": {
            k: np.zeros((0,) + shape[1:], np.float32) if k == "down1.conv.weight" else empty
            for k, shape in fast_style.transform_shapes(10 ** 5, 1).items()}
        | {"down1.conv.weight": np.zeros((10 ** 5, 0, 9, 9), np.float32)},
        "2000 residual blocks of nothing": real | {f"res{i}.conv.weight": empty
                                                   for i in range(2, 2002)},
        "an integer width": real | {"down1.conv.bias": np.zeros(16, np.int8)},
    }
    paths = {}
    for i, (what, arrays) in enumerate(cases.items()):
        paths[what] = folder / f"forged{i}.npz"
        np.savez(paths[what], **arrays)
    return paths


def test_a_forged_network_file_costs_no_more_than_it_holds(tmp_path):
    """vis.fast_style --net: the network is checked against the file's keys, shapes and dtypes
    before it is built, so a forged file is one error naming it, within a few times its size
    of memory above the imports (measured in a child, with an address-space limit that an
    unchecked build would hit)."""
    from .children import peak_of_imports, run_measured
    baseline = peak_of_imports("vis.cli", "vis.fast_style")
    for what, path in forged_nets(tmp_path).items():
        run = run_measured("from vis import cli\nfrom vis.fast_style import load_transform_net\n"
                           f"cli.run(lambda: load_transform_net({str(path)!r}))",
                           memory_limit=3 << 30, timeout=60)
        size = path.stat().st_size
        assert run.returncode == 2 and run.stderr.startswith(f"error: {path}"), (what, run.stderr)
        assert run.stderr.count("\n") == 0 and "Traceback" not in run.stderr, (what, run.stderr)
        assert run.peak - baseline < 8 * size + 16 * MB, (what, size, run.peak - baseline)
        assert run.seconds < 30, (what, run.seconds)


def test_a_forged_network_file_is_one_line_of_the_command(tmp_path):
    from .children import run_child
    path = forged_nets(tmp_path)["a width of a million over no data"]
    run = run_child("import sys\nfrom vis import cli, fast_style\nsys.argv[0] = 'x'\n"
                    "cli.run(lambda: fast_style.main(['--net', "
                    f"{str(path)!r}, '--content', 'chelsea.png', '--no-compare', '--out', "
                    f"{str(tmp_path / 'f.png')!r}]))", memory_limit=3 << 30, timeout=120)
    assert run.returncode == 2 and run.stderr.startswith(f"error: {path} "), run.stderr
    assert run.stderr.count("\n") == 1 and not (tmp_path / "f.png").exists(), run.stderr
