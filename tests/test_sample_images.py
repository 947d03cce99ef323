"""The images and weights the repository ships, as their READMEs record them, and
`make images`, which fetches the optional photos and keeps only the bytes it expects."""
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinycnn.io import sample_images
from tinycnn.io.weights import PROJECT_WEIGHTS, DownloadError

ROOT = Path(__file__).resolve().parents[1]


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_every_shipped_image_is_recorded_with_its_licence_and_hash():
    table = dict(re.findall(r"^\| `([\w/.]+)` \|.*\| `([0-9a-f]{64})` \|$",
                            (ROOT / "images" / "README.md").read_text(), flags=re.M))
    listed = subprocess.run(
        ["git", "ls-files", "images"], cwd=ROOT, capture_output=True, text=True
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell the shipped images from fetched ones")
    shipped = listed.stdout.split()
    images = {
        str(Path(p).relative_to("images"))
        for p in shipped
        if not p.endswith((".md", ".gitignore"))
    }
    assert images == set(table), "images/README.md must list exactly the committed images"
    for name, digest in table.items():
        assert sha256(ROOT / "images" / name) == digest, name
    # those are fetched, never committed
    assert not images & {f"photos/{n}" for n in sample_images.OPTIONAL_NAMES}


def test_shipped_squeezenet_weights_match_their_record():
    readme = (PROJECT_WEIGHTS / "README.md").read_text()
    for name in ("squeezenet1_1.npz", "squeezenet1_1_reference.npz"):
        assert sha256(PROJECT_WEIGHTS / name) in readme, name
    assert "Apache License" in (PROJECT_WEIGHTS / "LICENSE-squeezenet1_1.txt").read_text()


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """Two stand-in optional photos in a local folder, with their real hashes in the table."""
    src = tmp_path / "mirror"
    src.mkdir()
    table = []
    for name, content in (("a.jpg", b"first photo"), ("b.jpg", b"second photo")):
        (src / name).write_bytes(content)
        table.append(
            (name, "http://127.0.0.1:9/never/", hashlib.sha256(content).hexdigest(), "terms")
        )
    monkeypatch.setattr(sample_images, "OPTIONAL", table)
    return src


def quiet(*args, **kwargs):
    pass


def test_fetch_keeps_files_whose_hash_matches(tmp_path, mirror):
    folder = sample_images.fetch_images(tmp_path / "images", mirror.as_uri(), log=quiet)
    assert sorted(p.name for p in folder.iterdir()) == ["a.jpg", "b.jpg"]
    assert (folder / "a.jpg").read_bytes() == b"first photo"
    # a second run downloads nothing (the upstream address, port 9, would refuse)
    lines = []
    sample_images.fetch_images(tmp_path / "images", log=lines.append)
    assert lines == ["a.jpg: already there", "b.jpg: already there"]


def test_fetch_refuses_other_bytes(tmp_path, mirror):
    (mirror / "b.jpg").write_bytes(b"a forged photo")
    with pytest.raises(DownloadError, match="b.jpg has sha256 .*expected one starting with"):
        sample_images.fetch_images(tmp_path / "images", mirror.as_uri(), log=quiet)
    # no .part left
    assert sorted(p.name for p in (tmp_path / "images" / "photos").iterdir()) == ["a.jpg"]
    # a file left there
    (tmp_path / "images" / "photos" / "a.jpg").write_bytes(b"changed since")
    with pytest.raises(DownloadError, match="a.jpg has sha256 .*delete it"):
        sample_images.fetch_images(tmp_path / "images", mirror.as_uri(), log=quiet)


def test_the_pinned_hashes_are_the_real_photos(tmp_path):
    """Where a copy of the optional photos is at hand (after `make images`, or in
    $TINYCNN_IMAGES_DIR), fetching from it as a mirror checks every pinned sha256 against the real
    files."""
    folders = (
        [Path(os.environ["TINYCNN_IMAGES_DIR"]) / "photos"]
        if os.environ.get("TINYCNN_IMAGES_DIR")
        else []
    )
    folders.append(sample_images.PROJECT_IMAGES / "photos")
    folder = next(
        (f for f in folders if all((f / n).is_file() for n in sample_images.OPTIONAL_NAMES)), None
    )
    if folder is None:
        pytest.skip(
            "no copy of the optional photos here (images/photos, $TINYCNN_IMAGES_DIR/photos); "
            "`make images` fetches them"
        )
    out = sample_images.fetch_images(tmp_path, folder.as_uri(), log=quiet)
    assert sorted(p.name for p in out.iterdir()) == sorted(sample_images.OPTIONAL_NAMES)


def test_make_images_offline_is_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tinycnn.io.sample_images",
            "--url",
            "http://127.0.0.1:9/",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(
        "make images: could not download http://127.0.0.1:9/apple.jpg"
    ), done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
