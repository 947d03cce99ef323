"""The shipped CIFAR-10 weights: accuracy and checksum as recorded in weights/README.md."""
import hashlib
import re
from pathlib import Path


from tinycnn.data import load_cifar10
from tinycnn.models import cifar10_net, normalize
from tinycnn.train import evaluate

from .conftest import shared_dir

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def recorded(field):
    text = (WEIGHTS / "README.md").read_text()
    match = re.search(rf"^- {field}: `?([^`\n]+)`?$", text, re.MULTILINE)
    assert match, f"weights/README.md records no '{field}'"
    return match.group(1).strip()


def test_sha256_matches_the_record():
    digest = hashlib.sha256((WEIGHTS / "cifar10_net.npz").read_bytes()).hexdigest()
    assert digest == recorded("sha256")


def test_shipped_weights_reach_the_recorded_accuracy():
    x, y = load_cifar10("test", data_dir=shared_dir("TINYCNN_DATA_DIR", "data"))
    net = cifar10_net()
    accuracy = evaluate(net, normalize(x, net), y)
    claimed = float(re.match(r"([\d.]+) %", recorded("test accuracy")).group(1)) / 100
    assert claimed >= 0.80
    # the record was measured on this same data; BLAS summation order may flip a handful of images
    assert abs(accuracy - claimed) <= 0.002, (accuracy, claimed)
