"""Training fast style transfer's transform network (vis.fast_style) for one style.

Johnson, Alahi & Fei-Fei (2016) train the transform network T_w once per style: each
step draws a batch of photos, paints them with T_w, scores the paintings with the
perceptual loss (vis.fast_style.perceptual_loss, vis.style_transfer's loss on SqueezeNet),
carries the loss's gradient back through the loss network and then through T_w to its
weights, and lets Adam (tinycnn.optim) update them. The recipe (crop side, batch, steps,
learning rate) is vis.fast_style's.

Training data: random crops of the photos in images/photos ($TINYCNN_IMAGES_DIR/photos when
set) except vis.fast_style.HELD_OUT (and of any folder given with --images), at a random
scale, flipped at random; ``make images`` adds photos to images/photos.

A checkpoint (tinycnn.io.checkpoint, the format of ``python -m tinycnn.train``'s) is written
every CHECKPOINT_EVERY steps beside the weights; ``--resume`` continues from it, bit for bit.

    python -m vis.fast_style_train --style starry_night     (make train_fast_style)
    python -m vis.fast_style_train --style starry_night --resume
"""
import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tinycnn import backend
from tinycnn.engine import memory
from tinycnn.io.args import npz_to_write
from tinycnn.io.checkpoint import load_checkpoint, save_checkpoint
from tinycnn.io.images import load_image, preprocess, resize_short_side
from tinycnn.optim import Adam
from vis import _memory, cli, render
from vis.fast_style import (BATCH, BLOCKS, CROP, HELD_OUT, LR, PRESETS, STEPS, STYLE_LAYERS, WIDTH,
                            _name, load_style, perceptual_loss, training_weights, transform_net,
                            weights_path)
from vis.objectives import style_targets_of

CHECKPOINT_EVERY = 250           # steps between checkpoints
SHORT_SIDE = 320                 # photos are loaded once at this short side, crops cut from them


class Crops:
    """Random square crops of a set of photos: a random photo, a random side between
    ``size`` and the photo's short side, a random place, a random left-right flip, resized
    to size x size. Photos are loaded once, short side ``short`` (or ``size``, if larger)."""

    def __init__(self, paths, size, rng, short=SHORT_SIDE):
        self.size, self.rng = size, rng
        self.photos = [resize_short_side(_read(p), max(short, size), name=p) for p in paths]
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
            tile = Image.fromarray(photo[y:y + side, x:x + side])
            tile = np.asarray(tile.resize((self.size, self.size), Image.BILINEAR))
            out.append(tile[:, ::-1] if self.rng.random() < 0.5 else tile)
        return np.stack(out)


def _read(path):
    """The RGB photo at ``path``; whatever its reader raises names it (tinycnn.io.args)."""
    with cli.reading(path):
        return load_image(path)


def training_photos(extra=()):
    """The photos in images/photos (or $TINYCNN_IMAGES_DIR/photos) except HELD_OUT, and every
    image in ``extra`` (files or folders)."""
    folder = cli.images_dir() / "photos"
    paths = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                   and p.name not in HELD_OUT) if folder.is_dir() else []
    if extra:
        paths += [Path(p) for p in cli.expand_folders(extra)]
    return paths


def check_history(history):
    """ValueError unless ``history`` is one train() records: [step, loss] for steps 1, 2, ...
    in order, each loss finite and not negative."""
    for i, h in enumerate(history):
        if not (isinstance(h, list) and len(h) == 2 and type(h[0]) is int and h[0] == i + 1
                and type(h[1]) in (int, float) and 0 <= h[1] <= 1e300):
            raise ValueError(f"its history's entry {i + 1} is not [{i + 1}, the step's loss]")


def train(tnet, net, style, photos, *, preset, steps=STEPS, batch=BATCH, crop=CROP, lr=LR, seed=0,
          checkpoint=None, resume=False, checkpoint_every=CHECKPOINT_EVERY, log=None):
    """Train the transform network ``tnet`` in place for the style image ``style`` (a
    normalised (1, 3, h, w) batch) on random crops of ``photos`` (paths), with Adam on the
    perceptual loss through the loss network ``net``. Returns the history [(step, loss)].

    checkpoint: an .npz path written every checkpoint_every steps and at the end; resume:
    continue from it where it stopped, with the same draws of crops.
    """
    mean, std = net.meta["mean"], net.meta["std"]
    rng = np.random.default_rng(seed)
    crops = Crops(photos, crop, rng)
    loss_fn = perceptual_loss(net, style_targets_of(net, style, STYLE_LAYERS),
                              training_weights(preset, crop))
    opt, history, log = Adam(tnet), [], log or (lambda msg: None)
    if resume and checkpoint and Path(checkpoint).is_file():
        history = [tuple(h) for h in load_checkpoint(checkpoint, tnet, opt, rng, check_history)]
        log(f"resumed from {checkpoint} after step {len(history)}\n")
    elif resume:
        log(f"no checkpoint at {checkpoint} to resume from: training from the start\n")
    start, t0 = len(history), time.perf_counter()
    for step in range(start, steps):
        x = backend.asarray(np.stack([preprocess(im, mean=mean, std=std)[0]
                                      for im in crops.batch(batch)]))
        y, cache = tnet.forward(x)
        value, dy = loss_fn(y, x)
        if not math.isfinite(value):
            raise ValueError(f"the loss became {value} at step {step + 1}; try a smaller --lr")
        _, grads = tnet.backward(dy, cache)
        opt.step(grads, lr)
        history.append((step + 1, value))
        eta = (time.perf_counter() - t0) / (step + 1 - start) * (steps - step - 1)
        log(f"step {step + 1}/{steps}  loss {np.mean([v for _, v in history[-50:]]):.4g}  "
            f"{time.perf_counter() - t0:.0f} s, about {eta / 60:.0f} min left")
        if checkpoint and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            broken = tnet.first_not_finite()     # an update can overflow after its loss was read
            if broken:
                raise ValueError(f"parameter {broken[0]!r} became NaN or infinite by step "
                                 f"{step + 1}; try a smaller --lr")
            save_checkpoint(checkpoint, tnet, opt, rng, history)
    return history


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
    means = [[int(min(k + every, len(v))), float(v[k:k + every].mean())]
             for k in range(0, len(v), every)]
    Path(path).with_suffix(".log.json").write_text(json.dumps({"every": every, "mean_loss": means})
                                                   + "\n")


def _parser():
    p = cli.parser("Train fast style transfer's transform network (Johnson et al. 2016) for a "
                   "style.", target=False, image=False)
    p.add_argument("--style", default="starry_night", help=f"a preset ({', '.join(PRESETS)}) or "
                   "a style image (with starry_night's weights)")
    p.add_argument("--net", type=npz_to_write, default=None,
                   help="the .npz to write (default: weights/fast_style_STYLE.npz)")
    p.add_argument("--checkpoint", type=npz_to_write, default=None,
                   help=f"written every {CHECKPOINT_EVERY} steps (default: --net's, .ckpt.npz)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--images", nargs="+", default=(), help="more image files or folders to crop")
    p.add_argument("--steps", type=cli.count, default=STEPS, help="Adam steps")
    p.add_argument("--batch", type=cli.count, default=BATCH, help="crops per step")
    p.add_argument("--crop", type=cli.count, default=CROP, help="crop side, a multiple of 4")
    p.add_argument("--lr", type=cli.positive, default=LR, help="Adam's learning rate")
    p.add_argument("--width", type=cli.count, default=WIDTH, help="first layer's channels")
    p.add_argument("--blocks", type=cli.count, default=BLOCKS, help="residual blocks")
    return p


def main(argv=None):
    p = _parser()
    args = cli.parse_args(p, argv, __doc__)      # --out: the loss curve's PNG
    if args.crop % 4:
        p.error(f"argument --crop: {args.crop} is not a multiple of 4")
    preset, painting = load_style(args.style)
    net = cli.load_net(args, "squeezenet")
    style = backend.asarray(preprocess(painting, mean=net.meta["mean"], std=net.meta["std"]))
    # refused in one line, before a photo is read, if a step cannot fit (tinycnn/engine/memory.py)
    probe = transform_net(1, args.blocks)
    need = _memory.fast_style_training_need(net, probe, args.batch, args.width)
    memory.check_fits(f"--batch {args.batch} --crop", args.crop, need, lowest=4, step=4)
    path = Path(args.net) if args.net else weights_path(args.style)
    checkpoint = args.checkpoint or path.with_name(path.stem + ".ckpt.npz")
    photos = training_photos(args.images)
    tnet = transform_net(args.width, args.blocks, seed=args.seed)
    print(f"training a transform network (width {args.width}, {args.blocks} residual blocks, "
          f"{sum(v.size for _, v in tnet.named_params())} parameters) for {_name(args.style)} on "
          f"{len(photos)} photos ({', '.join(HELD_OUT)} held out), {args.steps} steps of "
          f"{args.batch} crops of {args.crop} px; checkpoints in {checkpoint}")
    t = time.perf_counter()
    history = train(tnet, net, style, photos, preset=preset, steps=args.steps, batch=args.batch,
                    crop=args.crop, lr=args.lr, seed=args.seed, checkpoint=checkpoint,
                    resume=args.resume, log=lambda msg: print(msg, end="\r", flush=True))
    tnet.save(path)
    write_log(path, history)
    plot = render.save(loss_curve(history, _name(args.style)),
                       cli.output_path(args, f"fast_style_{_name(args.style)}_loss"))
    print(f"\nwrote {path} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}) after "
          f"{time.perf_counter() - t:.0f} s this run; final loss (mean of the last 50 batches) "
          f"{np.mean([v for _, v in history[-50:]]):.4g}; loss curve {plot}")


if __name__ == "__main__":
    cli.run(main)
