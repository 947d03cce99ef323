"""The CUDA kernels (tinycnn/engine/kernels.cu) == their NumPy twins == the naive loops.

The kernels run wherever CuPy's ``RawModule`` does: on a GPU, and on the CPU under the
strict CuPy stand-in (``TINYCNN_BACKEND=cupy PYTHONPATH=tests/strict_cupy``), which
compiles the same kernels.cu with g++ through a shim header. Each kernel's output is
brought back and compared with its NumPy twin run on NumPy (copies and ordered sums: to
the bit) and with tinycnn/naive.py. Where nvcc is installed the file also compiles the
kernels for the GPUs the project targets.
"""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn import backend, engine, naive
from tinycnn.backend import to_numpy
from tinycnn.engine import conv as engine_conv
from tinycnn.engine import kernels
from tinycnn.engine import pool as engine_pool
from tinycnn.gradcheck import rel_error
from tinycnn.im2col import col2im, im2col, out_size, pad_input, window_offsets

from .conftest import on_device
from .strategies import conv_geometry, pool_geometry, seeds

dtypes = st.sampled_from([np.float64, np.float32])
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-4}


def _why_no_kernels():
    """Why the kernels cannot run in this test session (None when they can)."""
    if backend.name() != "cupy":
        return ("runs under make test's strict CuPy stand-in "
                "(TINYCNN_BACKEND=cupy PYTHONPATH=tests/strict_cupy) or on a GPU")
    import cupy
    if not hasattr(cupy, "RawModule"):
        return "this CuPy (the strict stand-in) has no RawModule yet to load kernels.cu"
    if getattr(cupy, "_standin", False) and shutil.which("g++") is None:
        return "the strict stand-in compiles kernels.cu with g++, which is not installed"
    return None


needs_kernels = pytest.mark.skipif(_why_no_kernels() is not None,
                                   reason=str(_why_no_kernels()))


@needs_kernels
@given(conv_geometry(), seeds, dtypes)
def test_im2col_and_col2im_kernels_match_numpy_and_naive_loops(geom, seed, dtype):
    N, C, H, W, F, K, stride, pad = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    oh, ow = out_size(H, K, stride, pad), out_size(W, K, stride, pad)
    cols = to_numpy(kernels.im2col(on_device(x), K, K, stride, pad, oh, ow))
    np.testing.assert_array_equal(cols, im2col(x, K, K, stride, pad))
    c = rng.standard_normal(cols.shape).astype(dtype)
    back = to_numpy(kernels.col2im(on_device(c), x.shape, K, K, stride, pad, oh, ow))
    # the gather adds what NumPy's scatter adds, in NumPy's order
    np.testing.assert_array_equal(back, col2im(c, x.shape, K, K, stride, pad))
    # and both are the naive loops' convolution and its input gradient
    w = rng.standard_normal((F, C, K, K))
    out = (w.reshape(F, -1) @ cols).reshape(F, N, oh, ow).transpose(1, 0, 2, 3)
    x64 = x.astype(np.float64)
    assert rel_error(out, naive.conv_forward_naive(x64, w, np.zeros(F), stride, pad)) \
        < TOLERANCE[dtype]
    dout = rng.standard_normal((N, F, oh, ow))
    d = dout.transpose(1, 0, 2, 3).reshape(F, -1)
    dx = to_numpy(kernels.col2im(on_device(w.reshape(F, -1).T @ d), x.shape, K, K, stride, pad,
                                 oh, ow))
    assert rel_error(dx, naive.conv_backward_naive(dout, x64, w, stride, pad)[0]) < 1e-12


def pool_input(geom, seed, dtype):
    """A small-integer input (ties everywhere), -inf padded as MaxPool2d pads it."""
    N, C, H, W, K, stride, pad, ceil_mode = geom
    x = np.random.default_rng(seed).integers(0, 3, (N, C, H, W)).astype(dtype)
    oh, ow, eh, ew = tc.MaxPool2d(K, stride, pad, ceil_mode)._geometry(H, W)
    return x, pad_input(x, pad, pad, -np.inf, eh, ew), oh, ow


@needs_kernels
@given(pool_geometry(), seeds, dtypes)
def test_max_pool_kernels_match_numpy_and_naive_loops(geom, seed, dtype):
    N, C, H, W, K, stride, pad, ceil_mode = geom
    x, x_pad, oh, ow = pool_input(geom, seed, dtype)
    out, winner = (to_numpy(a) for a in kernels.max_pool(on_device(x_pad), K, stride, oh, ow))
    expected, expected_winner = engine_pool.max_pool(x_pad, K, stride, oh, ow)
    np.testing.assert_array_equal(out, expected)
    assert winner.dtype == expected_winner.dtype == np.int8
    np.testing.assert_array_equal(winner, expected_winner)          # the same first maximum
    np.testing.assert_array_equal(out, naive.maxpool_forward_naive(x, K, stride, pad, ceil_mode))
    dout = np.random.default_rng(seed + 1).standard_normal(out.shape).astype(dtype)
    dx_pad = to_numpy(kernels.max_pool_backward(on_device(dout), on_device(winner), x_pad.shape,
                                                K, stride))
    spread = engine_pool.spread(np.zeros(x_pad.shape, dtype), window_offsets(K, K, stride, oh, ow),
                                stride, lambda k: (expected_winner == k) * dout)
    np.testing.assert_array_equal(dx_pad, spread)
    np.testing.assert_allclose(dx_pad[:, :, pad:pad + H, pad:pad + W],
                               naive.maxpool_backward_naive(dout, x, K, stride, pad, ceil_mode),
                               rtol=1e-6, atol=1e-6)


@needs_kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_kernels_with_128_offsets_or_more_keep_winners_in_ints(dtype):
    # a 12 x 12 window has 144 offsets: past a byte, as engine.pool.max_pool switches to int32
    geom = (1, 2, 13, 14, 12, 1, 0, False)
    x, x_pad, oh, ow = pool_input(geom, 3, dtype)
    out, winner = (to_numpy(a) for a in kernels.max_pool(on_device(x_pad), 12, 1, oh, ow))
    expected, expected_winner = engine_pool.max_pool(x_pad, 12, 1, oh, ow)
    assert winner.dtype == expected_winner.dtype == np.int32
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(winner, expected_winner)
    dout = np.random.default_rng(4).standard_normal(out.shape).astype(dtype)
    dx = to_numpy(engine.max_pool_backward(on_device(dout), on_device(winner), x.shape, 12, 1, 0))
    np.testing.assert_allclose(dx, naive.maxpool_backward_naive(dout, x, 12, 1),
                               rtol=1e-6, atol=1e-6)


@needs_kernels
@given(st.sampled_from(tc.layers.RELU_RULES), seeds, dtypes)
def test_relu_backward_kernel_matches_the_three_rules(rule, seed, dtype):
    rng = np.random.default_rng(seed)
    dout = rng.integers(-2, 3, (2, 3, 4, 5)).astype(dtype)     # zeros and negatives: -0 too
    positive_x = rng.standard_normal(dout.shape) > 0
    expected = {"backprop": positive_x * dout, "deconvnet": (dout > 0) * dout,
                "guided": positive_x * (dout > 0) * dout}[rule]
    dx = to_numpy(kernels.relu_backward(on_device(dout), on_device(positive_x), rule))
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(np.signbit(dx), np.signbit(expected))


@needs_kernels
@given(seeds, dtypes)
def test_relu_forward_kernel_matches_maximum_and_the_mask(seed, dtype):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, (2, 3, 4, 5)).astype(dtype)
    x.flat[:4] = [-0.0, np.nan, np.inf, -np.inf]                # -0 gives +0, NaN stays NaN
    out, positive_x = kernels.relu_forward(on_device(x))
    np.testing.assert_array_equal(to_numpy(out), np.maximum(x, 0))
    np.testing.assert_array_equal(np.signbit(to_numpy(out)), np.signbit(np.maximum(x, 0)))
    assert to_numpy(positive_x).dtype == bool
    np.testing.assert_array_equal(to_numpy(positive_x), x > 0)


def _without_kernels(f, *args, **kwargs):
    kernels.use(False)
    try:
        return f(*args, **kwargs)
    finally:
        kernels.use(None)


@needs_kernels
@given(seeds, dtypes, st.integers(1, 50), st.floats(1e-4, 1.0),
       st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.99)]))
def test_adam_kernel_matches_the_array_code_to_the_bit(seed, dtype, t, lr, betas):
    from tinycnn.optim import adam_step
    rng = np.random.default_rng(seed)
    g, m, v = (rng.standard_normal((3, 5, 7)).astype(dtype) for _ in range(3))
    v = v * v
    expected = [on_device(a) for a in (g, m, v)]
    got = [on_device(a) for a in (g, m, v)]
    want = _without_kernels(adam_step, *expected, t, lr, betas=betas, eps=1e-8)
    step = adam_step(*got, t, lr, betas=betas, eps=1e-8)
    for a, b in [(step, want), (got[1], expected[1]), (got[2], expected[2])]:   # step, m, v
        assert to_numpy(a).dtype == dtype
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


@needs_kernels
@given(seeds, dtypes, st.sampled_from([2.0, 1.0, 1.5, 3.0]), st.integers(1, 6),
       st.integers(1, 6), st.floats(0.01, 10.0))
def test_tv_kernel_matches_the_array_code(seed, dtype, beta, h, w, weight):
    from vis.objectives import tv_loss
    x = on_device(np.random.default_rng(seed).standard_normal((2, 3, h, w)).astype(dtype))
    want_loss, want_dx = _without_kernels(tv_loss, x, weight, beta=beta)
    loss, dx = tv_loss(x, weight, beta=beta)
    assert to_numpy(dx).dtype == dtype
    if beta == 2:       # sums and products in NumPy's order: the same bits
        assert float(loss) == float(want_loss)
        np.testing.assert_array_equal(to_numpy(dx), to_numpy(want_dx))
    else:               # pow differs in its last bits between libraries (libm, NumPy's SIMD)
        assert abs(float(loss) - float(want_loss)) <= TOLERANCE[dtype] * abs(float(want_loss))
        np.testing.assert_allclose(to_numpy(dx), to_numpy(want_dx), rtol=TOLERANCE[dtype],
                                   atol=TOLERANCE[dtype])


@needs_kernels
@settings(max_examples=10)
@given(conv_geometry(), pool_geometry(), seeds, dtypes)
def test_the_engine_hands_conv_and_pooling_to_the_kernels(cgeom, pgeom, seed, dtype):
    # the layers' engine path with the kernels on == with them off == the naive loops
    N, C, H, W, F, K, stride, pad = cgeom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((F, C, K, K)).astype(dtype)
    b = rng.standard_normal(F).astype(dtype)
    oh, ow = out_size(H, K, stride, pad), out_size(W, K, stride, pad)
    dout = rng.standard_normal((N, F, oh, ow)).astype(dtype)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    ndx, ndw, ndb = naive.conv_backward_naive(dout.astype(np.float64), x64, w64, stride, pad)
    expected_out = naive.conv_forward_naive(x64, w64, b.astype(np.float64), stride, pad)
    for on in (True, False):
        kernels.use(on)
        try:
            out = engine.conv2d_forward(*map(on_device, (x, w, b)), stride, pad)
            dx, grads = engine.conv2d_backward(*map(on_device, (dout, x, w)), stride, pad)
        finally:
            kernels.use(None)
        assert rel_error(to_numpy(out), expected_out) < TOLERANCE[dtype]
        assert rel_error(to_numpy(dx), ndx) < TOLERANCE[dtype]
        # sums over images and positions: round-off relative to the terms, not to a sum that
        # nearly cancels (tests/test_engine.py)
        terms = float(np.abs(dout).sum(axis=(0, 2, 3)).max())
        assert rel_error(to_numpy(grads["weight"]), ndw, floor=terms * float(np.abs(x).max())) \
            < TOLERANCE[dtype]
        assert rel_error(to_numpy(grads["bias"]), ndb, floor=terms) < TOLERANCE[dtype]
    N, C, H, W, K, stride, pad, ceil_mode = pgeom
    x, x_pad, oh, ow = pool_input(pgeom, seed, dtype)
    out, winner = engine.max_pool(on_device(x_pad), K, stride, oh, ow)
    np.testing.assert_array_equal(to_numpy(out),
                                  naive.maxpool_forward_naive(x, K, stride, pad, ceil_mode))
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = engine.max_pool_backward(on_device(dout), winner, x.shape, K, stride, pad)
    np.testing.assert_allclose(to_numpy(dx),
                               naive.maxpool_backward_naive(dout, x, K, stride, pad, ceil_mode),
                               rtol=1e-6, atol=1e-6)


@needs_kernels
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_by_kernels_one_image_at_a_time_matches_naive_loops(dtype, monkeypatch):
    # a byte budget of one image's columns: the kernel path goes through the batch in chunks
    N, C, H, W, F, K, stride, pad = 3, 2, 6, 5, 4, 3, 2, 1
    oh, ow = out_size(H, K, stride, pad), out_size(W, K, stride, pad)
    monkeypatch.setitem(engine_conv.CHUNK_BYTES, "cupy", C * K * K * oh * ow * dtype().itemsize)
    assert len(engine_conv._chunks(on_device(np.ones((N, C, H, W), dtype)), K, stride, pad,
                                   ow)) == N
    rng = np.random.default_rng(7)
    x, w, b = (rng.standard_normal(s) for s in ((N, C, H, W), (F, C, K, K), (F,)))
    dout = rng.standard_normal((N, F, oh, ow))
    out = engine.conv2d_forward(*(on_device(a, dtype) for a in (x, w, b)), stride, pad)
    dx, grads = engine.conv2d_backward(*(on_device(a, dtype) for a in (dout, x, w)), stride, pad)
    assert rel_error(to_numpy(out), naive.conv_forward_naive(x, w, b, stride, pad)) \
        < TOLERANCE[dtype]
    for got, want in zip((dx, grads["weight"], grads["bias"]),
                         naive.conv_backward_naive(dout, x, w, stride, pad)):
        assert rel_error(to_numpy(got), want) < TOLERANCE[dtype]


@needs_kernels
def test_the_switch_turns_the_kernels_off(monkeypatch):
    from tinycnn.optim import adam_step
    from vis.objectives import tv_loss
    # a switch that switches nothing would pass every comparison above
    called = []
    names = ("im2col", "col2im", "max_pool", "max_pool_backward", "relu_forward",
             "relu_backward", "adam_step", "tv_loss")
    for name in names:
        real = getattr(kernels, name)
        monkeypatch.setattr(kernels, name,
                            lambda *a, _real=real, _name=name: called.append(_name) or _real(*a))
    x = on_device(np.random.default_rng(0).standard_normal((1, 2, 6, 6)))
    w = on_device(np.ones((3, 2, 3, 3)))

    def run():
        called.clear()
        out = engine.conv2d_forward(x, w, on_device(np.zeros(3)), 1, 1)
        engine.conv2d_backward(out, x, w, 1, 1)
        pooled, winner = engine.max_pool(x, 2, 2, 3, 3)
        engine.max_pool_backward(pooled, winner, x.shape, 2, 2, 0)
        tc.ReLU().backward(*tc.ReLU().forward(x), "guided")
        adam_step(x, x * 0, x * 0, 1, 0.1)
        tv_loss(x, 1.0)
        return sorted(set(called))

    assert run() == sorted(names)
    monkeypatch.setenv("TINYCNN_KERNELS", "0")          # read at each call
    assert run() == []
    monkeypatch.delenv("TINYCNN_KERNELS")
    kernels.use(False)
    try:
        assert run() == []
    finally:
        kernels.use(None)
    # float16 has no kernel: the array code computes it
    assert not kernels.active(on_device(np.ones(3, np.float16)))


@pytest.mark.skipif(shutil.which("nvcc") is None,
                    reason="nvcc is not installed: the kernels' GPU compile is checked where "
                           "it is")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_kernels_compile_with_nvcc_without_a_warning(arch, tmp_path):
    result = subprocess.run(
        ["nvcc", "--ptx", f"-arch={arch}", "--Werror", "all-warnings", str(kernels.SOURCE),
         "-o", str(tmp_path / "kernels.ptx")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


def test_kernels_cu_follows_the_contract():
    # what lets one text compile with nvcc, NVRTC and g++ through the stand-in's shim: plain
    # extern "C" names with a type suffix, 1-D threads, no shared memory, atomics or printf
    source = Path(kernels.SOURCE).read_text()
    names = re.findall(r'extern "C" __global__ void (\w+)\(', source)
    assert names and all(n.endswith(("_f32", "_f64")) for n in names)
    assert {n[:-4] for n in names if n.endswith("_f32")} == \
        {n[:-4] for n in names if n.endswith("_f64")}
    code = re.sub(r"//[^\n]*", "", source)
    for banned in ("__shared__", "__syncthreads", "atomic", "printf", "malloc", "#include"):
        assert banned not in code, banned
    assert max(len(line) for line in source.splitlines()) <= 99
