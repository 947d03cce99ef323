"""The engine (tinycnn/engine) == the layers' clear path == the naive loops.

Each case runs the same layer twice, with the engine on and off, and compares both
with tinycnn/naive.py, in float64 and float32. The byte budget is shrunk so that the
engine's chunked and banded convolutions run on these small shapes too.
"""
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import tinycnn as tc
from tinycnn import backend, engine, naive
from tinycnn.backend import to_numpy
from tinycnn.engine import conv as engine_conv
from tinycnn.gradcheck import rel_error

from .conftest import on_device
from .strategies import conv_geometry, pool_geometry, seeds

TOLERANCE = {np.float64: 1e-12, np.float32: 1e-4}
dtypes = st.sampled_from([np.float64, np.float32])


def conv_both_ways(conv, x, dout, param_grads=True):
    """{engine on: (out, dx, grads), engine off: (...)} for one Conv2d."""
    runs = {}
    for on in (True, False):
        with engine.switched(on):
            out, cache = conv.forward(on_device(x))
            dx, grads = conv.backward(on_device(dout), cache, param_grads=param_grads)
        runs[on] = (to_numpy(out), to_numpy(dx), {k: to_numpy(v) for k, v in grads.items()})
    return runs


def assert_conv_matches_naive(conv, x, dout, stride, pad, dtype, param_grads=True):
    w, b = (to_numpy(conv.params[k]).astype(np.float64) for k in ("weight", "bias"))
    expected_out = naive.conv_forward_naive(x.astype(np.float64), w, b, stride, pad)
    ndx, ndw, ndb = naive.conv_backward_naive(
        dout.astype(np.float64), x.astype(np.float64), w, stride, pad
    )
    for on, (out, dx, grads) in conv_both_ways(conv, x, dout, param_grads).items():
        where = "engine" if on else "clear path"
        assert out.dtype == dtype and dx.dtype == dtype, where
        assert rel_error(out, expected_out) < TOLERANCE[dtype], where
        assert rel_error(dx, ndx) < TOLERANCE[dtype], where
        if param_grads:
            # sums over images and positions: their round-off is relative to the size of the
            # terms summed, not to a sum that nearly cancels (a bias gradient of -0.0047 from
            # 14 terms near 1 is off by 1e-4 of itself in float32)
            terms = float(np.abs(dout).sum(axis=(0, 2, 3)).max())
            assert rel_error(grads["weight"], ndw, floor=terms * float(np.abs(x).max())) \
                < TOLERANCE[dtype], where
            assert rel_error(grads["bias"], ndb, floor=terms) < TOLERANCE[dtype], where
        else:
            assert grads == {}, where


def conv_case(geom, seed, dtype):
    N, C, H, W, F, K, stride, pad = geom
    rng = np.random.default_rng(seed)
    conv = tc.Conv2d(C, F, K, stride, pad, seed=seed, dtype=dtype)
    conv.params["bias"] = on_device(rng.standard_normal(F), dtype)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    oh, ow = (tc.im2col.out_size(n, K, stride, pad) for n in (H, W))
    dout = rng.standard_normal((N, F, oh, ow)).astype(dtype)
    return conv, x, dout


@given(conv_geometry(), seeds, dtypes, st.booleans())
@example((2, 1, 1, 3, 1, 1, 1, 2), 246770, np.float32, True)    # a bias gradient that cancels
def test_conv_engine_and_clear_path_match_naive_loops(geom, seed, dtype, param_grads):
    conv, x, dout = conv_case(geom, seed, dtype)
    assert_conv_matches_naive(conv, x, dout, geom[6], geom[7], dtype, param_grads)


@contextmanager
def budget(nbytes):
    """The engine's byte budget for the active backend set to ``nbytes``, then restored."""
    name = backend.name()
    saved = engine_conv.CHUNK_BYTES[name]
    engine_conv.CHUNK_BYTES[name] = nbytes
    try:
        yield
    finally:
        engine_conv.CHUNK_BYTES[name] = saved


@given(conv_geometry(), seeds, dtypes, st.integers(1, 3))
def test_conv_in_bands_of_rows_matches_naive_loops(geom, seed, dtype, rows):
    # a budget of ``rows`` output rows' columns, counted in the dtype's own bytes (what a
    # 9x9 convolution over a large image meets): the engine works band by band
    N, C, H, W, F, K, stride, pad = geom
    conv, x, dout = conv_case(geom, seed, dtype)
    with budget(
        rows * C * K * K * engine_conv.col_width(W, K, stride, pad) * np.dtype(dtype).itemsize
    ):
        assert engine_conv.rows_per_band(on_device(x), K, stride, pad) == rows
        assert_conv_matches_naive(conv, x, dout, stride, pad, dtype)


@given(conv_geometry(), seeds, dtypes)
def test_conv_a_few_images_at_a_time_matches_naive_loops(geom, seed, dtype):
    # a budget of one image's columns: the batch goes through in chunks of one image
    N, C, H, W, F, K, stride, pad = geom
    conv, x, dout = conv_case((N + 1, C, H, W, F, K, stride, pad), seed, dtype)
    oh = tc.im2col.out_size(H, K, stride, pad)
    with budget(
        C * K * K * oh * engine_conv.col_width(W, K, stride, pad) * np.dtype(dtype).itemsize
    ):
        assert_conv_matches_naive(conv, x, dout, stride, pad, dtype)


@pytest.mark.parametrize("param_grads", [True, False])
def test_pointwise_conv_matches_naive_loops_at_batch_three(param_grads):
    # the engine's batched product for 1x1 convolutions (stride 1, no padding)
    conv, x, dout = conv_case((3, 4, 5, 7, 6, 1, 1, 0), 5, np.float64)
    assert_conv_matches_naive(conv, x, dout, 1, 0, np.float64, param_grads)


@given(pool_geometry(), seeds, dtypes)
def test_maxpool_engine_and_clear_path_match_naive_loops(geom, seed, dtype):
    N, C, H, W, K, stride, pad, ceil_mode = geom
    rng = np.random.default_rng(seed)
    # small integers make ties common: both must route to the first maximum
    x = rng.integers(0, 3, (N, C, H, W)).astype(dtype)
    pool = tc.MaxPool2d(K, stride, pad, ceil_mode)
    expected = naive.maxpool_forward_naive(x, K, stride, pad, ceil_mode)
    dout = rng.standard_normal(expected.shape).astype(dtype)
    expected_dx = naive.maxpool_backward_naive(dout, x, K, stride, pad, ceil_mode)
    for on in (True, False):
        with engine.switched(on):
            out, cache = pool.forward(on_device(x))
            dx, _ = pool.backward(on_device(dout), cache)
        np.testing.assert_array_equal(to_numpy(out), expected)
        np.testing.assert_allclose(to_numpy(dx), expected_dx, rtol=1e-6, atol=1e-6)


def test_the_switch_runs_the_clear_path(monkeypatch):
    # with the engine off, Conv2d must not call it (a switch that switches nothing would pass
    # every comparison above)
    called = []
    monkeypatch.setattr(engine, "conv2d_forward", lambda *a: called.append(a))
    conv, x, _ = conv_case((1, 2, 5, 5, 3, 3, 1, 1), 0, np.float64)
    with engine.switched(False):
        conv.forward(on_device(x))
    assert called == []
    with engine.switched(True):
        conv.forward(on_device(x))
    assert len(called) == 1


@given(conv_geometry(), seeds)
def test_wide_columns_are_im2col_plus_junk_and_their_adjoint_is_exact(geom, seed):
    # stride 1: the engine lays out W + 2*pad columns per output row; the first OW are
    # im2col's, and wide_col2im is wide_im2col's adjoint
    N, C, H, W, _, K, _, pad = geom
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    oh, ow = (tc.im2col.out_size(n, K, 1, pad) for n in (H, W))
    cw = engine_conv.col_width(W, K, 1, pad)
    wide = to_numpy(engine_conv.wide_im2col(on_device(x), K, K, 1, pad))
    clear = to_numpy(tc.im2col.im2col(on_device(x), K, K, 1, pad))
    np.testing.assert_array_equal(
        wide.reshape(-1, N, oh, cw)[..., :ow], clear.reshape(-1, N, oh, ow)
    )
    c = rng.standard_normal(wide.shape)
    back = to_numpy(engine_conv.wide_col2im(on_device(c), x.shape, K, K, 1, pad))
    assert np.isclose((wide * c).sum(), (x * back).sum(), rtol=1e-10, atol=1e-10)


def test_imports_run_one_way():
    """The lesson may call the engine and the readers; the readers import nothing of the lesson
    but the backend, and the engine nothing but the backend and im2col's window arithmetic."""
    import ast
    from pathlib import Path
    root = Path(tc.__file__).parent
    allowed = {"io": {"backend", "io"}, "engine": {"backend", "im2col", "engine"}}
    wrong = []
    for package, ok in allowed.items():
        for path in (root / package).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level:
                    # level 1: a sibling in the package; level 2: a module of tinycnn itself
                    target = package if node.level == 1 else (node.module or "").split(".")[0]
                    names = [target] if node.module or node.level == 1 else \
                        [a.name for a in node.names]
                    wrong += [f"{path.name}: {n}" for n in names if n not in ok]
                elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinycnn"):
                    wrong.append(f"{path.name}: {node.module}")
    assert wrong == []


@given(pool_geometry(), seeds, dtypes)
def test_max_pool_backward_is_the_clear_paths_gradient(geom, seed, dtype):
    # engine.max_pool_backward (one kernel on a GPU) == MaxPool2d's clear path, to the bit
    N, C, H, W, K, stride, pad, ceil_mode = geom
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (N, C, H, W)).astype(dtype)       # ties: the first maximum wins
    pool = tc.MaxPool2d(K, stride, pad, ceil_mode)
    with engine.switched(False):
        out, cache = pool.forward(on_device(x))
        dout = on_device(rng.standard_normal(out.shape), dtype)
        expected, _ = pool.backward(dout, cache)
    winner, x_shape = cache
    dx = engine.max_pool_backward(dout, on_device(winner, np.int8), x_shape, K, stride, pad)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(to_numpy(dx), to_numpy(expected))


@given(st.sampled_from(tc.layers.RELU_RULES), seeds, dtypes)
def test_relu_backward_on_the_kernel_is_the_clear_path(rule, seed, dtype):
    # ReLU.backward hands CuPy arrays to one kernel launch: the same numbers, signed zeros too
    rng = np.random.default_rng(seed)
    x = on_device(rng.standard_normal((2, 3, 4, 4)), dtype)
    dout = on_device(rng.integers(-2, 3, (2, 3, 4, 4)), dtype)      # zeros, -0 included
    if not engine.kernels.active(dout):
        pytest.skip("the kernels run on CuPy arrays: make test's strict CuPy stand-in runs this")
    relu = tc.ReLU()
    _, positive_x = relu.forward(x)
    runs = []
    for on in (True, False):
        with engine.switched(on):
            runs.append(to_numpy(relu.backward(dout, positive_x, rule)[0]))
    assert runs[0].dtype == dtype
    np.testing.assert_array_equal(runs[0], runs[1])
    np.testing.assert_array_equal(np.signbit(runs[0]), np.signbit(runs[1]))


@pytest.mark.parametrize("on", [True, False])
def test_relu_backward_names_an_unknown_rule(on):
    relu = tc.ReLU()
    _, positive_x = relu.forward(on_device(np.ones(2)))
    with engine.switched(on), pytest.raises(ValueError, match="unknown ReLU backward rule 'guidd'"):
        relu.backward(on_device(np.ones(2)), positive_x, "guidd")
