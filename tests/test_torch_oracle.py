"""PyTorch autograd as an independent oracle for forward and backward passes.

Skipped when PyTorch is not installed (CI installs the CPU build so these run there).
Agreement is required to 1e-5 relative (max-norm) in float64 and 1e-4 in float32: a
float32 gradient such as a bias's is a sum of many terms that can cancel, and two
summation orders then differ by more than 1e-5 of the result (seen: 1.1e-5 for 50
terms). A wrong gradient is off by far more than either.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn.backend import to_numpy

from .conftest import on_device
from .strategies import conv_geometry, pool_geometry, reflection_geometry, seeds
from .test_net import small_net, style_net

torch = pytest.importorskip(
    "torch",
    reason="PyTorch is not installed: pip install torch (CPU build) to run the oracle tests",
)
F = torch.nn.functional
TOL = {np.dtype(np.float64): 1e-5, np.dtype(np.float32): 1e-4}


def agree(ours, theirs, what, scale=0.0):
    """Relative error below the dtype's tolerance; scale: the size of the terms summed into
    the values (a sum that cancels to almost 0 keeps the round-off of its terms)."""
    a, b = to_numpy(ours).astype(np.float64), theirs.detach().double().numpy()
    err = np.abs(a - b).max(initial=0) / max(
        np.abs(a).max(initial=0), np.abs(b).max(initial=0), scale, 1e-12
    )
    tol = TOL[np.dtype(ours.dtype)]
    assert err < tol, (
        f"{what}: relative error {err:.2e} against PyTorch ({ours.dtype}, tolerance {tol})"
    )


def tensor(a):
    return torch.from_numpy(np.ascontiguousarray(to_numpy(a))).requires_grad_(True)


def compare_layer(layer, x, torch_fn, seed):
    """Forward, then backward with the same random upstream gradient, in both libraries."""
    out, cache = layer.forward(x)
    dout = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    dx, grads = layer.backward(on_device(dout), cache)
    tx = tensor(x)
    tparams = {k: tensor(v) for k, v in layer.params.items()}
    tout = torch_fn(tx, **tparams)
    tout.backward(torch.from_numpy(dout))
    agree(out, tout, "forward")
    agree(dx, tx.grad, "dx")
    # parameter gradients sum over the batch and positions: the same sums of |terms| (the
    # layer on |x| and |params| with |dout|) bound their round-off
    ax = tensor(abs(to_numpy(x)))
    aparams = {k: tensor(abs(to_numpy(v))) for k, v in layer.params.items()}
    torch_fn(ax, **aparams).backward(torch.from_numpy(abs(dout)))
    for k, p in tparams.items():
        agree(grads[k], p.grad, f"d{k}", scale=float(aparams[k].grad.abs().max()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(geom=conv_geometry(max_size=9), seed=seeds)
def test_conv_agrees_with_torch(dtype, geom, seed):
    N, C, H, W, Fo, K, stride, pad = geom
    conv = tc.Conv2d(C, Fo, K, stride, pad, seed=seed, dtype=dtype)
    conv.params["bias"] = on_device(np.random.default_rng(seed).standard_normal(Fo), dtype)
    x = on_device(np.random.default_rng(seed + 1).standard_normal((N, C, H, W)), dtype)
    compare_layer(conv, x, lambda x, weight, bias: F.conv2d(x, weight, bias, stride, pad), seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(geom=pool_geometry(max_size=10), seed=seeds)
def test_pooling_agrees_with_torch(dtype, geom, seed):
    N, C, H, W, K, stride, pad, ceil = geom
    x = on_device(np.random.default_rng(seed).standard_normal((N, C, H, W)), dtype)
    compare_layer(tc.MaxPool2d(K, stride, pad, ceil), x,
                  lambda x: F.max_pool2d(x, K, stride, pad, ceil_mode=ceil), seed)
    for include in (True, False):
        compare_layer(
            tc.AvgPool2d(K, stride, pad, ceil, count_include_pad=include),
            x,
            lambda x: F.avg_pool2d(x, K, stride, pad, ceil_mode=ceil, count_include_pad=include),
            seed,
        )
    compare_layer(tc.GlobalAvgPool2d(), x, lambda x: x.mean(dim=(2, 3)), seed)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_linear_agrees_with_torch(dtype):
    lin = tc.Linear(7, 4, seed=3, dtype=dtype)
    x = on_device(np.random.default_rng(0).standard_normal((5, 7)), dtype)
    compare_layer(lin, x, lambda x, weight, bias: F.linear(x, weight, bias), 0)


def torch_small_net(p):
    """tests.test_net.small_net written with torch.nn.functional, reading tinycnn's parameters."""
    def fire(x):
        s = F.relu(F.conv2d(x, p["fire2.squeeze.weight"], p["fire2.squeeze.bias"]))
        e1 = F.relu(
            F.conv2d(
                s, p["fire2.expand.expand1x1.conv.weight"], p["fire2.expand.expand1x1.conv.bias"]
            )
        )
        e3 = F.relu(
            F.conv2d(
                s,
                p["fire2.expand.expand3x3.conv.weight"],
                p["fire2.expand.expand3x3.conv.bias"],
                padding=1,
            )
        )
        return torch.cat([e1, e3], dim=1)

    def forward(x):
        x = F.relu(F.conv2d(x, p["conv1.weight"], p["conv1.bias"], padding=1))
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        x = F.avg_pool2d(fire(x), 2)
        return F.linear(x.flatten(1), p["fc.weight"], p["fc.bias"])
    return forward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_small_network_agrees_with_torch(dtype):
    net = small_net(seed=5).astype(dtype)
    x = on_device(np.random.default_rng(0).standard_normal((3, 3, 6, 6)), dtype)
    y = np.array([0, 2, 4])
    out, cache = net.forward(x)
    loss, dscores = tc.softmax_cross_entropy(out, on_device(y))
    dx, grads = net.backward(dscores, cache)

    params = {k: tensor(v) for k, v in net.named_params()}
    tx = tensor(x)
    tout = torch_small_net(params)(tx)
    tloss = F.cross_entropy(tout, torch.from_numpy(y))
    tloss.backward()
    agree(out, tout, "logits")
    agree(loss, tloss, "loss")
    agree(dx, tx.grad, "dx")
    for k, p in params.items():
        agree(grads[k], p.grad, k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(geom=reflection_geometry(), scale=st.integers(1, 3), seed=seeds)
def test_style_layers_agree_with_torch(dtype, geom, scale, seed):
    N, C, H, W, p = geom
    # not dout's seed: with dout ~ x instance norm's dx is O(eps)
    rng = np.random.default_rng(seed + 1)
    x = on_device(rng.standard_normal((N, C, H, W)) * 2 + 1, dtype)
    # two pixels normalise to -1, +1 whatever they are: dx is O(eps), all cancellation
    if H * W > 2:
        norm = tc.InstanceNorm2d(C, dtype=dtype)
        norm.params = {
            "weight": on_device(rng.normal(1, 0.5, C), dtype),
            "bias": on_device(rng.standard_normal(C), dtype),
        }
        compare_layer(
            norm,
            x,
            lambda x, weight, bias: F.instance_norm(x, weight=weight, bias=bias, eps=1e-5),
            seed,
        )
        compare_layer(
            tc.InstanceNorm2d(C, affine=False, dtype=dtype),
            x,
            lambda x: F.instance_norm(x, eps=1e-5),
            seed,
        )
    compare_layer(
        tc.Upsample2d(scale),
        x,
        lambda x: F.interpolate(x, scale_factor=scale, mode="nearest"),
        seed,
    )
    compare_layer(tc.ReflectionPad2d(p), x, lambda x: F.pad(x, (p, p, p, p), mode="reflect"), seed)


def torch_style_net(p):
    """tests.test_net.style_net written with torch.nn.functional, reading tinycnn's parameters."""
    def norm(x, name):
        return F.instance_norm(x, weight=p[name + ".weight"], bias=p[name + ".bias"], eps=1e-5)

    def forward(x):
        x = F.relu(norm(F.conv2d(x, p["conv1.weight"], p["conv1.bias"], padding=1), "in1"))
        body = F.relu(
            norm(F.conv2d(x, p["res1.conv1.weight"], p["res1.conv1.bias"], padding=1), "res1.in1")
        )
        x = x + F.conv2d(body, p["res1.conv2.weight"], p["res1.conv2.bias"], padding=1)
        x = F.pad(F.interpolate(x, scale_factor=2, mode="nearest"), (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, p["conv2.weight"], p["conv2.bias"])
    return forward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_style_network_agrees_with_torch(dtype):
    net = style_net(seed=3).astype(dtype)
    x = on_device(np.random.default_rng(0).standard_normal((2, 3, 5, 5)), dtype)
    out, cache = net.forward(x)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    dx, grads = net.backward(on_device(dout), cache)
    params = {k: tensor(v) for k, v in net.named_params()}
    tx = tensor(x)
    tout = torch_style_net(params)(tx)
    tout.backward(torch.from_numpy(dout))
    agree(out, tout, "output")
    agree(dx, tx.grad, "dx")
    for k, p in params.items():
        # zero in both (instance norm follows): round-off
        if k in ("conv1.bias", "res1.conv1.bias"):
            continue
        agree(grads[k], p.grad, k)
