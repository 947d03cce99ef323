"""Efros & Leung texture synthesis: exact on periodic textures, a verbatim copy of a
texture with unique windows when epsilon is 0, on a real texture a copy of the source around
the seed and a mosaic beyond, its pieces counted as a flood fill counts them, reproducible, and
clear about bad sizes and crops."""
import argparse
import subprocess
import sys
from collections import deque

import numpy as np
import pytest
from PIL import Image

from vis.texture_nn import (
    copied_pieces,
    crop_box,
    largest_copied_piece,
    load_texture,
    near_best,
    source_windows,
    synthesize_nn,
    window_distances,
)


def distinct_tile(rng, period):
    """A period x period RGB tile whose pixels all differ, in every channel, by at least 3
    levels."""
    levels = rng.permutation(period * period) * 3
    tile = np.stack([levels, levels[::-1], (levels + 97) % 256], axis=-1)
    return tile.reshape(period, period, 3).astype(np.uint8)


def test_a_periodic_texture_is_reproduced_exactly(rng):
    # Every pixel of the tile differs, so one filled pixel fixes the phase: each new pixel's
    # exact matches (distance 0) all agree, and the output is the tiling, shifted.
    period, window = 8, 5
    tile = distinct_tile(rng, period)
    texture = np.tile(tile, (4, 4, 1))              # 32 px: every phase has a whole window
    out, _ = synthesize_nn(texture, 24, window=window, seed=3)
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
        out, where = synthesize_nn(texture, size, window=2 * h + 1, epsilon=0.0, seed=seed)
        centre = (size - 3) // 2
        seed_patch = out[centre:centre + 3, centre:centre + 3]
        hits = [(y, x) for y in range(38) for x in range(38)
                if (texture[y:y + 3, x:x + 3] == seed_patch).all()]
        assert len(hits) == 1
        # where the output's corner sits in the source
        top, left = hits[0][0] - centre, hits[0][1] - centre
        if min(top, left) >= h and max(top, left) + size <= 40 - h:
            np.testing.assert_array_equal(out, texture[top:top + size, left:left + size])
            assert largest_copied_piece(where) == size * size      # one piece: the whole output
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


def test_every_output_pixel_is_the_source_pixel_it_names_and_a_seed_repeats(rng):
    texture = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out, where = synthesize_nn(texture, 20, window=5, seed=1)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8 and where.shape == (20, 20, 2)
    np.testing.assert_array_equal(out, texture[where[..., 0], where[..., 1]])
    # a window's centre lies at least h = 2 px inside the source, except the 3x3 seed's pixels
    inner = ((where >= 2) & (where < 14)).all(axis=-1)
    assert (~inner).sum() <= 9
    again, again_where = synthesize_nn(texture, 20, window=5, seed=1)
    np.testing.assert_array_equal(out, again)
    np.testing.assert_array_equal(where, again_where)
    assert not np.array_equal(out, synthesize_nn(texture, 20, window=5, seed=2)[0])


def test_grey_as_rgb_is_grown_once_and_its_sources_are_kept(rng):
    grey = rng.integers(0, 256, (16, 16, 1), dtype=np.uint8)
    out, where = synthesize_nn(np.repeat(grey, 3, axis=2), 12, window=5, seed=4)
    alone, alone_where = synthesize_nn(grey, 12, window=5, seed=4)
    np.testing.assert_array_equal(out, np.repeat(alone, 3, axis=2))
    np.testing.assert_array_equal(where, alone_where)


def flood_fill_sizes(where):
    """The sizes of the 4-connected sets of pixels with one offset where[i, j] - (i, j), by a
    breadth-first search pixel by pixel: the reference for copied_pieces."""
    H, W = where.shape[:2]
    offset = {(i, j): tuple(where[i, j] - (i, j)) for i in range(H) for j in range(W)}
    seen, sizes = set(), []
    for start in offset:
        if start in seen:
            continue
        seen.add(start)
        queue, n = deque([start]), 0
        while queue:
            i, j = queue.popleft()
            n += 1
            for nb in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
                if nb in offset and nb not in seen and offset[nb] == offset[(i, j)]:
                    seen.add(nb)
                    queue.append(nb)
        sizes.append(n)
    return sizes


def test_copied_pieces_agree_with_a_flood_fill(rng):
    ys, xs = np.indices((12, 15))
    for _ in range(30):
        # a few offsets, in blobs, so that pieces of one offset touch diagonally or lie apart
        shifts = rng.integers(-3, 40, (3, 2))
        choice = blobs(rng, (12, 15), len(shifts))
        where = np.stack([ys, xs], axis=-1) + shifts[choice]
        sizes = flood_fill_sizes(where)
        assert sorted(np.bincount(copied_pieces(where).ravel())) == sorted(sizes)
        assert largest_copied_piece(where) == max(sizes)
    assert largest_copied_piece(np.stack([ys, xs], axis=-1) + 5) == 12 * 15
    diagonal = np.stack([ys, xs + 100 * ((ys + xs) % 2)], axis=-1)   # a checkerboard of two
    assert largest_copied_piece(diagonal) == 1


def blobs(rng, shape, k):
    """(shape) ints in [0, k): random labels, smoothed into blobs by a majority of 3x3."""
    labels = rng.integers(0, k, shape)
    counts = [np.pad(labels == c, 1).astype(int) for c in range(k)]
    votes = [sum(c[1 + dy:1 + dy + shape[0], 1 + dx:1 + dx + shape[1]]
                 for dy in (-1, 0, 1) for dx in (-1, 0, 1)) for c in counts]
    return np.argmax(votes, axis=0)


def test_a_real_texture_grows_from_a_copy_of_the_source_into_a_mosaic():
    # Brick (scikit-image, CC0, shipped), as in the figure but smaller. Around the seed every
    # filled pixel matches its own source place exactly (d = 0), so the seed grows as a copy
    # until its window leaves the 32 px source: one piece of at most 22 x 22 window centres (and
    # the seed's 9 pixels), and most of that. The rest is a mosaic of small pieces.
    texture = load_texture("textures/brick.png", 32, (0, 200, 150))
    out, where = synthesize_nn(texture, 64, window=11, seed=0)
    np.testing.assert_array_equal(out, texture[where[..., 0], where[..., 1]])
    inner = (32 - 10) ** 2
    assert 0.5 * inner <= largest_copied_piece(where) <= inner + 9
    sizes = np.bincount(copied_pieces(where).ravel())
    assert len(sizes) > 200 and np.median(sizes) < 10


def test_crops_are_read_as_squares_and_refused_in_one_line(tmp_path):
    assert crop_box("centre") is None and crop_box("3,4,50") == (3, 4, 50)
    for bad in ("3,4", "a,b,c", "-1,0,5", "0,0,0"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"^[^\n]*$"):
            crop_box(bad)
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:30, 20:40] = 200
    Image.fromarray(image).save(tmp_path / "t.png")
    np.testing.assert_array_equal(load_texture(str(tmp_path / "t.png"), 20, (20, 10, 20)),
                                  image[10:30, 20:40])
    with pytest.raises(ValueError, match=r"^[^\n]*t\.png: --crop 50,0,20 reaches outside its "
                                         r"60x40 pixels$"):
        load_texture(str(tmp_path / "t.png"), 20, (50, 0, 20))


@pytest.mark.parametrize("shape, size, window, message", [
    ((8, 8, 3), 16, 11, "the texture (8x8 px) is smaller than the 11x11 window"),
    ((16, 16, 3), 16, 4, "the window must be an odd number of pixels"),
    ((16, 16, 3), 2, 5, "the output must be at least 3 px"),
])
def test_bad_sizes_are_one_line(shape, size, window, message):
    with pytest.raises(ValueError, match=r"^[^\n]*$") as e:
        synthesize_nn(np.zeros(shape, np.uint8), size, window=window)
    assert message in str(e.value)


def test_command_line_draws_and_refuses_bad_sizes_and_crops(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "t.png")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "vis.texture_nn", "--texture",
                               str(tmp_path / "t.png"), *args],
                              capture_output=True, text=True, timeout=120, check=False)

    done = run("--size", "12", "--window", "5", "--out", str(tmp_path / "o.png"))
    assert done.returncode == 0 and (tmp_path / "o.png").is_file(), done.stderr
    for args, message in [(["--size", "8"], "smaller than the 11x11 window"),
                          (["--crop", "0,0,10", "0,0,10"], "--crop gives 2 values for 1 textures"),
                          (["--window", "5", "7"], "--window gives 2 values for 1 textures"),
                          (["--crop", "15,0,10"], "--crop 15,0,10 reaches outside its 20x20"),
                          (["--crop", "1,2"], "'1,2' is not X,Y,SIDE")]:
        done = run(*args, "--out", str(tmp_path / "x.png"))
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (args, done.stderr)
        assert message in done.stderr and not (tmp_path / "x.png").exists()
