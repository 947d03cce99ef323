"""make figures: every figure's code runs (fast mode), the gallery page is complete and
loads in a real browser, and the make targets run the commands the captions show."""
import html
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vis import gallery

from .browser import chromium, inspect_page, serve

ROOT = Path(__file__).resolve().parents[1]


def shared_present():
    """Whether this machine has what every figure needs (weights, CIFAR-10, photos)."""
    return gallery.missing_inputs((gallery.SQ, gallery.DATA, gallery.PHOTOS)) == ""


@pytest.fixture(scope="module")
def fast_gallery(tmp_path_factory):
    """`python -m vis.gallery --fast` into a fresh folder: (folder, its output)."""
    out = tmp_path_factory.mktemp("figures")
    done = subprocess.run([sys.executable, "-m", "vis.gallery", "--fast", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout


def test_fast_mode_draws_every_figure(fast_gallery):
    out, log = fast_gallery
    assert "0 failed" in log
    drawn = [f.file for f in gallery.FIGURES if (out / f.file).is_file()]
    if shared_present():
        assert drawn == [f.file for f in gallery.FIGURES], log
    else:   # the shipped CIFAR-10 weights alone still draw the demo figures
        assert "filters_cifar10_conv1.png" in drawn and "skipped" in log
    assert len(re.findall(r"^\[\s*\d+/\d+\]", log, flags=re.M)) == len(gallery.FIGURES)   # a progress line each


def test_page_has_every_drawn_figure_with_its_caption(fast_gallery):
    out, _ = fast_gallery
    page = (out / "index.html").read_text()
    for fig in gallery.FIGURES:
        if (out / fig.file).is_file():
            assert f'src="{fig.file}"' in page and f"make {fig.target}" in page and html.escape(fig.paper) in page
        else:
            assert fig.file in page.split("Not drawn")[1]


@pytest.mark.skipif(chromium() is None, reason="chromium and chromedriver are not installed "
                                                 "(apt-get install chromium chromium-driver; .ci/run does)")
def test_page_loads_in_headless_chromium(fast_gallery, tmp_path):
    out, _ = fast_gallery
    with serve(out) as url:
        page = inspect_page(f"{url}/index.html", tmp_path / "profile")
    drawn = [f.file for f in gallery.FIGURES if (out / f.file).is_file()]
    assert sorted(i["src"] for i in page["images"]) == sorted(drawn)
    broken = [i["src"] for i in page["images"] if not (i["complete"] and i["width"] > 0)]
    assert broken == []
    assert [c["message"] for c in page["console"] if c["level"] in ("SEVERE", "WARNING")] == []


@pytest.mark.skipif(chromium() is None, reason="chromium and chromedriver are not installed")
def test_browser_check_sees_a_broken_page(tmp_path):
    """The check above can fail: a missing image and a console error are both caught."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text('<!DOCTYPE html><title>t</title><link rel="icon" href="data:,">'
                                                  '<img src="missing.png"><script>console.error("boom")</script>')
    with serve(tmp_path / "site") as url:
        page = inspect_page(f"{url}/index.html", tmp_path / "profile")
    assert page["images"][0]["width"] == 0
    messages = " ".join(c["message"] for c in page["console"] if c["level"] == "SEVERE")
    assert "missing.png" in messages and "boom" in messages


def test_make_targets_run_the_commands_the_captions_show():
    """Each figure's command (the caption's) is what its make target runs."""
    for target in sorted({f.target for f in gallery.FIGURES}):
        done = subprocess.run(["make", "-n", "-s", target, "PY=python"], cwd=ROOT, capture_output=True, text=True)
        ran = [" ".join(line.split()) for line in done.stdout.splitlines()]
        for fig in (f for f in gallery.FIGURES if f.target == target):
            assert fig.command in ran, (target, fig.command, ran)


def test_every_technique_module_has_a_figure():
    modules = {p.stem for p in (ROOT / "vis").glob("*.py") if not p.stem.startswith("_")}
    shown = {f.args[0] for f in gallery.FIGURES}
    assert modules - shown == {"cli", "render", "objectives", "gallery"}


def test_unknown_figure_is_named():
    with pytest.raises(ValueError, match="unknown figure salency"):
        gallery.select(["salency"])


def test_thumbnails_only_for_publishable_inputs(tmp_path):
    from PIL import Image
    for fig in gallery.FIGURES[:5]:
        Image.new("RGB", (900, 300), "white").save(tmp_path / fig.file)
    written = gallery.thumbnails(gallery.FIGURES[:5], tmp_path, tmp_path / "docs", height=100, max_width=240)
    thumbs = [p for p in written if p.name.startswith("thumb_")]
    assert [p.name for p in thumbs] == [f"thumb_{f.file}" for f in gallery.FIGURES[:5] if f.thumbnail]
    for fig in gallery.FIGURES[:5]:
        if fig.thumbnail:      # 900 x 300, cropped to fig.crop, then fitted into 240 x 100
            t, b, l, r = fig.crop
            w, h = 900 * (r - l), 300 * (b - t)
            scale = min(100 / h, 240 / w)
            assert Image.open(tmp_path / "docs" / f"thumb_{fig.file}").size == (round(w * scale), round(h * scale))
    assert sorted(p.name for p in written if p not in thumbs) == sorted(gallery.DEMO)
