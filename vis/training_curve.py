"""Training curve of the shipped CIFAR-10 net: loss and accuracy per epoch.

Reads the log that ``make train`` writes beside the weights
(weights/cifar10_net.log.json) and draws loss and train/test accuracy.

    python -m vis.training_curve                 (part of make demo)
"""
import json
import math
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


def read_log(path):
    """The JSON log ``make train`` writes; ValueError naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():      # a FIFO or a device would block or never end
        raise FileNotFoundError(f"no training log file at {path}")
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path} is not a JSON training log: {e}") from None
    history = log.get("history") if isinstance(log, dict) else None
    keys = ("epoch", "loss", "train_acc", "test_acc")
    if not (isinstance(history, list) and history and all(
            isinstance(h, dict)
            and all(isinstance(h.get(k), (int, float)) and math.isfinite(h[k]) for k in keys)
            for h in history)):
        raise ValueError(f"{path}: expected a 'history' of one or more epochs, each with finite "
                         f"numbers {', '.join(keys)} (a diverged run's loss is NaN)")
    return log


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
