"""Training curve of the shipped CIFAR-10 net: loss and accuracy per epoch.

Reads the log that ``make train`` writes beside the weights
(weights/cifar10_net.log.json) and draws loss and train/test accuracy.

    python -m vis.training_curve                 (part of make demo)
"""
import json

from tinycnn.weights import find_weights
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


def main(argv=None):
    p = cli.ArgumentParser(description="Draw the CIFAR-10 net's training curve.", module="vis.training_curve")
    p.add_argument("--log", default=None, help="training log (default: weights/cifar10_net.log.json)")
    p.add_argument("--out", default="figures/training_curve.png", help="PNG to write (default: %(default)s)")
    args = cli.parse_args(p, argv, __doc__)
    log = json.loads(open(args.log or find_weights("cifar10_net.log.json")).read())
    final = log["history"][-1]
    image = render.caption(training_curve(log["history"]),
                           f"CIFAR-10 net trained by tinycnn: {len(log['history'])} epochs, "
                           f"test accuracy {final['test_acc']:.1%}")
    print(f"wrote {render.save(image, args.out)}")


if __name__ == "__main__":
    cli.run(main)
