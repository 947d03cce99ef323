"""Train a network with tinycnn's own backward passes (SGD, augmentation, checkpoints).

    python -m tinycnn.train --epochs 15 --out weights/cifar10_net.npz     (make train)

Recipe: SGD with Nesterov momentum 0.9, weight decay 5e-4, batch 128, learning rate
warmed up linearly for one epoch to 0.05 then cosine-annealed to zero; every
training image randomly cropped from a 4-pixel zero-padded copy and flipped
horizontally with probability 1/2 (the standard CIFAR-10 augmentation of He et al.
2016). Progress is printed every few seconds; a checkpoint (tinycnn.io.checkpoint) is
written after every epoch and ``--resume`` continues from it, bit for bit.
"""
import json
import math
import time
from pathlib import Path

import numpy as np

from . import backend
from .io.args import (ArgumentParser, count, fail, index, npz_to_write, one_line_errors,
                      positive, reading)
from .io.checkpoint import load_checkpoint, save_checkpoint
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
    Raises TrainingDiverged, before the epoch's checkpoint, once the loss or a parameter is not
    finite.
    """
    x_train, y_train, x_test, y_test = data
    rng = np.random.default_rng(seed)
    opt = SGD(net, momentum=momentum, weight_decay=weight_decay)
    steps_per_epoch = len(x_train) // batch_size
    total = epochs * steps_per_epoch
    history = []
    if resume and checkpoint and Path(checkpoint).is_file():
        history = load_checkpoint(checkpoint, net, opt, rng, check_history)   # one per epoch done
        log(f"resumed from {checkpoint} after epoch {len(history)}")
    elif resume:
        log(f"no checkpoint at {checkpoint} to resume from: training from the start")
    start_epoch = len(history)
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
            step_lr = warmup_cosine(epoch * steps_per_epoch + k, total, lr,
                                    warmup_epochs * steps_per_epoch)
            # labels checked on the host
            loss, scores = train_step(net, opt, xb, y_train[idx], step_lr)
            # running sums stay on the device; they are read only when a progress line is due
            loss_sum = loss_sum + loss.astype(np.float64) * len(idx)
            correct = correct + (scores.argmax(axis=1) == backend.asarray(y_train[idx])).sum()
            seen += len(idx)
            if time.time() - last > 10 or k == steps_per_epoch - 1:
                last = time.time()
                if not math.isfinite(float(loss_sum)):
                    raise TrainingDiverged(f"loss {float(loss_sum) / seen:.4g} at epoch "
                                           f"{epoch + 1}, step {k + 1}")
                rate = seen / (last - t0)
                log(f"epoch {epoch + 1}/{epochs}  step {k + 1}/{steps_per_epoch}  "
                    f"loss {float(loss_sum) / seen:.3f}  "
                    f"train acc {int(correct) / seen:.3f}  lr {step_lr:.4f}  {rate:.0f} img/s  "
                    f"epoch ETA {(len(x_train) - seen) / rate:.0f}s")
        # the epoch's last update can overflow after its loss was read
        broken = net.first_not_finite()
        if broken:
            raise TrainingDiverged(f"parameter {broken[0]!r} holds {broken[1]} NaN or infinite "
                                   f"value(s) after epoch {epoch + 1}")
        test_acc = evaluate(net, x_test_n, y_test)
        history.append({"epoch": epoch + 1, "loss": float(loss_sum) / seen,
                        "train_acc": int(correct) / seen, "test_acc": test_acc, "lr": step_lr,
                        "seconds": time.time() - t0})
        log(f"epoch {epoch + 1}: test accuracy {test_acc:.4f} ({time.time() - t0:.0f}s)")
        if checkpoint:
            save_checkpoint(checkpoint, net, opt, rng, history)
    net.eval()
    return history


RECORDED = ("loss", "train_acc", "test_acc", "lr", "seconds")   # per epoch, besides its number


def check_history(history):
    """ValueError unless ``history`` is one train() records: epochs 1, 2, ... in order, each
    with the numbers of RECORDED, not negative, finite, accuracies at most 1."""
    for i, h in enumerate(history):
        ok = (isinstance(h, dict) and type(h.get("epoch")) is int and h["epoch"] == i + 1
              and all(type(h.get(k)) in (int, float) and 0 <= h[k] <= 1e300 for k in RECORDED))
        if not ok or h["train_acc"] > 1 or h["test_acc"] > 1:
            raise ValueError(f"its history's entry {i + 1} is not the record of epoch {i + 1} "
                             f"(an epoch number and finite {', '.join(RECORDED)})")


def parser():
    p = ArgumentParser(description="Train the CIFAR-10 net with tinycnn (make train).",
                       module="tinycnn.train")
    p.add_argument("--epochs", type=count, default=15, help="passes over the training images")
    p.add_argument("--batch-size", type=count, default=128, help="images per SGD step")
    p.add_argument("--lr", type=positive, default=0.05, help="peak learning rate of the schedule")
    p.add_argument("--seed", type=index, default=0,
                   help="seed of the initialisation, shuffling, augmentation and dropout")
    p.add_argument("--limit", type=count, default=None,
                   help="train on the first N shuffled images only (smoke test)")
    p.add_argument("--out", type=npz_to_write, default="weights/cifar10_net.npz",
                   help="where to write the trained weights (.npz)")
    p.add_argument("--checkpoint", type=npz_to_write, default="cifar10_net.ckpt.npz",
                   help="checkpoint written after every epoch")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    return p


def training_data(limit, seed):
    """(x_train, y_train, x_test, y_test) of CIFAR-10; limit: the first ``limit`` training
    images of a shuffle by ``seed`` only."""
    from .io.data import load_cifar10
    x_train, y_train = load_cifar10("train")
    x_test, y_test = load_cifar10("test")
    if limit:
        keep = np.random.default_rng(seed).permutation(len(x_train))[:limit]
        x_train, y_train = x_train[keep], y_train[keep]
    return x_train, y_train, x_test, y_test


def write_log(path, args, seconds, history):
    """<weights>.log.json beside the weights: the arguments, the backend, the time and the
    history (make training_curve draws it)."""
    log_path = Path(path).with_suffix(".log.json")
    log_path.write_text(json.dumps({"args": vars(args), "backend": backend.name(),
                                    "wall_seconds": seconds, "history": history}, indent=1))
    return log_path


def main(argv=None):
    from .engine.malloc import keep_freed_memory
    from .models import cifar10_net, normalize
    p = parser()
    args = p.parse_args(argv)
    keep_freed_memory()     # no fresh pages for each batch's temporaries: tinycnn/engine/malloc.py
    # bad input (data, a checkpoint to resume) is one line, as in every vis command
    with one_line_errors("a smaller --batch-size or --limit needs less"):
        with reading("the CIFAR-10 data", name_it=False):
            data = training_data(args.limit, args.seed)
        if args.batch_size > len(data[0]):
            p.error(f"argument --batch-size: {args.batch_size} is more than the {len(data[0])} "
                    "training images")
        net = cifar10_net(weights=False, seed=args.seed)
        t0 = time.time()
        try:
            with np.errstate(over="ignore", invalid="ignore"):   # a diverged run: one line below
                history = train(net, data, epochs=args.epochs, batch_size=args.batch_size,
                                lr=args.lr, seed=args.seed, checkpoint=args.checkpoint,
                                resume=args.resume, normalize=lambda b: normalize(b, net),
                                log=lambda s: print(s, flush=True))
        except TrainingDiverged as e:
            fail(f"training diverged ({e}); {args.out} not written: try a smaller --lr")
        net.save(args.out)
        log_path = write_log(args.out, args, time.time() - t0, history)
    print(f"wrote {args.out} and {log_path}; test accuracy {history[-1]['test_acc']:.4f}")


if __name__ == "__main__":
    main()
