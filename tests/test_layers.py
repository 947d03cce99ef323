"""Layers: finite-difference gradient checks, naive-loop oracles, ReLU rules, errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn import backend, naive
from tinycnn.backend import to_numpy
from tinycnn.gradcheck import check_layer, rel_error

from .conftest import on_device
from .strategies import conv_geometry, image_shape, pool_geometry, reflection_geometry, seeds


def float64_conv(C, F, K, stride, pad, seed):
    conv = tc.Conv2d(C, F, K, stride, pad, seed=seed, dtype=np.float64)
    # random (not zero) biases keep the check away from ReLU kinks in composed nets
    conv.params["bias"] = on_device(np.random.default_rng(seed).standard_normal(F))
    return conv


# -- gradient checks (float64, centred differences) -----------------------------------
@pytest.mark.gradcheck
@given(conv_geometry(), seeds)
def test_conv_gradients(geom, seed):
    N, C, H, W, F, K, stride, pad = geom
    x = on_device(np.random.default_rng(seed).standard_normal((N, C, H, W)))
    check_layer(float64_conv(C, F, K, stride, pad, seed), x, seed=seed)


@given(pool_geometry(), seeds)
def test_maxpool_gradients(geom, seed):
    N, C, H, W, K, stride, pad, ceil_mode = geom
    x = on_device(np.random.default_rng(seed).standard_normal((N, C, H, W)))
    check_layer(tc.MaxPool2d(K, stride, pad, ceil_mode), x, seed=seed)


@pytest.mark.gradcheck
@given(pool_geometry(), seeds)
def test_avgpool_gradients(geom, seed):
    N, C, H, W, K, stride, pad, ceil_mode = geom
    x = on_device(np.random.default_rng(seed).standard_normal((N, C, H, W)))
    for include_pad in (True, False):
        check_layer(
            tc.AvgPool2d(K, stride, pad, ceil_mode, count_include_pad=include_pad), x, seed=seed
        )


@pytest.mark.gradcheck
@given(pool_geometry(), seeds)
def test_parameter_free_layer_gradients(geom, seed):
    N, C, H, W = geom[:4]
    x = on_device(np.random.default_rng(seed).standard_normal((N, C, H, W)))
    for layer in (tc.ReLU(), tc.GlobalAvgPool2d(), tc.Flatten()):
        check_layer(layer, x, seed=seed)
    # dropout draws a new mask every forward pass, so finite differences do not apply; with the
    # mask fixed it is linear, out = m * x, so its backward must be dout * out / x
    drop = tc.Dropout(0.3, seed=seed)
    drop.training = True
    out, cache = drop.forward(x)
    dout = np.random.default_rng(seed + 1).standard_normal(x.shape)
    dx, _ = drop.backward(on_device(dout), cache)
    np.testing.assert_allclose(to_numpy(dx), dout * to_numpy(out) / to_numpy(x), rtol=1e-10)


@pytest.mark.gradcheck
@given(seeds)
def test_linear_gradients(seed):
    rng = np.random.default_rng(seed)
    N, D, M = rng.integers(1, 5, size=3)
    lin = tc.Linear(int(D), int(M), seed=seed, dtype=np.float64)
    check_layer(lin, on_device(rng.standard_normal((N, D))), seed=seed)


# -- fast == naive ------------------------------------------------------------------------
@given(conv_geometry(), seeds)
def test_conv_matches_naive_loops(geom, seed):
    N, C, H, W, F, K, stride, pad = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    conv = float64_conv(C, F, K, stride, pad, seed)
    w, b = (to_numpy(conv.params[k]) for k in ("weight", "bias"))
    out, cache = conv.forward(on_device(x))
    expected = naive.conv_forward_naive(x, w, b, stride, pad)
    assert out.shape == expected.shape
    assert rel_error(to_numpy(out), expected) < 1e-12
    dout = rng.standard_normal(out.shape)
    dx, grads = conv.backward(on_device(dout), cache)
    ndx, ndw, ndb = naive.conv_backward_naive(dout, x, w, stride, pad)
    for fast, slow in ((dx, ndx), (grads["weight"], ndw), (grads["bias"], ndb)):
        assert rel_error(to_numpy(fast), slow) < 1e-12


@given(pool_geometry(), seeds)
def test_maxpool_matches_naive_loops(geom, seed):
    N, C, H, W, K, stride, pad, ceil_mode = geom
    rng = np.random.default_rng(seed)
    # small integers make ties common: routing must still match the first maximum
    x = rng.integers(0, 3, (N, C, H, W)).astype(np.float64)
    pool = tc.MaxPool2d(K, stride, pad, ceil_mode)
    out, cache = pool.forward(on_device(x))
    np.testing.assert_array_equal(
        to_numpy(out), naive.maxpool_forward_naive(x, K, stride, pad, ceil_mode)
    )
    dout = rng.standard_normal(out.shape)
    dx, _ = pool.backward(on_device(dout), cache)
    np.testing.assert_allclose(
        to_numpy(dx),
        naive.maxpool_backward_naive(dout, x, K, stride, pad, ceil_mode),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("K,H,W", [(2, 8, 8), (2, 7, 6), (3, 9, 10), (1, 3, 3)])
def test_non_overlapping_maxpool_matches_naive_loops(K, H, W):
    # stride = kernel, no padding (CIFAR's pools), with ties and rows no window reads
    rng = np.random.default_rng(K * H * W)
    x = rng.integers(0, 3, (2, 3, H, W)).astype(np.float64)
    pool = tc.MaxPool2d(K, K)
    out, cache = pool.forward(on_device(x))
    np.testing.assert_array_equal(to_numpy(out), naive.maxpool_forward_naive(x, K, K, 0, False))
    dout = rng.standard_normal(out.shape)
    dx, _ = pool.backward(on_device(dout), cache)
    np.testing.assert_array_equal(
        to_numpy(dx), naive.maxpool_backward_naive(dout, x, K, K, 0, False)
    )


def test_float32_conv_stays_float32(rng):
    conv = tc.Conv2d(3, 4, 3, padding=1)
    out, cache = conv.forward(on_device(rng.standard_normal((2, 3, 5, 5)), np.float32))
    dx, grads = conv.backward(out, cache)
    assert out.dtype == dx.dtype == grads["weight"].dtype == np.float32


def test_maxpool_output_sizes_by_hand():
    # SqueezeNet's pools: 3x3 stride 2 ceil mode on 111 -> 55, 55 -> 27, 27 -> 13
    pool = tc.MaxPool2d(3, 2, ceil_mode=True)
    for size, expected in ((111, 55), (55, 27), (27, 13), (6, 3)):
        out, _ = pool.forward(on_device(np.zeros((1, 1, size, size))))
        assert out.shape[-1] == expected
    # without ceil mode 6 -> 2; with padding 1 and ceil: a window starting in padding only is
    # dropped
    assert tc.MaxPool2d(3, 2).forward(on_device(np.zeros((1, 1, 6, 6))))[0].shape[-1] == 2
    assert (
        tc.MaxPool2d(2, 2, 1, ceil_mode=True)
        .forward(on_device(np.zeros((1, 1, 5, 5))))[0]
        .shape[-1]
        == 3
    )


# -- ReLU backward rules against their definitions ----------------------------------------
def test_relu_rules_follow_their_definitions(rng):
    x = rng.standard_normal((2, 3, 4, 4))
    dout = rng.standard_normal(x.shape)
    relu = tc.ReLU()
    _, cache = relu.forward(on_device(x))
    expected = {
        "backprop": np.where(x > 0, dout, 0.0),
        "deconvnet": np.where(dout > 0, dout, 0.0),
        "guided": np.where((x > 0) & (dout > 0), dout, 0.0),
    }
    for rule, want in expected.items():
        dx, _ = relu.backward(on_device(dout), cache, rule=rule)
        np.testing.assert_array_equal(to_numpy(dx), want)
    # deconvnet ignores the forward input entirely; guided is never larger than backprop
    assert not np.array_equal(expected["deconvnet"], expected["backprop"])
    with pytest.raises(ValueError, match="unknown ReLU backward rule 'guide'.*guided"):
        relu.backward(on_device(dout), cache, rule="guide")


def test_dropout_train_and_eval(rng):
    x = on_device(np.ones((4, 1000)))
    drop = tc.Dropout(0.25, seed=1)
    out, _ = drop.forward(x)
    np.testing.assert_array_equal(to_numpy(out), to_numpy(x))  # evaluation: identity
    drop.training = True
    out, mask = drop.forward(x)
    kept = to_numpy(out) != 0
    assert 0.7 < kept.mean() < 0.8                          # keeps about 1 - p
    np.testing.assert_allclose(to_numpy(out)[kept], 1 / 0.75)  # inverted scaling
    again = tc.Dropout(0.25, seed=1)
    again.training = True
    # same seed, same mask
    np.testing.assert_array_equal(to_numpy(again.forward(x)[0]), to_numpy(out))


# -- errors -------------------------------------------------------------------------------
def test_layers_name_wrong_shapes(rng):
    with pytest.raises(
        tc.ShapeError, match=r"Conv2d expects input of shape \(N, 3, H, W\), got \(2, 4, 8, 8\)"
    ):
        tc.Conv2d(3, 8, 3).forward(on_device(np.zeros((2, 4, 8, 8))))
    with pytest.raises(tc.ShapeError, match=r"\(N, C, H, W\), got \(8, 8\)"):
        tc.MaxPool2d(2).forward(on_device(np.zeros((8, 8))))
    with pytest.raises(
        tc.ShapeError,
        match=r"Linear expects input of shape \(N, 10\), got \(2, 4, 2, 2\).*Flatten",
    ):
        tc.Linear(10, 3).forward(on_device(np.zeros((2, 4, 2, 2))))
    with pytest.raises(ValueError, match="kernel 5 is larger than the padded input 3"):
        tc.Conv2d(1, 1, 5).forward(on_device(np.zeros((1, 1, 3, 3))))
    with pytest.raises(ValueError, match="padding 2 must be at most half the kernel size 3"):
        tc.MaxPool2d(3, padding=2)
    with pytest.raises(
        tc.ShapeError,
        match=r"InstanceNorm2d expects input of shape \(N, 3, H, W\), got \(2, 4, 8, 8\)",
    ):
        tc.InstanceNorm2d(3).forward(on_device(np.zeros((2, 4, 8, 8))))
    with pytest.raises(
        tc.ShapeError,
        match=r"InstanceNorm2d needs more than one pixel per channel, got \(2, 3, 1, 1\)",
    ):
        tc.InstanceNorm2d(3).forward(on_device(np.zeros((2, 3, 1, 1))))
    with pytest.raises(
        tc.ShapeError, match=r"Upsample2d expects input of shape \(N, C, H, W\), got \(8, 8\)"
    ):
        tc.Upsample2d(2).forward(on_device(np.zeros((8, 8))))
    with pytest.raises(ValueError, match="scale must be a positive integer, got 1.5"):
        tc.Upsample2d(1.5)
    with pytest.raises(
        tc.ShapeError, match=r"ReflectionPad2d\(3\) expects .* with H, W > 3, got \(1, 1, 8, 3\)"
    ):
        tc.ReflectionPad2d(3).forward(on_device(np.zeros((1, 1, 8, 3))))


@given(conv_geometry(), seeds)
def test_backward_without_parameter_gradients_skips_them(geom, seed):
    # the input gradient is the same to the bit; the columns dW would need are never built
    import tinycnn.layers as layers
    N, C, H, W, F, K, stride, pad = geom
    rng = np.random.default_rng(seed)
    conv = tc.Conv2d(C, F, K, stride, pad, seed=seed, dtype=np.float64)
    x = on_device(rng.standard_normal((N, C, H, W)))
    out, cache = conv.forward(x)
    dout = on_device(rng.standard_normal(out.shape))
    dx, grads = conv.backward(dout, cache)
    real_im2col = layers.im2col
    layers.im2col = None          # any call would fail
    try:
        dx_only, none = conv.backward(dout, cache, param_grads=False)
    finally:
        layers.im2col = real_im2col
    assert none == {} and set(grads) == {"weight", "bias"}
    np.testing.assert_array_equal(to_numpy(dx_only), to_numpy(dx))
    fc = tc.Linear(C, F, seed=seed, dtype=np.float64)
    xf = on_device(rng.standard_normal((N, C)))
    _, cf = fc.forward(xf)
    df = on_device(rng.standard_normal((N, F)))
    assert fc.backward(df, cf, param_grads=False)[1] == {}
    np.testing.assert_array_equal(to_numpy(fc.backward(df, cf, param_grads=False)[0]),
                                  to_numpy(fc.backward(df, cf)[0]))


@pytest.mark.parametrize(
    "layer",
    [
        tc.ReLU(),
        tc.GlobalAvgPool2d(),
        tc.Flatten(),
        tc.MaxPool2d(2),
        tc.AvgPool2d(2),
        tc.Conv2d(3, 2, 3, dtype=np.float64),
        tc.Dropout(0.5),
        tc.InstanceNorm2d(3, dtype=np.float64),
        tc.Upsample2d(1),
        tc.Upsample2d(2),
        tc.ReflectionPad2d(0),
        tc.ReflectionPad2d(2),
    ],
)
def test_backward_returns_a_writable_gradient(layer):
    # downstream code (accumulating gradients, guided backprop) updates dx in place
    x = on_device(np.random.default_rng(0).standard_normal((2, 3, 4, 4)))
    out, cache = layer.forward(x)
    dx, _ = layer.backward(on_device(np.ones(out.shape)), cache)
    expected = to_numpy(dx) + 1
    dx += 1
    np.testing.assert_array_equal(to_numpy(dx), expected)


# -- the layers of an image-to-image network ---------------------------------------------
def float64_instance_norm(C, seed, affine=True):
    norm = tc.InstanceNorm2d(C, affine=affine, dtype=np.float64)
    if affine:  # away from the identity, so that a wrong weight or bias gradient shows
        rng = np.random.default_rng(seed)
        norm.params = {
            "weight": on_device(rng.normal(1, 0.5, C)),
            "bias": on_device(rng.standard_normal(C)),
        }
    return norm


@pytest.mark.gradcheck
@given(image_shape(min_pixels=3), seeds)
def test_instance_norm_gradients(shape, seed):
    # three pixels at least: two normalise to -1, +1 (up to eps) whatever they are, so their dx is
    # O(eps) and finite differences measure round-off (the naive and PyTorch tests cover two pixels)
    # dout must not be drawn with x's seed: with dout = x, <xhat, dout> is sigma * sum(xhat^2),
    # constant up to eps, and the check would compare two round-off-sized gradients
    x = on_device(np.random.default_rng(seed).standard_normal(shape))
    assert set(check_layer(float64_instance_norm(shape[1], seed), x, seed=seed + 1)) == {
        "x",
        "weight",
        "bias",
    }
    check_layer(float64_instance_norm(shape[1], seed, affine=False), x, seed=seed + 1)


@pytest.mark.gradcheck
@given(reflection_geometry(), st.integers(1, 3), seeds)
def test_upsample_and_reflection_pad_gradients(geom, scale, seed):
    N, C, H, W, p = geom
    x = on_device(np.random.default_rng(seed).standard_normal((N, C, H, W)))
    check_layer(tc.Upsample2d(scale), x, seed=seed)
    check_layer(tc.ReflectionPad2d(p), x, seed=seed)


@given(image_shape(min_pixels=2), seeds)
def test_instance_norm_matches_naive_loops(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 3 + 1
    norm = float64_instance_norm(shape[1], seed)
    out, _ = norm.forward(on_device(x))
    w, b = (to_numpy(norm.params[k]) for k in ("weight", "bias"))
    np.testing.assert_allclose(
        to_numpy(out), naive.instance_norm_naive(x, w, b, 1e-5), rtol=1e-10, atol=1e-10
    )
    # without the affine part every image's channel has mean 0 and variance 1 (up to eps)
    plain = to_numpy(tc.InstanceNorm2d(shape[1], eps=0.0, affine=False).forward(on_device(x))[0])
    np.testing.assert_allclose(plain.mean(axis=(2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(plain.var(axis=(2, 3)), 1, rtol=1e-10)


@given(reflection_geometry(), seeds)
def test_reflection_pad_matches_naive_loops(geom, seed):
    N, C, H, W, p = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    pad = tc.ReflectionPad2d(p)
    out, cache = pad.forward(on_device(x))
    np.testing.assert_array_equal(to_numpy(out), naive.reflection_pad_naive(x, p))
    dout = rng.standard_normal(out.shape)
    dx, _ = pad.backward(on_device(dout), cache)
    np.testing.assert_allclose(
        to_numpy(dx), naive.reflection_pad_backward_naive(dout, x.shape, p), rtol=1e-12
    )


def test_upsample_and_reflection_pad_by_hand():
    x = on_device(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    up, cache = tc.Upsample2d(2).forward(x)
    np.testing.assert_array_equal(
        to_numpy(up)[0, 0], [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    )
    dx, _ = tc.Upsample2d(2).backward(on_device(np.arange(16.0).reshape(1, 1, 4, 4)), cache)
    np.testing.assert_array_equal(
        to_numpy(dx)[0, 0], [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]
    )
    # [a b c d] -> [c b | a b c d | c b]
    row = on_device(np.array([[[[1.0, 2.0, 3.0, 4.0]] * 3]]))
    np.testing.assert_array_equal(
        to_numpy(tc.ReflectionPad2d(2).forward(row)[0])[0, 0, 0], [3, 2, 1, 2, 3, 4, 3, 2]
    )


def test_float32_style_layers_stay_float32(rng):
    x = on_device(rng.standard_normal((2, 3, 5, 5)), np.float32)
    for layer in (tc.InstanceNorm2d(3), tc.Upsample2d(2), tc.ReflectionPad2d(2)):
        out, cache = layer.forward(x)
        dx, grads = layer.backward(out, cache)
        assert out.dtype == dx.dtype == np.float32 and all(
            g.dtype == np.float32 for g in grads.values()
        )


@given(image_shape(min_pixels=2), seeds)
def test_instance_norm_without_parameter_gradients(shape, seed):
    rng = np.random.default_rng(seed)
    norm = float64_instance_norm(shape[1], seed)
    out, cache = norm.forward(on_device(rng.standard_normal(shape)))
    dout = on_device(rng.standard_normal(out.shape))
    dx, grads = norm.backward(dout, cache)
    dx_only, none = norm.backward(dout, cache, param_grads=False)
    assert none == {} and set(grads) == {"weight", "bias"}
    np.testing.assert_array_equal(to_numpy(dx_only), to_numpy(dx))
