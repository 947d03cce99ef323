"""Training curve of the shipped CIFAR-10 net: loss and accuracy per epoch.

Reads the log that ``make train`` writes beside the weights
(weights/cifar10_net.log.json) and draws loss and train/test accuracy.

    python -m vis.training_curve                 (part of make demo)
"""
import json
from pathlib import Path

from tinycnn.io.weights import find_weights
from vis import cli, render


def training_curve(history):
    """history: [{"epoch", "loss", "train_acc", "test_acc"}, ...] -> uint8 picture."""
    epochs = [h["epoch"] for h in history]
    loss = render.line_plot({"training loss": (epochs, [h["loss"] for h in history])},
                            title="loss", xlabel="epoch")
    acc = render.line_plot({"train (augmented)": (epochs, [h["train_acc"] for h in history]),
                            "test": (epochs, [h["test_acc"] for h in history])},
                           title="accuracy", xlabel="epoch", ylim=(0.0, 1.0))
    return render.hstack([loss, acc])


MAX_LOG_BYTES = 4 << 20   # a log of make train holds about 200 bytes an epoch: 20,000 epochs
MAX_LOSS = 1e6            # cross-entropy starts near ln(10); the plot's scale needs a range
KEYS = ("epoch", "loss", "train_acc", "test_acc")


def read_log(path):
    """The JSON log ``make train`` writes; ValueError naming the file and what is wrong with it:
    larger than MAX_LOG_BYTES, not JSON (or nested too deeply for the parser), or not a history
    of epochs 1, 2, ... each with a loss in [0, MAX_LOSS] and accuracies in [0, 1]."""
    path = Path(path)
    if not path.is_file():      # a FIFO or a device would block or never end
        raise FileNotFoundError(f"no training log file at {path}")
    with path.open("rb") as f:
        data = f.read(MAX_LOG_BYTES + 1)
    if len(data) > MAX_LOG_BYTES:
        raise ValueError(f"{path} is larger than {MAX_LOG_BYTES >> 20} MB: not a training log")
    try:
        log = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:   # 5000 digits: a ValueError
        why = "it is nested too deeply" if isinstance(e, RecursionError) else e
        raise ValueError(f"{path} is not a JSON training log: {why}") from None
    history = log.get("history") if isinstance(log, dict) else None
    if not (isinstance(history, list) and history
            and all(_is_epoch(h, i + 1) for i, h in enumerate(history))):
        raise ValueError(f"{path}: expected a 'history' of epochs 1, 2, ..., each with finite "
                         f"numbers {', '.join(KEYS)}, the loss at most {MAX_LOSS:g} and the "
                         "accuracies in [0, 1] (a diverged run's loss is NaN)")
    return log


def _is_epoch(h, epoch):
    """Whether h is the record {"epoch": epoch, "loss", "train_acc", "test_acc"} of make train."""
    if not (isinstance(h, dict) and type(h.get("epoch")) is int and h["epoch"] == epoch):
        return False
    numbers = [h.get(k) for k in KEYS[1:]]
    if not all(type(v) in (int, float) for v in numbers):
        return False
    loss, train_acc, test_acc = numbers
    return 0 <= loss <= MAX_LOSS and 0 <= train_acc <= 1 and 0 <= test_acc <= 1


def main(argv=None):
    p = cli.ArgumentParser(description="Draw the CIFAR-10 net's training curve.",
                           module="vis.training_curve")
    p.add_argument("--log", default=None,
                   help="training log (default: weights/cifar10_net.log.json)")
    p.add_argument("--out", default="figures/training_curve.png",
                   help="PNG to write (default: %(default)s)")
    args = cli.parse_args(p, argv, __doc__)
    log = read_log(args.log or find_weights("cifar10_net.log.json"))
    final = log["history"][-1]
    image = render.caption(training_curve(log["history"]),
                           f"CIFAR-10 net trained by tinycnn: {len(log['history'])} epochs, "
                           f"test accuracy {final['test_acc']:.1%}")
    print(f"wrote {render.save(image, args.out)}")


if __name__ == "__main__":
    cli.run(main)
