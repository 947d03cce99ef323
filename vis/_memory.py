"""What each ``python -m vis.<technique>`` whose options scale memory needs, for
tinycnn.engine.memory.check_fits: a need(value) function per command, counted from the arrays the
technique allocates (tinycnn/engine/memory.py says how a network pass is counted, and how close the
estimates stay to what is measured).
"""
import numpy as np

from tinycnn import backend
from tinycnn.engine.memory import pass_bytes_per_pixel, resized

# Each function returns need(value) for check_fits. Float32 images are 12 bytes a pixel; pictures
# for the figure 3.
IMAGE = 12
PICTURE = 3
# GrabCut (vis/grabcut.py) per pixel: the 8-neighbour links (4 pairs of int64 m, n and a float64
# weight: 96 bytes), the s-t graph built from them (rows, columns and capacities of 10 entries,
# then the sparse matrix: about 500), and maximum_flow's flow and residual graphs (about 300);
# rounded up
GRABCUT_BYTES_PER_PIXEL = 1200
# scipy's L-BFGS-B per optimised value: its history of m = 10 pairs and 5 more float64 vectors
# ((2m + 5) * 8 = 200), copies of x and the gradient (about 50), and the bounds: vis/_optimize.py's
# list of pairs of NumPy floats (about 150) and scipy's conversions of it (about 160)
LBFGS_BYTES_PER_VALUE = 600
# t-SNE (vis/embedding.py) holds P and the exaggerated P for the whole run; its KL adds the
# kernel, Q, and four N x N temporaries (P and Q at the pairs with P > 0, their ratio, its log)
TSNE_MATRICES = 9
# Image-sized float32 arrays a DeepDream octave holds besides the network's: the octave pyramid
# (about two images), the base, the detail, the octave's start, x, its jittered roll, the gradient
# rolled back, its blur and the blur's temporary, |g| and two steps' temporaries
DREAM_IMAGES = 14
# tinycnn.io.data.load_cifar10("test"), which vis.embedding draws its images from: the float32
# images (123 MB) and their decoding, at most twice as much again
CIFAR10_TEST_BYTES = 3 * 10000 * 3 * 32 * 32 * 4
# a trained network's parameter: itself, its gradient, Adam's two moments, the update's temporaries
PARAMETER_BYTES = 4 * 8


def saliency_need(net, shapes):
    """need(size) of ``python -m vis.saliency --size``, for photos of ``shapes`` (H, W): every
    photo held as a float32 batch and a figure row (five pictures, then stacked), and the larger of
    a network pass and GrabCut over the largest photo."""
    per_pixel = max(pass_bytes_per_pixel(net), GRABCUT_BYTES_PER_PIXEL)

    def need(size):
        pixels = [h * w for h, w in (resized(s, size) for s in shapes)]
        return sum(pixels) * (IMAGE + 2 * 5 * PICTURE) + max(pixels, default=0) * per_pixel
    return need


def deepdream_need(net, shapes, layers):
    """need(size) of ``python -m vis.deepdream --size`` on a photo of ``shapes`` (one (H, W), or
    none that could be read) dreaming at ``layers`` one after another: a pass up to the deepest,
    DREAM_IMAGES image copies, and the figure's pictures (the photo and one per layer, arranged
    into one)."""
    per_pixel = (pass_bytes_per_pixel(net, until=net.last_ready(layers)) + DREAM_IMAGES * IMAGE
                 + 2 * (1 + len(layers)) * PICTURE)

    def need(size):
        return max((h * w for h, w in (resized(s, size) for s in shapes)), default=0) * per_pixel
    return need


def texture_synthesis_need(net, layers, large):
    """need(size) of ``python -m vis.texture_synthesis --size``: L-BFGS-B over the largest output,
    (large * size)^2 pixels, each step a pass that keeps ``layers``."""
    per_pixel = (pass_bytes_per_pixel(net, until=net.last_ready(layers), keep=layers)
                 + 3 * LBFGS_BYTES_PER_VALUE)

    def need(size):
        side = max(size, round(large * size))
        return side * side * per_pixel
    return need


def texture_nn_need(window, scale):
    """need(size) of ``python -m vis.texture_nn --size``: every window x window patch of the
    size x size source as float64 RGB (twice: the patches and their squares before the sum), and
    the (scale * size)^2 output grown and cut into its copied pieces (about 160 bytes a pixel at
    most)."""
    def need(size):
        windows = max(0, size - window + 1) ** 2
        grown = (scale * size + window) ** 2
        return windows * window ** 2 * (2 * 3 + 1) * 8 + grown * 160
    return need


def embedding_need(net, layer, grid, batch=256):
    """need(count) of ``python -m vis.embedding --count``: the CIFAR-10 test set, the images drawn
    (twice: drawn and normalised), a batch's forward pass, the features and PCA's copies of them
    (four float64 N x D arrays), t-SNE's N x N matrices (TSNE_MATRICES of float64), and the grid's
    cell-to-point costs (grid^2 x N, with their two-column differences)."""
    side = net.meta["input_size"]
    x = backend.asarray(np.zeros((1, 3, side, side), np.float32))
    features = net.activations(x, layer)[layer].size * 8
    forward = side * side * pass_bytes_per_pixel(net, until=layer, backward=False)

    def need(count):
        tsne, cells = TSNE_MATRICES * 8 * count ** 2, 5 * 8 * grid ** 2 * count
        images = count * (2 * side * side * IMAGE + 4 * features) + min(batch, count) * forward
        return CIFAR10_TEST_BYTES + images + tsne + cells
    return need


def max_patches_need(net, layer, images, scales, batch=64):
    """need(largest scale) of ``python -m vis.max_patches --scales``: every view of every image
    (each image at scale s gives s^2 views of the input size) twice, as the list of views and as
    the array they are concatenated into, the largest image enlarged, and a batch's forward
    pass."""
    side = net.meta["input_size"]
    per_view = side * side * (IMAGE + pass_bytes_per_pixel(net, until=layer, backward=False))

    def need(largest):
        views = images * sum(min(s, largest) ** 2 for s in scales)
        enlarged = 2 * (largest * side) ** 2 * PICTURE
        return 2 * views * side * side * IMAGE + enlarged + min(batch, views) * per_view
    return need


def fast_style_training_need(net, probe, batch, width):
    """need(crop) of ``python -m vis.fast_style_train --crop``: ``batch`` crops through the
    transform network and then through the loss network ``net``, forward and backward, and the
    transform network's parameters with their gradients and Adam's moments.

    probe: the transform network at width 1 (and the blocks asked for); every layer's channels
    are a multiple of the width, so its activations grow at most linearly with it and its
    parameters at most quadratically.
    """
    per_pixel = width * pass_bytes_per_pixel(probe, side=64) + pass_bytes_per_pixel(net)
    parameters = width ** 2 * sum(int(np.prod(p.shape)) for _, p in probe.named_params())

    def need(crop):
        return batch * crop * crop * per_pixel + parameters * PARAMETER_BYTES
    return need
