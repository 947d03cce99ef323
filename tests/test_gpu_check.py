"""make gpu-check and make gpu-data, without a GPU: the CIFAR-10 subset reads back as the
images it was cut from, and the check's launch-cost step runs under the strict stand-in."""
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.cifar_subset import write_subset
from tinycnn.io.data import load_cifar10

ROOT = Path(__file__).resolve().parents[1]


def images(n, seed):
    """n smooth random images (4 x 4 blocks of 8 x 8 pixels: JPEG keeps them closely)."""
    blocks = np.random.default_rng(seed).integers(0, 256, (n, 4, 4, 3), dtype=np.uint8)
    return blocks.repeat(8, axis=1).repeat(8, axis=2), np.arange(n) % 10


def jpeg(image):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def jpeg_archive(folder, n_train=60, n_test=40):
    """A CIFAR-10 JPEG archive of random images, laid out as the shared one."""
    pixels, labels = images(n_train + n_test, 0)
    encoded = [jpeg(p) for p in pixels]
    folder.mkdir()
    np.savez(folder / "cifar10-jpeg.npz", jpeg_bytes=np.frombuffer(b"".join(encoded), np.uint8),
             offsets=np.concatenate([[0], np.cumsum([len(b) for b in encoded])]),
             labels=labels.astype(np.uint8),
             is_test=(np.arange(n_train + n_test) >= n_train).astype(np.uint8))
    return folder / "cifar10-jpeg.npz"


def test_a_subset_of_the_jpeg_archive_holds_its_images_unchanged(tmp_path):
    source = jpeg_archive(tmp_path / "full")
    path = write_subset(tmp_path / "subset", test=20, train=30, seed=1, source=source)
    full = {split: load_cifar10(split, data_dir=tmp_path / "full") for split in ("train", "test")}
    for split, count in (("train", 30), ("test", 20)):
        x, y = load_cifar10(split, data_dir=path.parent)
        assert x.shape == (count, 3, 32, 32)
        assert (np.bincount(y, minlength=10) == count // 10).all()        # balanced classes
        fx, fy = full[split]
        for image, label in zip(x, y):                   # each one an image of the source
            match = np.flatnonzero((fx == image).all(axis=(1, 2, 3)))
            assert len(match) == 1 and fy[match[0]] == label


def test_a_subset_of_the_official_batches_is_close_to_them(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, seed in [(f"data_batch_{i}", i) for i in range(1, 6)] + [("test_batch", 9)]:
        pixels, labels = images(20, seed)
        batch = {b"data": pixels.transpose(0, 3, 1, 2).reshape(20, -1),
                 b"labels": labels.tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
    path = write_subset(tmp_path / "subset", test=10, train=10, seed=0, source=folder)
    x, y = load_cifar10("test", data_dir=path.parent)
    fx, fy = load_cifar10("test", data_dir=tmp_path)
    for image, label in zip(x, y):         # re-encoded as JPEG: the nearest source image is it
        errors = np.abs(fx - image).mean(axis=(1, 2, 3))
        assert errors.min() < 0.05 and fy[errors.argmin()] == label


@pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None,
                    reason="the strict stand-in compiles kernels.cu with g++, not installed")
def test_the_launch_cost_step_runs_under_the_stand_in(tmp_path):
    env = dict(os.environ, PYTHONPATH=f"{ROOT / 'tests' / 'strict_cupy'}{os.pathsep}{ROOT}")
    done = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--out", str(tmp_path),
                           "--skip", "agreement", "bench", "tests", "figures"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["device"]["gpu"].startswith("strict CuPy stand-in")
    cost = result["launch_cost"]
    assert cost["kernel_us"] > 0 and cost["cupy_elementwise_us"] > 0, cost
