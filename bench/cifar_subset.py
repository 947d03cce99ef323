"""A CIFAR-10 subset small enough to travel with the repository to a lent GPU machine, so
that `make gpu-check` draws the CIFAR-10 figures there too.

    python -m bench.cifar_subset --out gpu-data          (make gpu-data)
    TINYCNN_DATA_DIR=gpu-data make figures               (or: make gpu-check, which uses it)

It reads CIFAR-10 where tinycnn finds it (``make data``'s batches or ``$TINYCNN_DATA_DIR``'s
JPEG archive) and writes OUT/cifar10-jpeg.npz in the archive's layout (JPEG bytes, offsets,
labels, test flags), with a class-balanced random choice of test and training images. From
the JPEG archive the bytes are copied as they are; from the official batches each image is
encoded as a JPEG of quality 95. The subset is never committed (the data's licence does
not allow it; .gitignore lists gpu-data/).
"""
import argparse
import io
import sys
from pathlib import Path

import numpy as np

from tinycnn.io.data import CLASSES, DataError, find_cifar10, load_python_batches
from tinycnn.io.weights import read_npz


def balanced_choice(labels, count, rng):
    """Indices of ``count`` images, about count / 10 of each class, in ascending order."""
    per_class = -(-count // len(CLASSES))
    chosen = [rng.permutation(np.flatnonzero(labels == c))[:per_class]
              for c in range(len(CLASSES))]
    return np.sort(rng.permutation(np.concatenate(chosen))[:count])


def jpeg_images(source, split):
    """(list of JPEG bytes, labels) of one split of CIFAR-10 at ``source``."""
    if source.is_dir():
        from PIL import Image
        x, y = load_python_batches(source, split)
        pixels = (x * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
        encoded = []
        for image in pixels:
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, "JPEG", quality=95)
            encoded.append(buffer.getvalue())
        return encoded, y
    f = read_npz(source, ("jpeg_bytes", "offsets", "labels", "is_test"), error=DataError)
    blob, offsets = f["jpeg_bytes"].reshape(-1), f["offsets"]
    keep = np.flatnonzero(f["is_test"] == (split == "test"))
    return [blob[offsets[i]:offsets[i + 1]].tobytes() for i in keep], f["labels"][keep]


def write_subset(out, test, train, seed=0, source=None):
    """Write out/cifar10-jpeg.npz with ``test`` test and ``train`` training images."""
    source = Path(source) if source else find_cifar10()
    rng = np.random.default_rng(seed)
    parts = []
    for split, count in (("train", train), ("test", test)):
        encoded, labels = jpeg_images(source, split)
        pick = balanced_choice(np.asarray(labels), min(count, len(labels)), rng)
        parts += [(encoded[i], labels[i], split == "test") for i in pick]
    sizes = [len(b) for b, _, _ in parts]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "cifar10-jpeg.npz",
             jpeg_bytes=np.frombuffer(b"".join(b for b, _, _ in parts), dtype=np.uint8),
             offsets=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
             labels=np.array([y for _, y, _ in parts], dtype=np.uint8),
             is_test=np.array([t for _, _, t in parts], dtype=np.uint8),
             classes=np.array(CLASSES))
    return out / "cifar10-jpeg.npz"


def main(argv=None):
    p = argparse.ArgumentParser(description="Write a small CIFAR-10 subset for a lent GPU "
                                "machine (make gpu-data).")
    p.add_argument("--out", default="gpu-data", help="folder to write (default: %(default)s)")
    p.add_argument("--test", type=int, default=3000, help="test images (default: %(default)s)")
    p.add_argument("--train", type=int, default=2000,
                   help="training images (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.test < 1 or args.train < 1:
        p.error("--test and --train must be at least 1")
    try:
        path = write_subset(args.out, args.test, args.train, args.seed)
    except (DataError, OSError) as e:      # no CIFAR-10, or an --out that cannot be written
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); use it with "
          f"TINYCNN_DATA_DIR={args.out}")


if __name__ == "__main__":
    main()
