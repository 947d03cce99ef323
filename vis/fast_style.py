"""Fast style transfer: a network trained once per style paints any photo in one forward pass.

Johnson, Alahi & Fei-Fei (2016), "Perceptual Losses for Real-Time Style Transfer and
Super-Resolution". Gatys et al.'s style transfer (vis.style_transfer) optimises every
image's pixels for hundreds of steps. Johnson et al. instead train a *transform network*
T_w, photo -> painting, so that its outputs minimise the same perceptual loss on a
whole set of photos x:

    min_w  E_x [ w_c ||F_c(T_w(x)) - F_c(x)||^2 + sum_l w_l ||G_l(T_w(x)) - G_l(style)||^2
                 + w_tv TV(T_w(x)) ]

with F, G the loss network's features and their Gram matrices, exactly the terms and
weights of vis.style_transfer (vis.objectives.synthesis_objective), computed here on
SqueezeNet. The gradient of the loss with respect to the output image comes from the
loss network's backward pass; the transform network's own backward pass carries it on
to its weights; Adam updates them. After training, stylising is one forward pass.

The transform network (Johnson et al.'s supplementary table 1, narrower):

    9x9 conv, stride 1 -> 3x3 conv, stride 2 -> 3x3 conv, stride 2      (down: 1/4 size)
    residual blocks: x + (3x3 conv, norm, ReLU, 3x3 conv, norm)(x)
    nearest x2 + 3x3 conv -> nearest x2 + 3x3 conv -> 9x9 conv          (up: full size)

every convolution followed by instance normalisation (Ulyanov et al. 2016, which
Johnson et al.'s later code adopted for its sharper results) and ReLU, except the last,
whose output is the image in the loss network's normalised units; reflection padding
keeps the borders like the inside. Upsampling is nearest neighbour plus a convolution,
not a transposed convolution, which paints checkerboards (Odena et al. 2016; see
tinycnn.image_layers.Upsample2d). Johnson et al. use widths 32, 64, 128 and five residual
blocks; on a 2-core CPU this module uses WIDTH = 16 (16, 32, 64) and BLOCKS = 3, about
1/8 of the arithmetic, so that training fits in an hour.

This module holds the technique: the network, the loss, stylising, and the figure, which
puts held-out photos through the shipped network (weights/fast_style_starry_night.npz)
beside 200 L-BFGS steps of vis.style_transfer on the same loss, with both results' plainest
patch of the last photo enlarged, where the two textures show on their own; the loss of
each is printed term by term (``loss_terms``). The training loop, its crops of photos and
its checkpoints are vis.fast_style_train (make train_fast_style); its recipe is the
constants below.

    python -m vis.fast_style          (make fast_style: the held-out photos, shipped weights)
    python -m vis.fast_style --content chelsea.png --steps 50
"""
import time
from pathlib import Path

import numpy as np

from tinycnn import backend
from tinycnn.image_layers import InstanceNorm2d, ReflectionPad2d, Upsample2d
from tinycnn.io.images import deprocess, load_image, preprocess, resize_short_side
from tinycnn.layers import Conv2d, ReLU
from tinycnn.net import Network, Residual, Sequential
from vis import cli, render
from vis._optimize import pixel_range
from vis.objectives import (content_loss, style_loss, style_targets_of, synthesis_objective,
                            tv_loss)
from vis.style_transfer import (CONTENT_LAYER, PRESETS, STYLE_LAYERS, style_file, style_tiles,
                                style_transfer)

WIDTH, BLOCKS = 16, 3            # Johnson et al.: 32 and 5 (see the module docstring)
CROP, BATCH = 128, 4             # training crops (Johnson et al.: 256 x 256, batch 4)
STEPS = 4000                     # Adam steps (Johnson et al.: 40,000 on COCO)
LR = 1e-3                        # Adam's learning rate, Johnson et al.'s
HELD_OUT = ("chelsea.png", "astronaut.png", "rocket.jpg")   # never trained on; shown in the figure
LBFGS_STEPS = 200                # the figure's optimisation-based column: Gatys et al.'s L-BFGS
ZOOM = 3                         # the top row's close-ups of the last photo's plainest patch
WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def _conv_block(cin, cout, k, stride=1, *, relu=True, norm=True, upsample=False, seed=0):
    """[nearest x2] -> reflection pad -> k x k conv -> [instance norm -> ReLU], as named layers."""
    layers = [("up", Upsample2d(2))] if upsample else []
    layers += [("pad", ReflectionPad2d(k // 2)), ("conv", Conv2d(cin, cout, k, stride, seed=seed))]
    if norm:
        layers.append(("norm", InstanceNorm2d(cout)))
    if relu:
        layers.append(("relu", ReLU()))
    return Sequential(layers)


def transform_net(width=WIDTH, blocks=BLOCKS, seed=0):
    """Johnson et al.'s transform network: image (N, 3, H, W) -> image (N, 3, H, W), H and W
    multiples of 4. Layer names: down1..3, res1..res<blocks>, up1, up2, out."""
    w = width
    layers = [("down1", _conv_block(3, w, 9, seed=seed)),
              ("down2", _conv_block(w, 2 * w, 3, 2, seed=seed + 1)),
              ("down3", _conv_block(2 * w, 4 * w, 3, 2, seed=seed + 2))]
    for i in range(blocks):     # body: pad, conv, norm, relu, pad2, conv2, norm2; plus the input
        c = 4 * w
        layers.append((f"res{i + 1}", Residual([
            ("pad", ReflectionPad2d(1)), ("conv", Conv2d(c, c, 3, seed=seed + 10 + 2 * i)),
            ("norm", InstanceNorm2d(c)), ("relu", ReLU()),
            ("pad2", ReflectionPad2d(1)), ("conv2", Conv2d(c, c, 3, seed=seed + 11 + 2 * i)),
            ("norm2", InstanceNorm2d(c))])))
    layers += [("up1", _conv_block(4 * w, 2 * w, 3, upsample=True, seed=seed + 30)),
               ("up2", _conv_block(2 * w, w, 3, upsample=True, seed=seed + 31)),
               ("out", _conv_block(w, 3, 9, relu=False, norm=False, seed=seed + 32))]
    net = Network(layers)
    net.meta = {"name": "fast_style", "width": width, "blocks": blocks}
    return net


def perceptual_loss(net, style_targets, preset):
    """(y, x) -> (loss, dloss/dy): the mean over the batch of vis.style_transfer's loss
    (the preset's content, style and TV weights) of outputs y (N, 3, H, W) for photos x."""
    style_weights = dict(zip(STYLE_LAYERS, preset["style_weights"]))

    def loss(y, x):
        N = x.shape[0]
        objective = synthesis_objective(
            net, content_target=net.activations(x, CONTENT_LAYER)[CONTENT_LAYER],
            content_layer=CONTENT_LAYER, content_weight=preset["content_weight"],
            style_targets=style_targets, style_weights=style_weights,
            tv_weight=preset["tv_weight"])
        value, dy = objective(y)
        return float(value) / N, dy / N
    return loss


def loss_terms(net, style_targets, preset, y, x):
    """perceptual_loss of outputs y for photos x, term by term: {"content": ..., one entry per
    style layer, "tv": ...}, each the batch mean; they sum to the loss. Where a network's
    picture and an optimised one differ, this says which statistics the network missed."""
    acts = net.activations(y, [CONTENT_LAYER, *STYLE_LAYERS])
    target = net.activations(x, CONTENT_LAYER)[CONTENT_LAYER]
    terms = {"content": content_loss(preset["content_weight"], acts[CONTENT_LAYER], target)[0]}
    for layer, weight in zip(STYLE_LAYERS, preset["style_weights"]):
        terms[layer] = style_loss(acts, style_targets, {layer: weight})[0]
    terms["tv"] = tv_loss(y, preset["tv_weight"])[0]
    return {name: float(value) / x.shape[0] for name, value in terms.items()}


def training_weights(preset, crop):
    """The preset's weights for crops of side ``crop``: content and TV are sums over pixels
    and Gram matrices are averages, so at crop < image_size the content and TV weights are
    scaled by (image_size / crop)^2 to keep the balance the preset has at its own size."""
    k = (preset["image_size"] / crop) ** 2
    return dict(preset, content_weight=preset["content_weight"] * k,
                tv_weight=preset["tv_weight"] * k)


def stylize(tnet, net, x):
    """One forward pass: normalised photos x (N, 3, H, W) -> stylised (N, 3, H, W), clamped
    to the pixel range. H and W are cropped to multiples of 4 (two stride-2 steps down and
    two x2 steps up)."""
    H, W = x.shape[2] // 4 * 4, x.shape[3] // 4 * 4
    y, _ = tnet.forward(x[:, :, :H, :W])
    lo, hi = pixel_range(net)
    return backend.active().clip(y, lo, hi)


def weights_path(style):
    return WEIGHTS / f"fast_style_{_name(style)}.npz"


def _name(style):
    return Path(str(style)).stem


def transform_shapes(width, blocks):
    """{parameter name: shape} of transform_net(width, blocks), found without building it."""
    w = width
    convs = [("down1.conv", 3, w, 9), ("down2.conv", w, 2 * w, 3), ("down3.conv", 2 * w, 4 * w, 3)]
    for i in range(1, blocks + 1):
        convs += [(f"res{i}.conv", 4 * w, 4 * w, 3), (f"res{i}.conv2", 4 * w, 4 * w, 3)]
    convs += [("up1.conv", 4 * w, 2 * w, 3), ("up2.conv", 2 * w, w, 3), ("out.conv", w, 3, 9)]
    shapes = {}
    for conv, cin, cout, k in convs:
        shapes.update({f"{conv}.weight": (cout, cin, k, k), f"{conv}.bias": (cout,)})
        if conv != "out.conv":                              # the image: no norm, no ReLU
            norm = conv.replace("conv", "norm")             # res1.conv2 -> res1.norm2
            shapes.update({f"{norm}.weight": (cout,), f"{norm}.bias": (cout,)})
    return shapes


def load_transform_net(path):
    """A transform network from an .npz of its parameters (written by ``python -m
    vis.fast_style_train``); its width and block count are read from the parameters' shapes.
    Every key, shape and dtype the network would have is checked against the file before the
    network is built: a forged file declaring a huge width costs nothing (StateDictError)."""
    from tinycnn.io.weights import StateDictError, key_mismatch, read_npz
    if not Path(path).is_file():
        raise FileNotFoundError(f"no fast-style weights at {path}; train them with make "
                                "train_fast_style (python -m vis.fast_style_train --style NAME)")
    with cli.reading(path):
        state = read_npz(path)
    first = state.get("down1.conv.weight")
    width = first.shape[0] if first is not None and first.ndim == 4 else WIDTH
    blocks = len({k.split(".")[0] for k in state if k.startswith("res")}) or BLOCKS
    shapes = transform_shapes(width, blocks)
    missing, extra = [k for k in shapes if k not in state], [k for k in state if k not in shapes]
    if missing or extra:
        raise key_mismatch(path, missing, extra, len(shapes))
    for key, shape in shapes.items():     # what no trained network has: no layer, no channel
        if state[key].shape != shape or state[key].dtype.kind != "f" or not shape[0]:
            raise StateDictError(f"{path}: parameter {key!r} has shape {state[key].shape} of "
                                 f"{state[key].dtype}; a transform network of width {width} "
                                 f"needs {shape} of floats, with at least one channel")
    return transform_net(width, blocks).load_state_dict(state, source=str(path))


def load_photo(net, spec, size):
    """(uint8 photo, normalised (1, 3, H, W) on the backend), short side ``size``, H and W
    multiples of 4."""
    path = cli.find_image(spec)
    with cli.reading(path):
        photo = load_image(path)
    photo = resize_short_side(photo, size, name=spec)
    photo = photo[:photo.shape[0] // 4 * 4, :photo.shape[1] // 4 * 4]
    return photo, backend.asarray(preprocess(photo, mean=net.meta["mean"], std=net.meta["std"]))


def load_style(spec):
    """(preset, painting) of the style ``spec``: the preset of its name (starry_night's for an
    image file of another name) and the painting, uint8, short side the preset's style_size.
    A bad ``spec`` is told here, before any network loads."""
    preset = PRESETS.get(_name(spec), PRESETS["starry_night"])
    file = style_file(spec)
    with cli.reading(file):
        painting = load_image(file)
    return preset, resize_short_side(painting, preset["style_size"], name=file)


def compare(tnet, net, x, style, preset, *, steps=LBFGS_STEPS, seed=0, log=None):
    """The network against optimisation on photos x (normalised, (N, 3, H, W)): one pass of the
    transform network ``tnet``, and (unless steps is 0) ``steps`` L-BFGS steps of
    vis.style_transfer from x with the same weights. Returns {"network": ..., "lbfgs": ...},
    each (images (N, 3, H, W) on the host, seconds, perceptual loss, ``loss_terms``)."""
    targets = style_targets_of(net, style, STYLE_LAYERS)
    loss = perceptual_loss(net, targets, preset)

    def scored(images, seconds):
        y = backend.asarray(images)
        return images, seconds, loss(y, x)[0], loss_terms(net, targets, preset, y, x)
    stylize(tnet, net, x)                                  # warm-up: the time below is one pass
    t = time.perf_counter()
    y = backend.to_numpy(stylize(tnet, net, x))
    found = {"network": scored(y, time.perf_counter() - t)}
    if steps:
        t = time.perf_counter()
        z, _ = style_transfer(net, x, style, content_weight=preset["content_weight"],
                              style_weights=preset["style_weights"], tv_weight=preset["tv_weight"],
                              steps=steps, method="lbfgs", seed=seed, log=log)
        found["lbfgs"] = scored(z, time.perf_counter() - t)
    return found


def plainest_patch(image, shape):
    """(top, left) of the window of ``shape`` (h, w) over which the picture (H, W, 3) varies
    least (the variance of its grey values): a plain area, such as a sky, where a painted
    texture shows on its own. Window sums come from summed-area tables."""
    grey = image.astype(np.float64).mean(axis=2)
    h, w = shape

    def window_sums(a):
        s = np.pad(a, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        return s[h:, w:] - s[:-h, w:] - s[h:, :-w] + s[:-h, :-w]
    mean = window_sums(grey) / (h * w)
    variance = window_sums(grey ** 2) / (h * w) - mean ** 2
    return np.unravel_index(np.argmin(variance), variance.shape)


def close_ups(photo, pictures, labels):
    """The plainest window a quarter as high and as wide as ``photo`` (H, W, 3)
    (``plainest_patch``), cut from each of ``pictures`` (uint8, the photo's size or cropped to
    a multiple of 4) and enlarged ZOOM times, each captioned with its label."""
    H, W = pictures[0].shape[:2]
    h, w = max(1, H // 4), max(1, W // 4)
    top, left = plainest_patch(photo[:H, :W], (h, w))
    return [render.caption(render.upscale(p[top:top + h, left:left + w], ZOOM), label)
            for p, label in zip(pictures, labels)]


def _parser():
    p = cli.parser("Fast style transfer (Johnson et al. 2016): photos through a trained transform "
                   "network, beside optimisation-based style transfer.", target=False, image=False)
    p.add_argument("--style", default="starry_night",
                   help=f"a preset ({', '.join(PRESETS)}) or a style image (with starry_night's "
                   "weights) (default: %(default)s)")
    p.add_argument("--net", default=None,
                   help="transform network .npz (default: weights/fast_style_STYLE.npz)")
    p.add_argument("--content", nargs="+", default=list(HELD_OUT),
                   help="photos to style (default: the held-out ones)")
    p.add_argument("--steps", type=cli.count, default=LBFGS_STEPS,
                   help="L-BFGS steps of the comparison")
    p.add_argument("--no-compare", action="store_true", help="skip the optimisation-based column")
    return p


def main(argv=None):
    args = cli.parse_args(_parser(), argv, __doc__)
    preset, painting = load_style(args.style)
    net = cli.load_net(args, "squeezenet")
    mean, std = net.meta["mean"], net.meta["std"]
    style = backend.asarray(preprocess(painting, mean=mean, std=std))
    tnet = load_transform_net(Path(args.net) if args.net else weights_path(args.style))
    for spec in args.content:                   # every photo found before the first is styled
        cli.find_image(spec)
    rows = []
    for i, spec in enumerate(args.content):
        photo, x = load_photo(net, spec, preset["image_size"])
        found = compare(tnet, net, x, style, preset, steps=0 if args.no_compare else args.steps,
                        seed=args.seed, log=lambda msg: print(
                            f"photo {i + 1}/{len(args.content)}: {msg}", end="\r", flush=True))
        (_, fast_s, fast_loss, _), row = found["network"], [render.caption(photo, _name(spec))]
        pictures = [deprocess(found[how][0][0], mean=mean, std=std) for how in found]
        row.append(render.caption(pictures[0], f"network: {fast_s:.2f} s, loss {fast_loss:.2e}"))
        line = f"{_name(spec)}: network {fast_s:.2f} s, loss {fast_loss:.4g}"
        if "lbfgs" in found:
            _, slow_s, slow_loss, _ = found["lbfgs"]
            row.append(render.caption(pictures[1], f"{args.steps} L-BFGS "
                                      f"steps: {slow_s:.0f} s, loss {slow_loss:.2e}"))
            line += (f"; {args.steps} L-BFGS steps {slow_s:.1f} s, loss {slow_loss:.4g}: loss "
                     f"ratio {fast_loss / slow_loss:.2f}, {slow_s / fast_s:.0f}x faster"
                     + " " * 20)
        print(line + "".join(f"\n  {how} by term: " + ", ".join(
            f"{name} {value:.3g}" for name, value in found[how][3].items()) for how in found))
        rows.append(row)
    zoom = close_ups(photo, pictures, [f"{_name(spec)}, x{ZOOM}: {how}"
                                       for how in ("network", "L-BFGS")[:len(found)]])
    figure = render.vstack([render.hstack(style_tiles([args.style]) + zoom)] +
                           render.columns_aligned(rows))
    print(f"wrote {render.save(figure, cli.output_path(args, 'fast_style'))}")


if __name__ == "__main__":
    cli.run(main)
