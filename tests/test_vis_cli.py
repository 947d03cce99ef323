"""The vis command lines: bad input ends in one clear line, not a traceback."""
import subprocess
import sys

import pytest

from .conftest import shared_dir


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", ["filters", "saliency", "guided_backprop", "occlusion", "attribution",
                                    "max_patches", "neighbors", "embedding", "class_visualization", "fooling",
                                    "deepdream", "feature_inversion", "texture_synthesis", "style_transfer",
                                    "multifaceted", "training_curve"])
def test_every_module_explains_itself(module):
    done = run(f"vis.{module}", "--help")
    assert done.returncode == 0 and "usage:" in done.stdout


def test_bad_input_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYCNN_WEIGHTS_DIR", str(shared_dir("TINYCNN_WEIGHTS_DIR", "weights")))
    (tmp_path / "notes.txt").write_text("not an image")
    cases = [
        (["vis.saliency", "--image", str(tmp_path / "missing.jpg")], "no image file at"),
        (["vis.saliency", "--image", str(tmp_path / "notes.txt")], "is not an image file"),
        (["vis.saliency", "--target", "espreso"], "unknown class 'espreso'; close matches: espresso"),
        (["vis.guided_backprop", "--layer", "fire22"], "unknown layer 'fire22'"),
        (["vis.guided_backprop", "--layer", "fire2", "--channel", "500"], "channel 500 is out of range"),
        (["vis.filters", "--model", "squeezenet", "--layer", "relu1"], "not a convolution"),
        (["vis.filters", "--model", "alexnet"], "unknown model 'alexnet'"),
    ]
    for args, message in cases:
        done = run(*args)
        assert done.returncode != 0 and message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0, done.stderr
