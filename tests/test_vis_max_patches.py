"""Receptive fields by hand, top patches and non-maximum suppression against brute-force
searches, and the choice of selective channels on a case with a known answer."""
import numpy as np
import pytest

import tinycnn as tc
from tinycnn.backend import asarray, to_numpy
from tinycnn.models import cifar10_net, squeezenet1_1
from tinycnn.io.images import resize_center_crop
from vis.max_patches import (consistency, crop, crop_boxes, field_boxes, inside_fraction,
                              overlap, pick, receptive_field, repeated, search, suppress,
                              top_patches, view_frames, views)


@pytest.mark.parametrize("layer,expected", [
    ("conv1", (3, 2, 0)), ("pool1", (7, 4, 0)),
    ("fire2.squeeze", (7, 4, 0)), ("fire2.expand.1x1.conv", (7, 4, 0)),
    ("fire2.expand.3x3.conv", (15, 4, 4)), ("fire2", (15, 4, 4)), ("fire3", (23, 4, 8)),
    ("pool3", (31, 8, 8)), ("fire9", (207, 16, 88)),
])
def test_squeezenet_receptive_fields_by_hand(layer, expected):
    # e.g. fire2: pool1's field 7 (jump 4) plus a 3x3 conv with padding 1: 7 + 2*4 = 15, offset 1*4
    assert receptive_field(squeezenet1_1(weights=False), layer) == expected


@pytest.mark.parametrize("layer,expected", [
    ("conv1", (5, 1, 2)), ("pool1", (6, 2, 2)), ("conv2", (10, 2, 4)), ("pool3", (16, 4, 6)),
    ("relu5", (32, 4, 14)),
])
def test_cifar_receptive_fields_by_hand(layer, expected):
    assert receptive_field(cifar10_net(weights=False), layer) == expected


def test_receptive_field_is_exact():
    # perturbing a pixel changes unit (y, x) only if the pixel lies in its receptive field
    net = cifar10_net(weights=False)
    size, jump, offset = receptive_field(net, "conv2")
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float64)
    net.astype(np.float64)
    def unit(image):
        return to_numpy(net.activations(asarray(image), "conv2")["conv2"][0, :, 5, 6])
    base = unit(x)
    top, left = 5 * jump - offset, 6 * jump - offset
    for r, c, inside in ((top, left, True), (top + size - 1, left + size - 1, True),
                         (top - 1, left, False), (top, left + size, False)):
        y = x.copy()
        y[0, :, r, c] += 10.0
        changed = not np.allclose(unit(y), base)
        assert changed == inside, (r, c)


def strided_net():
    """A 3x3 convolution of stride 2 and padding 1, then a ReLU: 3-px fields, jump 2, offset 1."""
    return tc.Network([("conv", tc.Conv2d(3, 2, 3, stride=2, padding=1, seed=4)),
                       ("relu", tc.ReLU())])


def test_top_patches_match_brute_force():
    net = strided_net()
    images = np.random.default_rng(1).standard_normal((10, 3, 9, 9)).astype(np.float32)
    patches, values, where = top_patches(net, images, "relu", 1, k=5, batch_size=3,
                                         per_image=None)
    act = to_numpy(net(asarray(images)))[:, 1]
    np.testing.assert_allclose(values, np.sort(act.ravel())[::-1][:5])
    _, per_image, where_1 = top_patches(net, images, "relu", 1, k=5, batch_size=3)
    np.testing.assert_allclose(per_image, np.sort(act.reshape(10, -1).max(axis=1))[::-1][:5])
    assert len(set(where_1[:, 0])) == 5
    i, y, x = where[0]
    np.testing.assert_array_equal(patches[0], crop(images[i], 2 * y - 1, 2 * x - 1, 3))
    assert act[i, y, x] == values[0]


def test_inside_fraction_counts_the_pixels_of_each_field_in_the_image():
    # the definition: crop a field out of an all-ones image with zero fill, count the ones
    net = cifar10_net(weights=False)
    size, jump, offset = receptive_field(net, "relu4")
    frac = inside_fraction((8, 8), size, jump, offset, (32, 32))
    ones = np.ones((1, 32, 32))
    for y in range(8):
        for x in range(8):
            field = crop(ones, y * jump - offset, x * jump - offset, size)
            assert np.isclose(frac[y, x], field.mean(), rtol=1e-12)


def test_inside_and_groups_restrict_the_search_as_a_brute_force_search_does():
    net = strided_net()
    images = np.random.default_rng(2).standard_normal((12, 3, 9, 9)).astype(np.float32)
    groups = np.arange(12) // 3                          # four photos, three views each
    act = to_numpy(net(asarray(images)))[:, 1]           # (12, 5, 5); fields inside: rows/cols 1-3
    patches, values, where = top_patches(net, images, "relu", 1, k=3, groups=groups, inside=1.0,
                                         batch_size=5)
    best = [act[3 * g:3 * g + 3, 1:4, 1:4].max() for g in range(4)]
    np.testing.assert_allclose(values, np.sort(best)[::-1][:3])
    assert len(set(groups[where[:, 0]])) == 3                    # one patch per photo
    assert ((where[:, 1:] >= 1) & (where[:, 1:] <= 3)).all()
    assert (patches != 0).all()                                  # no padding in any patch


def test_views_tile_the_image_at_twice_the_size():
    image = np.random.default_rng(3).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    v = views(image, 16, scales=(1, 2))
    assert len(v) == 5 and all(t.shape == (16, 16, 3) for t in v)
    big = np.concatenate([np.concatenate(v[1:3], axis=1), np.concatenate(v[3:5], axis=1)], axis=0)
    np.testing.assert_array_equal(big, resize_center_crop(image, 32))


def pixel_overlap(a, b, grid=8):
    """The share of the smaller square two squares (top, left, side) have in common, by counting
    the cells of a fine grid (sides and corners are multiples of 1/grid in these tests)."""
    def cells(box):
        t, l, side = (round(v * grid) for v in box)
        return {(y, x) for y in range(t, t + side) for x in range(l, l + side)}
    ca, cb = cells(a), cells(b)
    return len(ca & cb) / min(len(ca), len(cb))


def random_boxes(rng, n):
    """n squares with corners and sides on a half-pixel grid, sides 1 to 6."""
    return np.column_stack([rng.integers(0, 20, n) / 2, rng.integers(0, 20, n) / 2,
                            rng.integers(2, 13, n) / 2])


def test_overlap_counts_shared_pixels():
    rng = np.random.default_rng(5)
    boxes = random_boxes(rng, 40)
    for i in range(40):
        got = overlap(boxes[i], boxes)
        np.testing.assert_allclose(got, [pixel_overlap(boxes[i], b) for b in boxes], atol=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_suppression_is_the_greedy_loop(seed):
    rng = np.random.default_rng(seed)
    n, m, limit = 30, int(rng.integers(1, 8)), [0.0, 0.25, 0.5][seed % 3]
    boxes = random_boxes(rng, n)
    values = rng.integers(0, 10, n).astype(float)                # ties: the earlier index wins
    values[rng.random(n) < 0.2] = -np.inf                        # ruled out
    chosen = suppress(values, boxes, m, limit)
    expected = []
    for i in sorted(range(n), key=lambda i: (-values[i], i)):
        if len(expected) < m and values[i] > -np.inf and all(
                pixel_overlap(boxes[i], boxes[j]) <= limit for j in expected):
            expected.append(i)
    assert list(chosen) == expected
    for a in chosen:                                             # the promise itself
        assert all(pixel_overlap(boxes[a], boxes[b]) <= limit for b in chosen if b != a)


def test_field_boxes_of_a_tile_cover_the_same_photo_pixels():
    # the photo enlarged twice, tile (1, 0): its field at (y, x), scaled back, is the same region
    image = np.random.default_rng(6).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    tiles, frames = views(image, 8, scales=(2,)), view_frames(8, scales=(2,))
    big = resize_center_crop(image, 16)
    box = field_boxes((3, 3), 3, 2, 1, frames[2])[1, 2]          # tile (1, 0), position (1, 2)
    top, left = (2 * box[:2]).astype(int)
    np.testing.assert_array_equal(tiles[2][1:4, 3:6], big[top:top + 3, left:left + 3])
    assert box[2] == 1.5


@pytest.mark.parametrize("seed", range(4))
def test_search_with_several_per_image_matches_a_brute_force_search(seed):
    net = strided_net()
    rng = np.random.default_rng(7 + seed)
    images = rng.standard_normal((12, 3, 9, 9)).astype(np.float32)
    groups = np.repeat([0, 1, 2, 3], [5, 3, 2, 2])                # batches of 2 split them
    frames = np.array([(1, 0, 0), (2, 0, 0), (2, 0, 9), (2, 9, 0), (2, 9, 9),
                       (1, 0, 0), (2, 9, 9), (3, 9, 18), (1, 0, 0), (2, 0, 9),
                       (2, 9, 0), (3, 18, 9)])
    act = to_numpy(net(asarray(images)))[:, 0]                    # (12, 5, 5)
    for per_image, limit, k in ((2, 0.0, 8), (3, 0.25, 10), (None, 0.5, 20)):
        best, _, _ = search(net, images, "relu", [0], k, per_image=per_image, limit=limit,
                            groups=groups, frames=frames, batch_size=2)
        values, where, _ = best[0]
        candidates = sorted(np.ndindex(act.shape), key=lambda p: -act[p])
        box = {p: ((p[1] * 2 - 1 + frames[p[0]][1]) / frames[p[0]][0],
                   (p[2] * 2 - 1 + frames[p[0]][2]) / frames[p[0]][0], 3 / frames[p[0]][0])
               for p in candidates}
        chosen = []
        for p in candidates:
            same = [q for q in chosen if groups[q[0]] == groups[p[0]]]
            if (per_image is None or len(same) < per_image) and all(
                    pixel_overlap(box[p], box[q], grid=6) <= limit for q in same):
                chosen.append(p)
        chosen = chosen[:k]
        np.testing.assert_allclose(values, [act[p] for p in chosen])
        assert [tuple(w) for w in where] == chosen


def test_pick_finds_the_selective_channel_and_spread_is_the_channels_moments():
    # channel 1 is silent but for one strong spot per image: the most selective;
    # channel 0 is large everywhere, channel 2 is noise: neither stands out
    net = tc.Network([("relu", tc.ReLU())])
    rng = np.random.default_rng(8)
    images = np.empty((6, 3, 7, 7), dtype=np.float32)
    images[:, 0] = 5 + rng.random((6, 7, 7))
    images[:, 1] = 0
    images[np.arange(6), 1, rng.integers(0, 7, 6), rng.integers(0, 7, 6)] = 3
    images[:, 2] = rng.standard_normal((6, 7, 7)) * 2
    best, sample, spread = search(net, images, "relu", None, 4, batch_size=4)
    assert pick(best, spread, 1, 4) == [1]
    assert pick(best, spread, 3, 7) == [1, 2, 0]                  # short rows: still ranked
    short = {0: best[0], 1: tuple(a[:2] for a in best[1]), 2: best[2]}   # too few images for 1
    assert pick(short, spread, 3, 4)[2] == 1
    out = np.maximum(images, 0).transpose(1, 0, 2, 3).reshape(3, -1)
    np.testing.assert_allclose(spread, np.column_stack([out.mean(1), out.std(1)]), rtol=1e-6)
    assert sample.shape == (6, 3)


def test_consistency_is_the_mean_pairwise_cosine():
    f = np.random.default_rng(9).standard_normal((5, 4))
    pairs = [f[i] @ f[j] / np.linalg.norm(f[i]) / np.linalg.norm(f[j])
             for i in range(5) for j in range(5) if i != j]
    assert np.isclose(consistency(f), np.mean(pairs))


def test_a_channel_that_repeats_a_picked_rows_crops_is_passed_over():
    # rows of 4 crops (photo, (top, left, side)); channel 1 crops what channel 0 does, but for
    # one crop shifted by a fifth of its side (still overlapping 0.8 > 0.5) and one other photo
    box = np.array([0.0, 0.0, 10.0])
    rows = {0: [(p, box + [20 * p, 0, 0]) for p in range(4)],
            1: [(0, box + [2, 0, 0]), (1, box + [20, 0, 0]), (2, box + [40, 0, 0]),
                (9, box)],
            2: [(0, box + [0, 6, 0]), (1, box + [26, 0, 0]), (5, box), (6, box)]}
    assert repeated(rows[1], rows[0]) == 0.75                  # photo 9 is not in row 0
    assert repeated(rows[2], rows[0]) == 0.0                   # overlaps of 0.4: other crops
    values = {0: np.array([9.0] * 4), 1: np.array([8.0] * 4), 2: np.array([7.0] * 4)}
    best = {c: (v, None, None) for c, v in values.items()}
    spread = np.array([[0.0, 1.0]] * 3)
    assert pick(best, spread, 2, 4) == [0, 1]                  # selectivity alone
    assert pick(best, spread, 2, 4, rows) == [0, 2]


def test_crop_boxes_are_the_fields_in_their_photos_coordinates():
    net = squeezenet1_1()
    size, jump, offset = receptive_field(net, "fire3")
    frames = np.array([(1, 0, 0), (2, 224, 0)])               # photo 7 whole, its lower-left tile
    where = np.array([[0, 3, 5], [1, 3, 5]])
    (p0, b0), (p1, b1) = crop_boxes(net, "fire3", where, np.array([7, 7]), frames)
    assert p0 == p1 == 7
    np.testing.assert_allclose(b0, [3 * jump - offset, 5 * jump - offset, size])
    np.testing.assert_allclose(b1, [(3 * jump - offset + 224) / 2, (5 * jump - offset) / 2,
                                    size / 2])
