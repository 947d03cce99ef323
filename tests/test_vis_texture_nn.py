"""Efros & Leung texture synthesis: exact on periodic textures, a verbatim copy of a
texture with unique windows when epsilon is 0, reproducible, and clear about bad sizes."""
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vis.texture_nn import near_best, source_windows, synthesize_nn, window_distances


def distinct_tile(rng, period):
    """A period x period RGB tile whose pixels all differ, in every channel, by at least 3 levels."""
    levels = rng.permutation(period * period) * 3
    return np.stack([levels, levels[::-1], (levels + 97) % 256], axis=-1).reshape(period, period, 3).astype(np.uint8)


def test_a_periodic_texture_is_reproduced_exactly(rng):
    # Every pixel of the tile differs, so one filled pixel fixes the phase: each new pixel's
    # exact matches (distance 0) all agree, and the output is the tiling, shifted.
    period, window = 8, 5
    tile = distinct_tile(rng, period)
    texture = np.tile(tile, (4, 4, 1))                       # 32 px: every phase has a whole window
    out = synthesize_nn(texture, 24, window=window, seed=3)
    (dy,), (dx,) = np.nonzero((tile == out[0, 0]).all(axis=-1))
    ys, xs = np.arange(24)[:, None], np.arange(24)[None, :]
    np.testing.assert_array_equal(out, tile[(ys + dy) % period, (xs + dx) % period])


def test_epsilon_zero_copies_a_texture_with_unique_windows(rng):
    # Noise has no repeated window, so the best match is unique and exact: grown from its seed,
    # the output is the source around the seed, verbatim, wherever the source has whole windows.
    texture = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    size, h = 9, 2
    copied = 0
    for seed in range(4):
        out = synthesize_nn(texture, size, window=2 * h + 1, epsilon=0.0, seed=seed)
        centre = (size - 3) // 2
        seed_patch = out[centre:centre + 3, centre:centre + 3]
        hits = [(y, x) for y in range(38) for x in range(38) if (texture[y:y + 3, x:x + 3] == seed_patch).all()]
        assert len(hits) == 1
        top, left = hits[0][0] - centre, hits[0][1] - centre    # where the output's corner sits in the source
        if min(top, left) >= h and max(top, left) + size <= 40 - h:
            np.testing.assert_array_equal(out, texture[top:top + size, left:left + size])
            copied += 1
    assert copied >= 2


def test_near_best_with_epsilon_zero_is_the_single_best_window(rng):
    texture = rng.random((20, 20, 3))
    patches, _ = source_windows(texture, 5)
    squares = (patches ** 2).sum(axis=2)
    for _ in range(10):
        q = rng.integers(len(patches))
        weight = rng.random(25) * (rng.random(25) < 0.5)
        weight[12] = 1.0
        template = patches[q] + 0.01 * rng.standard_normal((25, 3))
        d = window_distances(patches, squares, template, weight)
        direct = (weight[:, None] * (patches - template) ** 2).sum(axis=(1, 2)) / weight.sum() / 3
        np.testing.assert_allclose(d, direct, atol=1e-12)
        assert near_best(d, 0.0).tolist() == [int(np.argmin(direct))]
        assert len(near_best(d, 1e6)) == len(patches)


def test_every_output_pixel_is_a_source_pixel_and_a_seed_repeats(rng):
    texture = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = synthesize_nn(texture, 20, window=5, seed=1)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    colours = {tuple(c) for c in texture.reshape(-1, 3)}
    assert all(tuple(c) in colours for c in out.reshape(-1, 3))
    np.testing.assert_array_equal(out, synthesize_nn(texture, 20, window=5, seed=1))
    assert not np.array_equal(out, synthesize_nn(texture, 20, window=5, seed=2))


@pytest.mark.parametrize("shape, size, window, message", [
    ((8, 8, 3), 16, 11, "the texture (8x8 px) is smaller than the 11x11 window"),
    ((16, 16, 3), 16, 4, "the window must be an odd number of pixels"),
    ((16, 16, 3), 2, 5, "the output must be at least 3 px"),
])
def test_bad_sizes_are_one_line(shape, size, window, message):
    with pytest.raises(ValueError, match=r"^[^\n]*$") as e:
        synthesize_nn(np.zeros(shape, np.uint8), size, window=window)
    assert message in str(e.value)


def test_command_line_draws_and_refuses_a_too_small_texture(tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / "t.png")
    base = [sys.executable, "-m", "vis.texture_nn", "--texture", str(tmp_path / "t.png")]
    done = subprocess.run(base + ["--size", "12", "--window", "5", "--out", str(tmp_path / "o.png")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and (tmp_path / "o.png").is_file(), done.stderr
    done = subprocess.run(base + ["--size", "8"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "smaller than the 11x11 window" in done.stderr
