"""Network: named forward/backward, ReLU rules end to end, several live passes, saving."""
import numpy as np
import pytest
from hypothesis import assume, given

import tinycnn as tc
from tinycnn import backend
from tinycnn.backend import to_numpy
from tinycnn.gradcheck import check_layer, numeric_grad, rel_error

from .conftest import on_device
from .strategies import seeds


def small_net(seed=0, dtype=np.float64, classes=5):
    """conv-relu-pool, a Fire module (squeeze, two expand branches, concat), dropout, fc."""
    def conv(cin, cout, k, **kw):
        layer = tc.Conv2d(cin, cout, k, seed=seed + cout + k, dtype=dtype, **kw)
        layer.params["bias"] = on_device(
            np.random.default_rng(seed + k).normal(0, 0.5, cout), dtype
        )
        return layer
    fire = tc.Sequential(
        [
            ("squeeze", conv(4, 3, 1)),
            ("squeeze_relu", tc.ReLU()),
            (
                "expand",
                tc.Concat(
                    [
                        (
                            "expand1x1",
                            tc.Sequential([("conv", conv(3, 2, 1)), ("relu", tc.ReLU())]),
                        ),
                        (
                            "expand3x3",
                            tc.Sequential(
                                [("conv", conv(3, 4, 3, padding=1)), ("relu", tc.ReLU())]
                            ),
                        ),
                    ]
                ),
            ),
        ]
    )
    return tc.Network(
        [
            ("conv1", conv(3, 4, 3, stride=1, padding=1)),
            ("relu1", tc.ReLU()),
            ("pool1", tc.MaxPool2d(3, 2, ceil_mode=True)),
            ("fire2", fire),
            ("drop", tc.Dropout(0.5)),
            ("pool2", tc.AvgPool2d(2)),
            ("flatten", tc.Flatten()),
            ("fc", tc.Linear(6 * 1 * 1, classes, dtype=dtype)),
        ]
    )


def style_net(seed=0, dtype=np.float64):
    """conv -> instance norm -> relu -> residual(conv, norm, relu, conv) -> upsample ->
    reflection pad -> conv: the layers of fast style transfer's image-to-image net, tiny."""
    rng = np.random.default_rng(seed)

    def conv(cin, cout, k, **kw):
        layer = tc.Conv2d(cin, cout, k, seed=seed + cout + k, dtype=dtype, **kw)
        layer.params["bias"] = on_device(rng.normal(0, 0.5, cout), dtype)
        return layer

    def norm(C):  # away from the identity, so that wrong weight or bias gradients show
        layer = tc.InstanceNorm2d(C, dtype=dtype)
        layer.params = {
            "weight": on_device(rng.normal(1, 0.5, C), dtype),
            "bias": on_device(rng.normal(0, 0.5, C), dtype),
        }
        return layer
    return tc.Network(
        [
            ("conv1", conv(3, 4, 3, padding=1)),
            ("in1", norm(4)),
            ("relu1", tc.ReLU()),
            (
                "res1",
                tc.Residual(
                    [
                        ("conv1", conv(4, 4, 3, padding=1)),
                        ("in1", norm(4)),
                        ("relu", tc.ReLU()),
                        ("conv2", conv(4, 4, 3, padding=1)),
                    ]
                ),
            ),
            ("up", tc.Upsample2d(2)),
            ("pad", tc.ReflectionPad2d(1)),
            ("conv2", conv(4, 3, 3)),
        ]
    )


def image(seed, n=2, size=6):
    return on_device(np.random.default_rng(seed).standard_normal((n, 3, size, size)))


KINK_MARGIN = 1e-4   # finite differences with h = 1e-6 move a layer's inputs by up to ~1e-5


def kink_margin(net, x):
    """How far ``net`` on ``x`` is from a kink: the smallest |input| of a ReLU, and the smallest
    gap between a max-pool window's two largest inputs (where the largest is positive; ties
    of ReLU zeros carry no gradient). At a kink, finite differences straddle it and measure
    neither side's slope (3 of 400 draws did)."""
    from numpy.lib.stride_tricks import sliding_window_view
    layers = list(net.named_layers())
    inputs = {layers[k - 1][0]: layer for k, (_, layer) in enumerate(layers)
              if isinstance(layer, (tc.ReLU, tc.MaxPool2d))}
    acts = net.activations(x, list(inputs))
    margin = np.inf
    for name, layer in inputs.items():
        a = to_numpy(acts[name])
        if isinstance(layer, tc.ReLU):
            margin = min(margin, float(abs(a).min()))
            continue
        k, st, p = layer.kernel_size, layer.stride, layer.padding
        oh, ow, eh, ew = layer._geometry(*a.shape[2:])
        a = np.pad(a, ((0, 0), (0, 0), (p, p + eh), (p, p + ew)), constant_values=-np.inf)
        windows = sliding_window_view(a, (k, k), axis=(2, 3))[:, :, ::st, ::st][:, :, :oh, :ow]
        top = np.sort(windows.reshape(*windows.shape[:4], k * k), axis=-1)[..., -2:]
        gaps = (top[..., 1] - top[..., 0])[top[..., 1] > 0]
        margin = min(margin, float(gaps.min(initial=np.inf)))
    return margin


@pytest.mark.gradcheck
@given(seeds)
def test_network_end_to_end_gradients(seed):
    # input and all 10 parameters of a net with a Fire module, checked by finite differences
    net, x = small_net(seed % 1000), image(seed)
    assume(kink_margin(net, x) > KINK_MARGIN)
    errors = check_layer(net, x)
    assert len(errors) == 1 + 10


@pytest.mark.gradcheck
@given(seeds)
def test_network_with_loss_gradient(seed):
    net, x = small_net(seed % 1000), image(seed)
    y = on_device(np.array([1, 3]))
    out, cache = net.forward(x)
    loss, dscores = tc.softmax_cross_entropy(out, y)
    dx, grads = net.backward(dscores, cache)
    numeric = numeric_grad(
        lambda: tc.softmax_cross_entropy(net(x), y)[0], x, on_device(np.ones(()))
    )
    # the loss is O(1): every centred difference carries round-off of about eps |L| / h (4e-10
    # at h = 1e-6), which is 1e-5 of an input gradient whose largest entry is only 1e-5 (seed
    # 35398), so the bound is relative to the gradient plus that round-off
    roundoff = 2 * np.finfo(np.float64).eps * abs(float(loss)) / 1e-6
    error = float(np.abs(to_numpy(dx) - to_numpy(numeric)).max())
    assert error <= 1e-5 * float(np.abs(to_numpy(numeric)).max()) + roundoff, error
    w = net.layer("fire2.expand.expand3x3.conv").params["weight"]
    numeric_w = numeric_grad(
        lambda: tc.softmax_cross_entropy(net(x), y)[0], w, on_device(np.ones(()))
    )
    assert (
        rel_error(to_numpy(grads["fire2.expand.expand3x3.conv.weight"]), to_numpy(numeric_w))
        < 1e-5
    )


@pytest.mark.gradcheck
@pytest.mark.parametrize(
    "model,layer",
    [
        ("small_net", name)
        for name in (
            "relu1",
            "pool1",
            "fire2.squeeze_relu",
            "fire2.expand.expand3x3.relu",
            "fire2.expand.expand1x1",
            "fire2",
        )
    ]
    # from inside a residual block only its body carries the gradient; from the block, both
    # branches
    + [("style_net", name) for name in ("res1.relu", "res1.conv2", "res1")],
)
def test_backward_from_a_named_layer(model, layer):
    # d<act_layer(x), dout>/dx by finite differences, against backward(start=layer)
    net, x = {"small_net": small_net, "style_net": style_net}[model](), image(7)
    out, cache = net.forward(x, until=layer)
    dout = on_device(np.random.default_rng(1).standard_normal(out.shape))
    dx, grads = net.backward(dout, cache)
    numeric = numeric_grad(lambda: net.forward(x, until=layer)[0], x, dout)
    assert rel_error(to_numpy(dx), to_numpy(numeric)) < 1e-6
    # the same gradient when the forward pass ran to the end and backward starts at the layer
    _, full = net.forward(x)
    dx_full, grads_full = net.backward(dout, full, start=layer)
    np.testing.assert_allclose(to_numpy(dx_full), to_numpy(dx), rtol=1e-12, atol=1e-12)
    assert set(grads_full) == set(grads) == {k for k, _ in net.named_params()}
    last = list(grads_full)[-1]
    assert not to_numpy(grads_full[last]).any()  # the last layer's, after the start layer: zero


def test_activations_match_layer_by_layer():
    net, x = small_net(), image(3)
    acts = net.activations(x, ["conv1", "fire2.squeeze", "fire2", "fire2.expand.expand3x3.relu"])
    a = x
    for name in ("conv1", "relu1", "pool1"):
        a, _ = net.layer(name).forward(a)
        if name == "conv1":
            np.testing.assert_array_equal(to_numpy(acts["conv1"]), to_numpy(a))
    s, _ = net.layer("fire2.squeeze").forward(a)
    np.testing.assert_array_equal(to_numpy(acts["fire2.squeeze"]), to_numpy(s))
    s, _ = net.layer("fire2.squeeze_relu").forward(s)
    e1 = net.layer("fire2.expand.expand1x1").forward(s)[0]
    e3 = net.layer("fire2.expand.expand3x3").forward(s)[0]
    np.testing.assert_array_equal(to_numpy(acts["fire2.expand.expand3x3.relu"]), to_numpy(e3))
    np.testing.assert_array_equal(
        to_numpy(acts["fire2"]), np.concatenate([to_numpy(e1), to_numpy(e3)], axis=1)
    )
    assert net(x).shape == (2, 5)


def test_several_forward_passes_stay_alive():
    net = small_net()
    x1, x2 = image(1), image(2)
    dout = on_device(np.ones((2, 5)))
    dx1_alone, g1_alone = net.backward(dout, net.forward(x1)[1])
    _, cache1 = net.forward(x1)
    _, cache2 = net.forward(x2)   # must not overwrite anything cache1 needs
    dx1, g1 = net.backward(dout, cache1)
    np.testing.assert_array_equal(to_numpy(dx1), to_numpy(dx1_alone))
    for k in g1:
        np.testing.assert_array_equal(to_numpy(g1[k]), to_numpy(g1_alone[k]))
    assert not np.allclose(to_numpy(net.backward(dout, cache2)[0]), to_numpy(dx1))


def captum_net():
    """The network of Captum's guided-backprop / deconvolution tests (see issue 4)."""
    conv = tc.Conv2d(1, 2, 3, dtype=np.float64)
    conv.params = {
        "weight": on_device(np.ones((2, 1, 3, 3))),
        "bias": on_device(np.array([-50.0, -75.0])),
    }
    fc = tc.Linear(8, 4, dtype=np.float64)
    fc.params = {
        "weight": on_device(np.tile([1.0, 1, 1, 1, 1, -1, -1, -1], (4, 1))),
        "bias": on_device(np.zeros(4)),
    }
    return tc.Network([("conv", conv), ("relu1", tc.ReLU()), ("flatten", tc.Flatten()), ("fc", fc),
                       ("relu2", tc.ReLU())])


@pytest.mark.parametrize("rule,expected", [
    ("guided", [[0, 1, 1, 1], [1, 3, 3, 2], [1, 3, 3, 2], [1, 2, 2, 1]]),
    ("deconvnet", [[2, 3, 3, 1], [3, 5, 5, 2], [3, 5, 5, 2], [1, 2, 2, 1]]),
    ("backprop", [[0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 0]]),
])
def test_relu_rules_reproduce_captum_values(rule, expected):
    # published values from Captum's test suite: an independent reference for each rule
    net = captum_net()
    out, cache = net.forward(on_device(np.arange(16.0).reshape(1, 1, 4, 4)))
    np.testing.assert_array_equal(to_numpy(out), [[54, 54, 54, 54]])
    dx, _ = net.backward(on_device(np.eye(4)[:1]), cache, rule=rule)
    np.testing.assert_array_equal(to_numpy(dx)[0, 0], expected)


def test_train_and_eval_modes():
    net, x = small_net(), image(4)
    # eval by default: dropout off
    assert np.array_equal(to_numpy(net(x)), to_numpy(net(x)))
    net.train()
    assert not np.array_equal(to_numpy(net(x)), to_numpy(net.eval()(x)))


# -- saving and loading ----------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    a, b = small_net(seed=1), small_net(seed=2)
    a.save(tmp_path / "a.npz")
    b.load(tmp_path / "a.npz")
    np.testing.assert_array_equal(to_numpy(a(image(0))), to_numpy(b(image(0))))
    with np.load(tmp_path / "a.npz") as f:
        assert "fire2.expand.expand3x3.conv.weight" in f.files


def test_load_is_strict(tmp_path):
    net = small_net()
    state = net.state_dict()
    with pytest.raises(tc.StateDictError, match="missing 1 key.*fc.bias"):
        net.load_state_dict({k: v for k, v in state.items() if k != "fc.bias"})
    with pytest.raises(tc.StateDictError, match="unexpected 1 key.*conv9.weight"):
        net.load_state_dict({**state, "conv9.weight": np.zeros(3)})
    with pytest.raises(
        tc.StateDictError,
        match=r"'conv1.weight' has shape \(4, 3, 5, 5\) but the network expects \(4, 3, 3, 3\)",
    ):
        net.load_state_dict({**state, "conv1.weight": np.zeros((4, 3, 5, 5))})
    np.savez(
        tmp_path / "other.npz",
        **{"features.0.weight": np.zeros(1), "classifier.1.weight": np.zeros(1)},
    )
    with pytest.raises(
        tc.StateDictError,
        match="other.npz does not match the network \\(is it from another model\\?\\)",
    ):
        net.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(tc.StateDictError, match="junk.npz is not a readable .npz"):
        net.load(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError, match="no weights file at .*missing.npz"):
        net.load(tmp_path / "missing.npz")
    # a diverged run's weights draw wrong pictures: refused
    for bad in (np.nan, np.inf, -np.inf):
        w = state["conv1.weight"].copy()
        w[1, 2, 0, 0] = bad
        np.savez(tmp_path / "diverged.npz", **{**state, "conv1.weight": w})
        with pytest.raises(
            tc.StateDictError,
            match="diverged.npz: parameter 'conv1.weight' holds 1 NaN or infinite",
        ):
            net.load(tmp_path / "diverged.npz")
    # finite in the file's float64, infinite once cast to the network's float32: refused too
    net, state = small_net(dtype=np.float32), small_net().state_dict()
    w = state["conv1.weight"]
    w[0, 0, 0, 0] = -1e308
    np.savez(tmp_path / "huge.npz", **{**state, "conv1.weight": w})
    with pytest.raises(tc.StateDictError,
                       match="huge.npz: parameter 'conv1.weight' holds 1 value.s. beyond float32"):
        net.load(tmp_path / "huge.npz")
    w[0, 0, 0, 0] = 3e38          # within float32's range: loads
    np.savez(tmp_path / "large.npz", **{**state, "conv1.weight": w})
    net.load(tmp_path / "large.npz")


def test_load_refuses_pickled_objects(tmp_path):
    np.savez(tmp_path / "evil.npz", **{"conv1.weight": np.array([object()], dtype=object)})
    with pytest.raises(tc.StateDictError, match="evil.npz is not a readable .npz"):
        small_net().load(tmp_path / "evil.npz")


# -- bad input --------------------------------------------------------------------------
def test_bad_input_gets_a_clear_error():
    net = small_net()
    with pytest.raises(TypeError, match="floating-point array, got dtype int64"):
        net(on_device(np.zeros((1, 3, 6, 6), dtype=np.int64)))
    bad = np.zeros((1, 3, 6, 6))
    bad[0, 0, 0, 0] = np.nan
    if backend.name() == "numpy":   # on a GPU the count would synchronise every forward pass
        with pytest.raises(ValueError, match="1 NaN or Inf"):
            net(on_device(bad))
    with pytest.raises(
        tc.ShapeError,
        match=r"layer 'conv1': Conv2d expects input of shape \(N, 3, H, W\), got \(1, 1, 6, 6\)",
    ):
        net(on_device(np.zeros((1, 1, 6, 6))))
    wrong = tc.Network(
        [("conv1", tc.Conv2d(3, 5, 1, dtype=np.float64)), ("fire2", net.layers["fire2"])]
    )
    with pytest.raises(
        tc.ShapeError,
        match=r"layer 'fire2.squeeze': Conv2d expects .*\(N, 4, H, W\), got \(1, 5, 6, 6\)",
    ):
        wrong(on_device(np.zeros((1, 3, 6, 6))))
    with pytest.raises(tc.UnknownLayerError, match="unknown layer 'fire3'.*did you mean fire2"):
        net.forward(on_device(np.zeros((1, 3, 6, 6))), until="fire3")
    with pytest.raises(tc.UnknownLayerError, match="fc come after 'pool1'"):
        net.forward(on_device(np.zeros((1, 3, 6, 6))), until="pool1", keep=["fc"])
    _, cache = net.forward(on_device(np.zeros((1, 3, 6, 6))), until="pool1")
    with pytest.raises(tc.UnknownLayerError, match="stopped at 'pool1' before it"):
        net.backward(on_device(np.zeros(5)), cache, start="fc")
    with pytest.raises(TypeError, match="got list"):
        net([[1.0]])


@pytest.mark.parametrize("layer", ["pool1", "fire2"])
def test_backward_can_stop_at_a_layer(layer):
    # d<net(x), dout>/d(activation of layer): finite differences through the layers after it
    net, x = small_net(), image(9)
    out, cache = net.forward(x, keep=[layer])
    dout = on_device(np.random.default_rng(2).standard_normal(out.shape))
    grad, _ = net.backward(dout, cache, stop=layer)
    names = list(net.layers)
    rest = tc.Network([(n, net.layers[n]) for n in names[names.index(layer) + 1:]])
    act = cache.activations[layer].copy()
    numeric = numeric_grad(lambda: rest(act), act, dout)
    assert rel_error(to_numpy(grad), to_numpy(numeric)) < 1e-6
    # and going on from there gives the full input gradient
    dx, _ = net.backward(grad, cache, start=layer)
    np.testing.assert_allclose(
        to_numpy(dx), to_numpy(net.backward(dout, cache)[0]), rtol=1e-12, atol=1e-12
    )
    with pytest.raises(tc.UnknownLayerError, match="does not come before"):
        net.backward(grad, cache, start="pool1", stop="fc")


def test_backward_from_several_layers_at_once():
    # an objective on several layers: one backward pass equals the sum of separate ones
    net, x = small_net(), image(11)
    layers = ["relu1", "fire2.squeeze_relu", "fire2", "pool2"]
    out, cache = net.forward(x, until="pool2", keep=layers)
    rng = np.random.default_rng(4)
    douts = {k: on_device(rng.standard_normal(cache.activations[k].shape)) for k in layers}
    dx, _ = net.backward(douts, cache, param_grads=False)
    separate = sum(
        to_numpy(net.backward(d, cache, start=k, param_grads=False)[0]) for k, d in douts.items()
    )
    np.testing.assert_allclose(to_numpy(dx), separate, rtol=1e-12, atol=1e-12)
    out, cache = net.forward(x, until="fire2.expand.expand3x3.relu")
    with pytest.raises(tc.UnknownLayerError, match="fire2.expand.expand1x1.relu were never used"):
        net.backward({"fire2.expand.expand3x3.relu": on_device(np.ones(out.shape)),
                      "fire2.expand.expand1x1.relu": on_device(np.ones((2, 2, 3, 3)))}, cache)


def test_backward_can_stop_at_a_concat_branch():
    # the gradient at a branch's output is its channels of the gradient at the Concat's output
    net, x = small_net(), image(12)
    out, cache = net.forward(x)
    dout = on_device(np.random.default_rng(3).standard_normal(out.shape))
    # (N, 2 + 4, H, W)
    at_fire2 = to_numpy(net.backward(dout, cache, stop="fire2", param_grads=False)[0])
    for stop, channels in [
        ("fire2.expand.expand1x1", slice(0, 2)),
        ("fire2.expand.expand3x3", slice(2, 6)),
        ("fire2.expand.expand3x3.relu", slice(2, 6)),
    ]:
        grad, _ = net.backward(dout, cache, stop=stop, param_grads=False)
        np.testing.assert_array_equal(to_numpy(grad), at_fire2[:, channels], err_msg=stop)


@pytest.mark.skipif(
    backend.name() != "cupy", reason="needs the GPU backend (make test's stand-in pass runs it)"
)
def test_a_host_input_to_a_network_on_the_device_is_one_clear_error():
    with pytest.raises(
        TypeError, match="the network: the input is a numpy array but the parameters live in cupy"
    ):
        small_net()(np.zeros((1, 3, 6, 6), np.float32))
    with pytest.raises(TypeError, match="Conv2d: the input is a numpy array"):
        tc.Conv2d(3, 2, 3).forward(np.zeros((1, 3, 6, 6), np.float32))


# -- a residual block inside an image-to-image net ---------------------------------------
@pytest.mark.gradcheck
@given(seeds)
def test_style_network_end_to_end_gradients(seed):
    # the input and all 12 parameters, the residual block's included, by finite differences
    net, x = style_net(seed % 1000), image(seed, size=4)
    assume(kink_margin(net, x) > KINK_MARGIN)
    out, cache = net.forward(x)
    dout = on_device(np.random.default_rng(seed + 1).standard_normal(out.shape))
    dx, grads = net.backward(dout, cache)
    params = dict(net.named_params())
    assert len(params) == 12 and "res1.in1.weight" in grads
    for name, analytic in [("x", dx)] + list(grads.items()):
        numeric = numeric_grad(lambda: net(x), x if name == "x" else params[name], dout)
        if name in ("conv1.bias", "res1.conv1.bias"):
            # instance norm right after subtracts every channel's mean, bias included: no gradient
            # (the finite differences keep their round-off, eps * |<net(x), dout>| / h, about 1e-8)
            assert float(abs(analytic).max()) < 1e-10 and float(abs(numeric).max()) < 1e-6, name
        else:
            assert rel_error(to_numpy(analytic), to_numpy(numeric)) < 1e-6, name


def test_residual_layers_are_named_and_their_activations_kept():
    net, x = style_net(), image(5, size=4)
    assert "res1.conv2" in net.names() and isinstance(net.layer("res1.in1"), tc.InstanceNorm2d)
    assert {"res1.conv1.weight", "res1.in1.bias", "res1.conv2.bias"} <= {
        k for k, _ in net.named_params()
    }
    acts = net.activations(x, ["relu1", "res1.relu", "res1.conv2", "res1"])
    body, _ = net.layer("res1").layers["conv1"].forward(acts["relu1"])
    for name in ("in1", "relu", "conv2"):
        body, _ = net.layer("res1." + name).forward(body)
        if name == "relu":
            np.testing.assert_array_equal(to_numpy(acts["res1.relu"]), to_numpy(body))
    np.testing.assert_array_equal(to_numpy(acts["res1.conv2"]), to_numpy(body))
    # x + body(x)
    np.testing.assert_array_equal(to_numpy(acts["res1"]), to_numpy(acts["relu1"] + body))
    assert net(x).shape == (2, 3, 8, 8)


@pytest.mark.parametrize("layer", ["res1.in1", "res1.conv2", "res1"])
def test_backward_can_stop_inside_a_residual(layer):
    # d<net(x), dout>/d(activation of layer): perturb the activation, rerun what follows it
    net, x = style_net(), image(8, size=4)
    out, cache = net.forward(x, keep=[layer])
    dout = on_device(np.random.default_rng(2).standard_normal(out.shape))
    grad, _ = net.backward(dout, cache, stop=layer)
    res, tail = (
        net.layers["res1"],
        tc.Network([(n, net.layers[n]) for n in ("up", "pad", "conv2")]),
    )
    act = cache.activations[layer].copy()
    if layer == "res1":
        rest = lambda: tail(act)                                                       # noqa: E731
    else:   # the block's input is fixed; the body's layers after ``layer`` run on the activation
        names = list(res.layers)
        after = tc.Sequential(
            [(n, res.layers[n]) for n in names[names.index(layer.split(".")[1]) + 1 :]]
        )
        x_in = net.forward(x, until="relu1")[0]
        rest = lambda: tail(x_in + after.forward(act)[0])                                # noqa: E731
    numeric = numeric_grad(rest, act, dout)
    assert rel_error(to_numpy(grad), to_numpy(numeric)) < 1e-6


def test_residual_backward_adds_both_branches_and_passes_the_rule():
    res = style_net().layers["res1"]
    x = image(9, size=4)[:, :1].repeat(4, axis=1) + on_device(
        np.random.default_rng(3).standard_normal((2, 4, 4, 4))
    )
    out, cache = res.forward(x)
    body = tc.Sequential(list(res.layers.items()))
    np.testing.assert_allclose(to_numpy(out), to_numpy(x + body.forward(x)[0]), rtol=1e-12)
    dout = on_device(np.random.default_rng(4).standard_normal(out.shape))
    for rule in ("backprop", "guided"):
        dx, grads = res.backward(dout, cache, rule=rule)
        dbody, body_grads = body.backward(dout, body.forward(x)[1], rule=rule)
        np.testing.assert_allclose(to_numpy(dx), to_numpy(dout + dbody), rtol=1e-12, atol=1e-12)
        assert (
            set(grads)
            == set(body_grads)
            == {
                "conv1.weight",
                "conv1.bias",
                "in1.weight",
                "in1.bias",
                "conv2.weight",
                "conv2.bias",
            }
        )
    assert not np.allclose(
        to_numpy(res.backward(dout, cache, rule="guided")[0]),
        to_numpy(res.backward(dout, cache)[0]),
    )


def test_a_residual_body_must_keep_the_shape():
    net = tc.Network([("res1", tc.Residual([("conv", tc.Conv2d(3, 2, 1, dtype=np.float64))]))])
    with pytest.raises(tc.ShapeError, match=r"layer 'res1': Residual needs a body that keeps the shape of its "
                                            r"input, but it maps \(1, 3, 4, 4\) to \(1, 2, 4, 4\)"):
        net(on_device(np.zeros((1, 3, 4, 4))))


def test_a_container_listed_after_its_last_child_gets_its_own_output():
    # fire2's output (the concat) comes after its last branch's: asked for both, in either order
    net, x = small_net(), image(10)
    for names in (["fire2.expand.expand3x3.relu", "fire2"], ["fire2", "fire2.expand.expand3x3.relu"]):
        acts = net.activations(x, names)
        assert acts["fire2"].shape[1] == 2 + 4 and acts["fire2.expand.expand3x3.relu"].shape[1] == 4
    with pytest.raises(tc.UnknownLayerError, match="fire2 come after 'fire2.expand.expand3x3.relu'"):
        net.forward(x, until="fire2.expand.expand3x3.relu", keep=["fire2"])
