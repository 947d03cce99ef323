"""Train a network with tinycnn's own backward passes (SGD, augmentation, checkpoints).

    python -m tinycnn.train --epochs 15 --out weights/cifar10_net.npz     (make train)

Recipe: SGD with Nesterov momentum 0.9, weight decay 5e-4, batch 128, learning rate
warmed up linearly for one epoch to 0.05 then cosine-annealed to zero; every
training image randomly cropped from a 4-pixel zero-padded copy and flipped
horizontally with probability 1/2 (the standard CIFAR-10 augmentation of He et al.
2016). Progress is printed every few seconds; a checkpoint is written after every
epoch and ``--resume`` continues from it, bit for bit.
"""
import argparse
import json
import math
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from . import backend
from .losses import softmax_cross_entropy
from .optim import SGD, warmup_cosine


def augment(x, rng, pad=4):
    """Random crop (from a zero-padded copy) and horizontal flip of each image.

    x: (N, C, H, W) -> (N, C, H, W)
    """
    N, C, H, W = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, N))
    flip = rng.random(N) < 0.5
    out = np.empty_like(x)
    for n in range(N):
        crop = padded[n, :, dy[n]:dy[n] + H, dx[n]:dx[n] + W]
        out[n] = crop[:, :, ::-1] if flip[n] else crop
    return out


def evaluate(net, x, y, batch_size=500):
    """Accuracy of ``net`` on (x, y), in evaluation mode."""
    net.eval()
    correct = 0                                   # counted on the device, read once at the end
    for i in range(0, len(x), batch_size):
        scores = net(backend.asarray(x[i:i + batch_size]))
        correct = correct + (scores.argmax(axis=1) == backend.asarray(y[i:i + batch_size])).sum()
    return int(correct) / len(x)


def save_checkpoint(path, net, opt, epoch, rng, history):
    state = {f"param/{k}": backend.to_numpy(v) for k, v in net.named_params()}
    state.update({f"velocity/{k}": backend.to_numpy(v) for k, v in opt.velocity.items()})
    state["epoch"] = np.array(epoch)
    state["rng"] = np.array(json.dumps(rng.bit_generator.state))
    state["history"] = np.array(json.dumps(history))
    tmp = Path(str(path) + ".tmp.npz")
    np.savez(tmp, **state)
    tmp.replace(path)  # never leave a half-written checkpoint


class CheckpointError(ValueError):
    """A --resume checkpoint that is not one of this training's (truncated, forged, another net's)."""


def load_checkpoint(path, net, opt, rng):
    """Restore the parameters, the optimiser's velocities and the random state; returns (epoch,
    history). A file that is not such a checkpoint is one CheckpointError naming the problem."""
    from .io.archives import FORGED_ZIP
    from .net import StateDictError
    if not zipfile.is_zipfile(path):     # np.load would try it as a pickle ("contains pickled data")
        raise CheckpointError(f"cannot resume from {path}: it is not an .npz checkpoint")
    try:
        with np.load(path, allow_pickle=False) as f:
            net.load_state_dict({k[6:]: f[k] for k in f.files if k.startswith("param/")}, source=str(path))
            for k in opt.velocity:
                opt.velocity[k] = backend.asarray(check_shape(f[f"velocity/{k}"], opt.velocity[k], k))
            rng.bit_generator.state = json.loads(str(f["rng"]))
            return int(f["epoch"]), json.loads(str(f["history"]))
    except StateDictError as e:
        raise CheckpointError(f"cannot resume from {path}: {e}") from None
    except (OSError, KeyError, TypeError, *FORGED_ZIP) as e:   # ValueError: JSON and shapes too
        raise CheckpointError(f"cannot resume from {path}: not a checkpoint of this training "
                              f"({type(e).__name__}: {e})") from None


def check_shape(stored, current, name):
    if stored.shape != current.shape or stored.dtype.kind != "f":
        raise ValueError(f"velocity/{name} is {stored.dtype} {stored.shape}, the parameter {current.shape}")
    return stored


def train_step(net, opt, x, y, lr):
    """One SGD step on a batch: forward, softmax cross-entropy, backward, update in place.

    x: (N, C, H, W) on the network's device; y: (N,) integer labels. Returns (loss, scores).
    """
    scores, cache = net.forward(x)
    loss, dscores = softmax_cross_entropy(scores, y)
    _, grads = net.backward(dscores, cache)
    opt.step(grads, lr)
    return loss, scores


class TrainingDiverged(ArithmeticError):
    """The running loss (checked at each progress line) or a parameter (checked at the end of each
    epoch) is no longer finite: the lr is too large."""


def train(net, data, *, epochs, batch_size=128, lr=0.05, momentum=0.9, weight_decay=5e-4,
          warmup_epochs=1, seed=0, checkpoint=None, resume=False, log=print, normalize=None):
    """Train ``net`` on data = (x_train, y_train, x_test, y_test); returns the history.

    normalize: function applied to each (augmented) batch before the forward pass.
    history: one dict per epoch (loss, train and test accuracy, lr, seconds).
    Raises TrainingDiverged, before the epoch's checkpoint, once the loss or a parameter is not finite.
    """
    x_train, y_train, x_test, y_test = data
    rng = np.random.default_rng(seed)
    opt = SGD(net, momentum=momentum, weight_decay=weight_decay)
    steps_per_epoch = len(x_train) // batch_size
    total = epochs * steps_per_epoch
    start_epoch, history = 0, []
    if resume and checkpoint and Path(checkpoint).is_file():
        start_epoch, history = load_checkpoint(checkpoint, net, opt, rng)
        log(f"resumed from {checkpoint} after epoch {start_epoch}")
    elif resume:
        log(f"no checkpoint at {checkpoint} to resume from: training from the start")
    normalize = normalize or (lambda b: b)
    x_test_n = normalize(x_test)
    for epoch in range(start_epoch, epochs):
        net.train()
        order = rng.permutation(len(x_train))
        t0 = last = time.time()
        loss_sum = correct = seen = 0
        for k in range(steps_per_epoch):
            idx = order[k * batch_size:(k + 1) * batch_size]
            xb = backend.asarray(normalize(augment(x_train[idx], rng)))
            step_lr = warmup_cosine(epoch * steps_per_epoch + k, total, lr, warmup_epochs * steps_per_epoch)
            loss, scores = train_step(net, opt, xb, y_train[idx], step_lr)   # labels checked on the host
            # running sums stay on the device; they are read only when a progress line is due
            loss_sum = loss_sum + loss.astype(np.float64) * len(idx)
            correct = correct + (scores.argmax(axis=1) == backend.asarray(y_train[idx])).sum()
            seen += len(idx)
            if time.time() - last > 10 or k == steps_per_epoch - 1:
                last = time.time()
                if not math.isfinite(float(loss_sum)):
                    raise TrainingDiverged(f"loss {float(loss_sum) / seen:.4g} at epoch {epoch + 1}, step {k + 1}")
                rate = seen / (last - t0)
                log(f"epoch {epoch + 1}/{epochs}  step {k + 1}/{steps_per_epoch}  loss {float(loss_sum) / seen:.3f}  "
                    f"train acc {int(correct) / seen:.3f}  lr {step_lr:.4f}  {rate:.0f} img/s  "
                    f"epoch ETA {(len(x_train) - seen) / rate:.0f}s")
        broken = net.first_not_finite()       # the epoch's last update can overflow after its loss was read
        if broken:
            raise TrainingDiverged(f"parameter {broken[0]!r} holds {broken[1]} NaN or infinite value(s) "
                                   f"after epoch {epoch + 1}")
        test_acc = evaluate(net, x_test_n, y_test)
        history.append({"epoch": epoch + 1, "loss": float(loss_sum) / seen, "train_acc": int(correct) / seen,
                        "test_acc": test_acc, "lr": step_lr, "seconds": time.time() - t0})
        log(f"epoch {epoch + 1}: test accuracy {test_acc:.4f} ({time.time() - t0:.0f}s)")
        if checkpoint:
            save_checkpoint(checkpoint, net, opt, epoch + 1, rng, history)
    net.eval()
    return history


class OneLineParser(argparse.ArgumentParser):
    """A bad command line is one line, not a usage block."""
    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def number(kind, low, *, above=False):
    """An argparse type: a finite ``kind`` >= low (> low with above)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low or (above and value == low):
            raise argparse.ArgumentTypeError(f"{text} is not {'above' if above else 'at least'} {low}")
        return value
    return parse


def main(argv=None):
    from .io.data import load_cifar10
    from .models import cifar10_net, normalize

    p = OneLineParser(description="Train the CIFAR-10 net with tinycnn (make train).", prog="python -m tinycnn.train")
    p.add_argument("--epochs", type=number(int, 1), default=15)
    p.add_argument("--batch-size", type=number(int, 1), default=128)
    p.add_argument("--lr", type=number(float, 0, above=True), default=0.05)
    p.add_argument("--seed", type=number(int, 0), default=0)
    p.add_argument("--limit", type=number(int, 1), default=None,
                   help="train on the first N shuffled images only (smoke test)")
    p.add_argument("--out", default="weights/cifar10_net.npz", help="where to write the trained weights (.npz)")
    p.add_argument("--checkpoint", default="cifar10_net.ckpt.npz", help="checkpoint written after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    args = p.parse_args(argv)
    for option, path in (("--out", args.out), ("--checkpoint", args.checkpoint)):   # before hours of training
        if not path.endswith(".npz") or Path(path).is_dir():
            p.error(f"argument {option}: {path} is not the path of an .npz file to write")
        try:
            Path(path).resolve().parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            p.error(f"argument {option}: cannot make its folder: {e}")
    from .engine.malloc import keep_freed_memory
    keep_freed_memory()             # no fresh pages for every batch's temporaries: tinycnn/engine/malloc.py

    from .io.data import DataError
    try:
        x_train, y_train = load_cifar10("train")
        x_test, y_test = load_cifar10("test")
    except DataError as e:
        sys.exit(f"make train: {e}")
    if args.limit:
        keep = np.random.default_rng(args.seed).permutation(len(x_train))[:args.limit]
        x_train, y_train = x_train[keep], y_train[keep]
    if args.batch_size > len(x_train):
        p.error(f"argument --batch-size: {args.batch_size} is more than the {len(x_train)} training images")
    net = cifar10_net(weights=False, seed=args.seed)
    t0 = time.time()
    try:
        with np.errstate(over="ignore", invalid="ignore"):      # a diverging run is told below, in one line
            history = train(net, (x_train, y_train, x_test, y_test), epochs=args.epochs,
                            batch_size=args.batch_size, lr=args.lr, seed=args.seed, checkpoint=args.checkpoint,
                            resume=args.resume, normalize=lambda b: normalize(b, net),
                            log=lambda s: print(s, flush=True))
    except CheckpointError as e:
        sys.exit(f"make train: {e}")
    except TrainingDiverged as e:
        sys.exit(f"make train: training diverged ({e}); {args.out} not written: try a smaller --lr")
    net.save(args.out)
    log_path = Path(args.out).with_suffix(".log.json")
    log_path.write_text(json.dumps({"args": vars(args), "backend": backend.name(),
                                    "wall_seconds": time.time() - t0, "history": history}, indent=1))
    print(f"wrote {args.out} and {log_path}; final test accuracy {history[-1]['test_acc']:.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
