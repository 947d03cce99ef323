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

Training data: random crops of the photos in images/photos ($TINYCNN_IMAGES_DIR/photos when
set) except HELD_OUT (and of any folder given with --images), at a random scale, flipped at
random; ``make images`` adds photos to images/photos.

    python -m vis.fast_style --train --style starry_night     (make train_fast_style STYLE=starry_night)
    python -m vis.fast_style                                   (make fast_style: held-out photos, shipped weights)
"""
import json
import math
import time
from pathlib import Path

import numpy as np

from tinycnn import backend
from tinycnn.engine import memory
from tinycnn.io.images import deprocess, load_image, preprocess, resize_short_side
from tinycnn.image_layers import InstanceNorm2d, ReflectionPad2d, Upsample2d
from tinycnn.layers import Conv2d, ReLU
from tinycnn.net import Network, Residual, Sequential
from tinycnn.optim import Adam
from vis import _memory, cli, render
from vis._optimize import pixel_range
from vis.objectives import style_targets_of, synthesis_objective
from vis.style_transfer import CONTENT_LAYER, PRESETS, STYLE_LAYERS, style_file

WIDTH, BLOCKS = 16, 3            # Johnson et al.: 32 and 5 (see the module docstring)
CROP, BATCH = 128, 4             # training crops (Johnson et al.: 256 x 256, batch 4)
STEPS = 4000                     # Adam steps (Johnson et al.: 40,000 on COCO)
LR = 1e-3                        # Adam's learning rate, Johnson et al.'s
HELD_OUT = ("chelsea.png", "astronaut.png", "rocket.jpg")   # never trained on; shown in the figure
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
            net, content_target=net.activations(x, CONTENT_LAYER)[CONTENT_LAYER], content_layer=CONTENT_LAYER,
            content_weight=preset["content_weight"], style_targets=style_targets, style_weights=style_weights,
            tv_weight=preset["tv_weight"])
        value, dy = objective(y)
        return float(value) / N, dy / N
    return loss


def training_weights(preset, crop):
    """The preset's weights for crops of side ``crop``: content and TV are sums over pixels
    and Gram matrices are averages, so at crop < image_size the content and TV weights are
    scaled by (image_size / crop)^2 to keep the balance the preset has at its own size."""
    k = (preset["image_size"] / crop) ** 2
    return dict(preset, content_weight=preset["content_weight"] * k, tv_weight=preset["tv_weight"] * k)


class Crops:
    """Random square crops of a set of photos: a random photo, a random side between
    ``size`` and the photo's short side, a random place, a random left-right flip, resized
    to size x size. Photos are loaded once, short side 320 (or ``size``, if larger)."""

    def __init__(self, paths, size, rng, short=320):
        from PIL import Image
        self.Image, self.size, self.rng = Image, size, rng
        self.photos = [resize_short_side(load_image(p), max(short, size), name=p) for p in paths]
        if not self.photos:
            raise ValueError("no training photos: give --images with image files or folders")

    def batch(self, n):
        """(n, size, size, 3) uint8."""
        out = []
        for _ in range(n):
            photo = self.photos[self.rng.integers(len(self.photos))]
            H, W = photo.shape[:2]
            side = int(self.rng.integers(self.size, min(H, W) + 1))
            y, x = (int(self.rng.integers(d - side + 1)) for d in (H, W))
            tile = self.Image.fromarray(photo[y:y + side, x:x + side]).resize((self.size, self.size),
                                                                                self.Image.BILINEAR)
            tile = np.asarray(tile)
            out.append(tile[:, ::-1] if self.rng.random() < 0.5 else tile)
        return np.stack(out)


def training_photos(extra=()):
    """The photos in images/photos (or $TINYCNN_IMAGES_DIR/photos) except HELD_OUT, and every image in ``extra``."""
    folder = cli.images_dir() / "photos"
    paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                   and p.name not in HELD_OUT) if folder.is_dir() else []
    if extra:
        paths += [Path(p) for p in cli.expand_folders(extra)]
    return paths


def train(tnet, net, style, photos, *, preset, steps=STEPS, batch=BATCH, crop=CROP, lr=LR, seed=0,
          checkpoint=None, checkpoint_every=250, log=None):
    """Train the transform network ``tnet`` in place for the style image ``style`` (a
    normalised (1, 3, h, w) batch) on random crops of ``photos`` (paths). Returns the
    history [(step, loss)]. ``checkpoint``: an .npz path written every checkpoint_every
    steps and read back first when it exists (resumes where it stopped, same draws)."""
    mean, std = net.meta["mean"], net.meta["std"]
    rng = np.random.default_rng(seed)
    crops = Crops(photos, crop, rng)
    loss_fn = perceptual_loss(net, style_targets_of(net, style, STYLE_LAYERS), training_weights(preset, crop))
    opt, history, start = Adam(tnet), [], 0
    if checkpoint and Path(checkpoint).exists():
        start, history = load_checkpoint(checkpoint, tnet, opt, rng)
        if log:
            log(f"resuming from {checkpoint} at step {start} (delete it to start afresh)\n")
    t0 = time.perf_counter()
    for step in range(start, steps):
        x = backend.asarray(np.stack([preprocess(im, mean=mean, std=std)[0] for im in crops.batch(batch)]))
        y, cache = tnet.forward(x)
        value, dy = loss_fn(y, x)
        if not math.isfinite(value):
            raise ValueError(f"the loss became {value} at step {step + 1}; try a smaller --lr")
        _, grads = tnet.backward(dy, cache)
        opt.step(grads, lr)
        history.append((step + 1, value))
        if log:
            done = step + 1 - start
            eta = (time.perf_counter() - t0) / done * (steps - step - 1)
            log(f"step {step + 1}/{steps}  loss {np.mean([v for _, v in history[-50:]]):.4g}  "
                f"{time.perf_counter() - t0:.0f} s, about {eta / 60:.0f} min left")
        if checkpoint and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            broken = tnet.first_not_finite()     # an update can overflow after its loss was read
            if broken:
                raise ValueError(f"parameter {broken[0]!r} became NaN or infinite by step {step + 1}; "
                                 "try a smaller --lr")
            save_checkpoint(checkpoint, tnet, opt, rng, history)
    return history


def save_checkpoint(path, tnet, opt, rng, history):
    """Parameters, Adam's moments and step, the crop generator's state and the loss history,
    as plain numeric arrays (read back by tinycnn.io.weights.read_npz, which never unpickles)."""
    arrays = {f"param/{k}": v for k, v in tnet.state_dict().items()}
    arrays.update({f"m/{k}": backend.to_numpy(v) for k, v in opt.m.items()})
    arrays.update({f"v/{k}": backend.to_numpy(v) for k, v in opt.v.items()})
    rng_state = np.frombuffer(json.dumps(rng.bit_generator.state).encode(), np.uint8)
    tmp = Path(str(path) + ".tmp.npz")
    np.savez(tmp, t=np.int64(opt.t), rng=rng_state, history=np.array(history, np.float64).reshape(-1, 2), **arrays)
    tmp.replace(path)


def load_checkpoint(path, tnet, opt, rng):
    """Restore what save_checkpoint wrote; returns (steps done, history)."""
    from tinycnn.io.weights import read_npz
    f = read_npz(path)
    tnet.load_state_dict({k[6:]: v for k, v in f.items() if k.startswith("param/")}, source=str(path))
    for k in opt.m:
        opt.m[k], opt.v[k] = backend.asarray(f[f"m/{k}"]), backend.asarray(f[f"v/{k}"])
    opt.t = int(f["t"])
    rng.bit_generator.state = json.loads(f["rng"].tobytes().decode())
    history = [(int(s), float(v)) for s, v in f["history"]]
    return (history[-1][0] if history else 0), history


def loss_curve(history, name):
    """The training loss per batch and its running mean of 50, in thousands: uint8 (H, W, 3)."""
    s, v = np.array(history, np.float64).T
    v = v / 1e3
    smooth = np.convolve(v, np.ones(50) / 50, mode="valid") if len(v) >= 50 else v
    return render.line_plot({"loss": (s, v), "mean of 50": (s[len(s) - len(smooth):], smooth)},
                            title=f"fast style transfer, {name}: perceptual loss per batch",
                            xlabel="step", ylabel="loss / 1000", size=(560, 340),
                            ylim=(0, float(np.ceil(np.percentile(v, 99.5)))))


def write_log(path, history, every=50):
    """<weights>.log.json beside the weights: the mean loss of every ``every`` steps."""
    v = np.array([value for _, value in history])
    means = [[int(min(k + every, len(v))), float(v[k:k + every].mean())] for k in range(0, len(v), every)]
    Path(path).with_suffix(".log.json").write_text(json.dumps({"every": every, "mean_loss": means}) + "\n")


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


def load_transform_net(path):
    """A transform network from an .npz written by ``python -m vis.fast_style --train``; its
    width and block count are read from the parameters' shapes."""
    from tinycnn.io.weights import read_npz
    if not Path(path).is_file():
        raise FileNotFoundError(f"no fast-style weights at {path}; train them with make train_fast_style "
                                "(or python -m vis.fast_style --train --style NAME)")
    state = read_npz(path)
    first = state.get("down1.conv.weight")
    # shapes that no trained network has (no layer, no channel, no block): load_state_dict then says why
    width = first.shape[0] if first is not None and first.ndim == 4 and first.shape[0] > 0 else WIDTH
    blocks = len({k.split(".")[0] for k in state if k.startswith("res")}) or BLOCKS
    return transform_net(width, blocks).load_state_dict(state, source=str(path))


def load_photo(net, spec, size):
    """(uint8 photo, normalised (1, 3, H, W) on the backend), short side ``size``, H and W
    multiples of 4."""
    photo = resize_short_side(load_image(cli.find_image(spec)), size, name=spec)
    photo = photo[:photo.shape[0] // 4 * 4, :photo.shape[1] // 4 * 4]
    return photo, backend.asarray(preprocess(photo, mean=net.meta["mean"], std=net.meta["std"]))


def main(argv=None):
    from vis.style_transfer import style_transfer
    p = cli.parser("Fast style transfer (Johnson et al. 2016): train a transform network for a style, "
                   "or style photos with one.", target=False, image=False)
    p.add_argument("--style", default="starry_night", help=f"a preset ({', '.join(PRESETS)}) or a style image "
                   "(with starry_night's weights) (default: %(default)s)")
    p.add_argument("--train", action="store_true", help="train the transform network (make train_fast_style)")
    p.add_argument("--net", default=None, help="transform network .npz (default: weights/fast_style_STYLE.npz)")
    p.add_argument("--content", nargs="+", default=list(HELD_OUT), help="photos to style (default: the held-out ones)")
    p.add_argument("--images", nargs="+", default=(), help="--train: more image files or folders to crop from")
    p.add_argument("--steps", type=cli.count, default=None,
                   help=f"--train: Adam steps (default {STEPS}); else L-BFGS steps of the comparison (default 200)")
    p.add_argument("--batch", type=cli.count, default=BATCH, help="--train: crops per step (default: %(default)s)")
    p.add_argument("--crop", type=cli.count, default=CROP, help="--train: crop side, a multiple of 4 (default: %(default)s)")
    p.add_argument("--lr", type=float, default=LR, help="--train: Adam's learning rate (default: %(default)s)")
    p.add_argument("--width", type=cli.count, default=WIDTH, help="--train: first layer's channels (default: %(default)s)")
    p.add_argument("--blocks", type=cli.count, default=BLOCKS, help="--train: residual blocks (default: %(default)s)")
    p.add_argument("--no-compare", action="store_true", help="skip the optimisation-based column")
    args = cli.parse_args(p, argv, __doc__)
    if args.crop % 4:
        p.error(f"argument --crop: {args.crop} is not a multiple of 4")
    if not (math.isfinite(args.lr) and args.lr > 0):
        p.error("argument --lr: must be a positive number")
    preset = PRESETS.get(_name(args.style), PRESETS["starry_night"])
    file = style_file(args.style)              # a bad --style is told before the model loads
    painting = resize_short_side(load_image(file), preset["style_size"], name=file)
    net = cli.load_net(args, "squeezenet")
    style = backend.asarray(preprocess(painting, mean=net.meta["mean"], std=net.meta["std"]))
    path = Path(args.net) if args.net else weights_path(args.style)
    if args.train:     # refused in one line, before any photo is read, if a step cannot fit (tinycnn/engine/memory.py)
        need = _memory.fast_style_training_need(net, transform_net(1, args.blocks), args.batch, args.width)
        memory.check_fits(f"--batch {args.batch} --crop", args.crop, need, lowest=4, step=4)
        _train_main(args, net, style, preset, path)
        return
    tnet = load_transform_net(path)
    loss_fn = perceptual_loss(net, style_targets_of(net, style, STYLE_LAYERS), preset)
    mean, std = net.meta["mean"], net.meta["std"]
    for spec in args.content:
        cli.find_image(spec)
    rows = []
    for i, spec in enumerate(args.content):
        photo, x = load_photo(net, spec, preset["image_size"])
        stylize(tnet, net, x)                                  # warm-up: the timing below is one pass
        t = time.perf_counter()
        y = backend.to_numpy(stylize(tnet, net, x))
        fast_s = time.perf_counter() - t
        fast_loss, _ = loss_fn(backend.asarray(y), x)
        row = [render.caption(photo, _name(spec)),
               render.caption(deprocess(y[0], mean=mean, std=std), f"network: {fast_s:.2f} s, loss {fast_loss:.3g}")]
        if not args.no_compare:
            steps = args.steps or 200
            t = time.perf_counter()
            z, _ = style_transfer(net, x, style, content_weight=preset["content_weight"],
                                  style_weights=preset["style_weights"], tv_weight=preset["tv_weight"],
                                  steps=steps, method="lbfgs", seed=args.seed,
                                  log=lambda msg: print(f"photo {i + 1}/{len(args.content)}: {msg}", end="\r", flush=True))
            slow_s = time.perf_counter() - t
            slow_loss, _ = loss_fn(backend.asarray(z), x)
            row.append(render.caption(deprocess(z[0], mean=mean, std=std),
                                      f"{steps} L-BFGS steps: {slow_s:.0f} s, loss {slow_loss:.3g}"))
            print(f"{_name(spec)}: network {fast_s:.2f} s, loss {fast_loss:.4g}; {steps} L-BFGS steps "
                  f"{slow_s:.1f} s, loss {slow_loss:.4g}: loss ratio {fast_loss / slow_loss:.2f}, "
                  f"{slow_s / fast_s:.0f}x faster" + " " * 20)
        else:
            print(f"{_name(spec)}: network {fast_s:.2f} s, loss {fast_loss:.4g}")
        rows.append(render.hstack(row))
    from vis.style_transfer import style_row
    print(f"wrote {render.save(render.vstack([style_row([args.style])] + rows), cli.output_path(args, 'fast_style'))}")


def _train_main(args, net, style, preset, path):
    import hashlib
    photos = training_photos(args.images)
    steps = args.steps or STEPS
    tnet = transform_net(args.width, args.blocks, seed=args.seed)
    checkpoint = path.with_name(path.stem + ".ckpt.npz")
    cli.check_writable(path.parent)
    print(f"training a transform network (width {args.width}, {args.blocks} residual blocks, "
          f"{sum(int(np.prod(v.shape)) for _, v in tnet.named_params())} parameters) for {_name(args.style)} on "
          f"{len(photos)} photos ({', '.join(HELD_OUT)} held out), {steps} steps of {args.batch} crops of "
          f"{args.crop} px; checkpoints in {checkpoint}")
    t = time.perf_counter()
    history = train(tnet, net, style, photos, preset=preset, steps=steps, batch=args.batch, crop=args.crop,
                    lr=args.lr, seed=args.seed, checkpoint=checkpoint,
                    log=lambda msg: print(msg, end="\r", flush=True))
    print()
    tnet.save(path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    write_log(path, history)
    plot = render.save(loss_curve(history, _name(args.style)),
                       cli.output_path(args, f"fast_style_{_name(args.style)}_loss") if args.out is None
                       else Path(args.out).with_name(Path(args.out).stem + "_loss.png"))
    v = np.array([value for _, value in history])
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, sha256 {sha}) after {time.perf_counter() - t:.0f} s "
          f"this run; final loss (mean of the last 50 batches) {np.mean(v[-50:]):.4g}; loss curve {plot}")


if __name__ == "__main__":
    cli.run(main)
