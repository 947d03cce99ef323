"""The two models: architecture, torchvision naming, reference logits, real photos."""
import numpy as np
import pytest

from tinycnn.backend import to_numpy
from tinycnn.gradcheck import rel_error
from tinycnn.io.images import load_image, preprocess
from tinycnn.io.weights import torchvision_name
from tinycnn.models import cifar10_net, squeezenet1_1

from tinycnn.io.weights import PROJECT_WEIGHTS

from .conftest import image_file, on_device


def test_squeezenet_shapes_and_names():
    net = squeezenet1_1(weights=False)
    # as the shared README states
    assert sum(int(np.prod(p.shape)) for _, p in net.named_params()) == 1_235_496
    acts = net.activations(on_device(np.zeros((1, 3, 224, 224), np.float32)),
                           ["conv1", "pool1", "fire3", "pool5", "fire9", "conv10", "pool10"])
    shapes = {k: tuple(v.shape) for k, v in acts.items()}
    assert shapes == {
        "conv1": (1, 64, 111, 111),
        "pool1": (1, 64, 55, 55),
        "fire3": (1, 128, 55, 55),
        "pool5": (1, 256, 13, 13),
        "fire9": (1, 512, 13, 13),
        "conv10": (1, 1000, 13, 13),
        "pool10": (1, 1000),
    }
    # every parameter maps onto one of torchvision's 52 state-dict keys, one to one
    names = {torchvision_name(n) for n, _ in net.named_params()}
    assert (
        len(names) == 52
        and "features.12.expand3x3.bias" in names
        and "classifier.1.weight" in names
    )


def test_squeezenet_reproduces_reference_logits():
    net = squeezenet1_1(PROJECT_WEIGHTS / "squeezenet1_1.npz")
    with np.load(PROJECT_WEIGHTS / "squeezenet1_1_reference.npz") as ref:
        logits = to_numpy(net(on_device(ref["input"])))
        assert rel_error(logits, ref["logits"]) < 1e-4


@pytest.mark.parametrize(
    "photo,expected",
    [
        ("chelsea.png", "cat"),
        ("coffee.png", "espresso"),
        ("butterfly.jpg", "butterfly|admiral|monarch"),
    ],
)
def test_squeezenet_recognises_photos(photo, expected):
    import re
    net = squeezenet1_1()
    image = load_image(image_file(photo))
    x = preprocess(image, size=224, mean=net.meta["mean"], std=net.meta["std"])
    top5 = np.argsort(-to_numpy(net(on_device(x)))[0])[:5]
    names = [net.meta["classes"][i] for i in top5]
    assert any(re.search(expected, n) for n in names), names


def test_missing_weights_say_where_and_how(tmp_path, monkeypatch):
    from tinycnn.io import weights
    monkeypatch.setenv("TINYCNN_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(
        FileNotFoundError,
        match=f"{weights.TORCHVISION_NPZ} not found in {tmp_path} or .*weights"
        ".*run `make weights`",
    ):
        weights.find_weights(weights.TORCHVISION_NPZ)
    # the shipped file deleted
    monkeypatch.setattr(weights, "PROJECT_WEIGHTS", tmp_path / "deleted")
    with pytest.raises(
        FileNotFoundError,
        match="squeezenet1_1.npz not found in .* or .*deleted; it ships with tinycnn "
        "in weights/; `git checkout weights/squeezenet1_1.npz` restores it",
    ):
        squeezenet1_1()


def test_squeezenet_refuses_another_models_weights(tmp_path):
    cifar10_net(weights=False).save(tmp_path / "cifar.npz")
    with pytest.raises(
        ValueError,
        match=r"does not match SqueezeNet 1.1 \(keyed by torchvision's names\) "
        r"\(is it from another model\?\): missing 52 key\(s\): features.0.weight",
    ):
        squeezenet1_1(tmp_path / "cifar.npz")


def test_cifar10_net_shapes():
    net = cifar10_net(weights=False)
    out = net(on_device(np.zeros((2, 3, 32, 32), np.float32)))
    assert out.shape == (2, 10)
    assert net.layer("conv1").kernel_size >= 5
