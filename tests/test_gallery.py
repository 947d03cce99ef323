"""make figures: every figure's code runs (fast mode), the gallery page is complete and
loads in a real browser; the make targets run the gallery, whose FIGURES hold the one
copy of each figure's command, and --print shows those commands."""
import html
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vis import gallery, render

from .browser import chromium, inspect_page, serve

ROOT = Path(__file__).resolve().parents[1]


def cifar10_present():
    """Whether this machine has CIFAR-10, the one input of the figures that the repository does
    not ship."""
    return gallery.missing_inputs((gallery.DATA,)) == ""


@pytest.fixture(scope="module")
def fast_gallery(tmp_path_factory):
    """`python -m vis.gallery --fast` into a fresh folder: (folder, its output)."""
    out = tmp_path_factory.mktemp("figures")
    done = subprocess.run([sys.executable, "-m", "vis.gallery", "--fast", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout


def test_fast_mode_draws_every_figure(fast_gallery):
    out, log = fast_gallery
    assert "0 failed" in log
    drawn = [f.file for f in gallery.FIGURES if (out / f.file).is_file()]
    if cifar10_present():
        assert drawn == [f.file for f in gallery.FIGURES], log
    else:   # a fresh clone: everything but the figures of CIFAR-10 images, which say `make data`
        assert drawn == [f.file for f in gallery.FIGURES if gallery.DATA not in f.needs], log
        skips = re.findall(r"^\[\s*\d+/\d+\] \S+\s+skipped: (.*)$", log, flags=re.M)
        assert len(skips) == 4 and all(why.startswith("CIFAR-10 not found") for why in skips), log
        assert log.count("run `make data`") == 4, log
    # a line when each starts, one when it ends
    progress = re.findall(r"^\[\s*\d+/\d+\] .*$", log, flags=re.M)
    starts = [line for line in progress if line.endswith(" ...")]
    ends = [line for line in progress if " drawn in " in line or " FAILED after " in line]
    skips = [line for line in progress if " skipped: " in line]
    assert len(starts) + len(skips) == len(gallery.FIGURES) and len(ends) == len(starts), log


def commands_on(page):
    """The text of each command (code.command) of a gallery page, as a reader copies it."""
    return [html.unescape(re.sub(r"<[^>]*>", "", code))
            for code in re.findall(r'<code class="command">(.*?)</code>', page, flags=re.S)]


def test_page_has_every_drawn_figure_with_its_caption(fast_gallery):
    out, _ = fast_gallery
    page = (out / "index.html").read_text()
    commands = commands_on(page)
    for fig in gallery.FIGURES:
        if (out / fig.file).is_file():
            assert f'src="{fig.file}"' in page and html.escape(fig.paper) in page
            assert f"make {fig.target}" in commands and fig.command() in commands
        else:
            assert fig.file in page.split("Not drawn")[1]


@pytest.mark.skipif(chromium() is None,
                    reason="chromium and chromedriver are not installed (apt-get install chromium "
                           "chromium-driver; .ci/run does)")
def test_page_loads_in_headless_chromium(fast_gallery, tmp_path):
    out, _ = fast_gallery
    with serve(out) as url:
        page = inspect_page(f"{url}/index.html", tmp_path / "profile", width=WINDOW)
    drawn = [f.file for f in gallery.FIGURES if (out / f.file).is_file()]
    assert sorted(i["src"] for i in page["images"]) == sorted(drawn)
    broken = [i["src"] for i in page["images"] if not (i["complete"] and i["width"] > 0)]
    assert broken == []
    assert [c["message"] for c in page["console"] if c["level"] in ("SEVERE", "WARNING")] == []
    check_legible_and_wrapped(page, [f for f in gallery.FIGURES if f.file in drawn])


# The smallest text drawn in any figure is the embedding's legend, in Pillow's default font,
# 10 px high (vis/render.py: captions 14 px, plot labels 12, colour-bar ticks 11). Shown at a
# scale s it is 10 * s px high on the page; 9 px is about the least that reads, so s >= 0.9.
SMALLEST_TEXT_PX, LEAST_LEGIBLE_PX = 10, 9
MIN_SCALE = LEAST_LEGIBLE_PX / SMALLEST_TEXT_PX
WINDOW = 1400           # px: the browser window of the layout checks


def check_legible_and_wrapped(page, figures):
    """Every picture shown at MIN_SCALE or more and inside the window, the page no wider than
    the window (a wider picture scrolls in its own frame), and each figure's two commands
    broken into lines only between arguments."""
    view = page["viewport"]
    assert view["width"] > WINDOW - 40 and view["scroll_width"] <= view["width"], view
    for image in page["images"]:
        assert image["shown_width"] / image["width"] >= MIN_SCALE, image
        assert 0 <= image["frame"]["left"] and image["frame"]["right"] <= view["width"], image
    assert [c["text"] for c in page["commands"]] == [
        line for fig in figures for line in (f"make {fig.target}", fig.command())]
    for command in page["commands"]:
        assert " ".join(w["text"] for w in command["words"]) == command["text"]
        assert [w["text"] for w in command["words"] if w["boxes"] != 1] == [], command["text"]


def synthetic_gallery(folder, widths):
    """A gallery page of every figure, each PNG a grey panel under a line of the smallest text
    that figures draw, ``widths[file]`` px wide (600 where not given)."""
    folder.mkdir()
    for fig in gallery.FIGURES:
        panel = np.full((160, widths.get(fig.file, 600), 3), 200, dtype=np.uint8)
        render.save(render.caption(panel, f"{fig.title}: text {SMALLEST_TEXT_PX} px high",
                                   size=SMALLEST_TEXT_PX), folder / fig.file)
    return gallery.write_page(gallery.FIGURES, folder, {})


@pytest.mark.skipif(chromium() is None,
                    reason="chromium and chromedriver are not installed (apt-get install chromium "
                           "chromium-driver; .ci/run does)")
def test_wide_figures_stay_legible_and_commands_wrap_between_arguments(tmp_path):
    """At 1400 px: the widest figure (as wide as the full-size saliency figure) is shown at its
    own size, scrolling inside its frame; one a little narrower than the window is seen whole;
    the longest commands take several lines, never breaking an argument. Fast mode's figures
    are narrower than full ones, so the figures here are synthetic."""
    widest, wide = "saliency_squeezenet.png", "feature_inversion_squeezenet.png"
    synthetic_gallery(tmp_path / "site",
                      {widest: 2400, wide: 1300, "filters_cifar10_conv1.png": 300})
    with serve(tmp_path / "site") as url:
        page = inspect_page(f"{url}/index.html", tmp_path / "profile", width=WINDOW)
    check_legible_and_wrapped(page, gallery.FIGURES)
    images = {i["src"]: i for i in page["images"]}
    assert images[widest]["shown_width"] / images[widest]["width"] >= MIN_SCALE
    frame = images[widest]["frame"]
    assert frame["scroll_width"] > frame["visible_width"]                           # scrolls
    assert images[wide]["shown_width"] == images[wide]["frame"]["visible_width"] == 1300   # whole
    assert images["filters_cifar10_conv1.png"]["shown_width"] == 600              # small: doubled
    assert max(c["lines"] for c in page["commands"]) >= 3   # so the check above saw commands wrap


def test_a_figure_this_run_failed_or_skipped_shows_its_earlier_picture_with_a_note(tmp_path):
    failed, skipped, drawn, never = gallery.FIGURES[:4]
    for fig in (failed, skipped, drawn):
        Image.new("RGB", (500, 100), "white").save(tmp_path / fig.file)
    earlier = time.mktime((2001, 2, 3, 4, 5, 0, 0, 0, -1))    # local time, as the page shows it
    os.utime(tmp_path / failed.file, (earlier, earlier))
    results = {failed.file: ("failed", 3.0, "RuntimeError: out of memory"),
               skipped.file: ("skipped", 0.0, "no photos in images (set TINYCNN_IMAGES_DIR)"),
               drawn.file: ("drawn", 2.0, ""),
               never.file: ("failed", 1.0, "ValueError: no such layer")}
    page = gallery.write_page(gallery.FIGURES[:4], tmp_path, results,
                              started=earlier + 60).read_text()
    shown, not_drawn = page.split("<h2>Not drawn</h2>")
    blocks = {m[0]: m[1]
              for m in re.findall(r'<figure id="(\w+)">(.*?)</figure>', shown, flags=re.S)}
    assert list(blocks) == [Path(f.file).stem for f in (failed, skipped, drawn)]
    assert ('<p class="note">The last run failed: RuntimeError: out of memory. The picture is '
            'from an earlier run, drawn 2001-02-03 04:05.</p>') in blocks[Path(failed.file).stem]
    assert ('<p class="note">Skipped this run: no photos in images (set TINYCNN_IMAGES_DIR); the '
            'picture is from an earlier run, drawn ') in blocks[Path(skipped.file).stem]
    assert "note" not in blocks[Path(drawn.file).stem]
    assert f'src="{failed.file}"' in blocks[Path(failed.file).stem]
    assert never.file in not_drawn and "ValueError: no such layer" in not_drawn
    assert failed.file not in not_drawn
    # a command that wrote its picture and then failed: the picture is this run's
    page = gallery.write_page(gallery.FIGURES[:1], tmp_path, results,
                              started=earlier - 60).read_text()
    assert ('<p class="note">The last run failed after writing this picture: RuntimeError: out of '
            'memory.</p>') in page


@pytest.mark.skipif(chromium() is None,
                    reason="chromium and chromedriver are not installed (apt-get install chromium "
                           "chromium-driver; .ci/run does)")
def test_browser_check_sees_a_broken_page(tmp_path):
    """The check above can fail: a missing image and a console error are both caught."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text(
        '<!DOCTYPE html><title>t</title><link rel="icon" href="data:,">'
        '<img src="missing.png"><script>console.error("boom")</script>')
    with serve(tmp_path / "site") as url:
        page = inspect_page(f"{url}/index.html", tmp_path / "profile")
    assert page["images"][0]["width"] == 0
    messages = " ".join(c["message"] for c in page["console"] if c["level"] == "SEVERE")
    assert "missing.png" in messages and "boom" in messages


TARGETS = sorted({f.target for f in gallery.FIGURES})
TRAINING = {"fast_style_train"}       # commands that train a network: no figure of their own


def make_dry_run(*args):
    """The command lines `make -n args` would run, spaces normalised."""
    done = subprocess.run(["make", "-n", "-s", *args, "PY=python"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return [" ".join(line.split()) for line in done.stdout.splitlines()]


def run_gallery(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "vis.gallery", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, **kwargs)


def test_each_figure_target_runs_the_gallery_on_itself():
    """FIGURES is the only copy of the commands: the Makefile runs no technique module itself,
    and each figure's target (and no other, but demo) runs `vis.gallery --only <target>`."""
    makefile = (ROOT / "Makefile").read_text()
    # (training is not a figure: make train_fast_style runs vis.fast_style_train)
    assert set(re.findall(r"-m vis\.(\w+)\b(?! --train)", makefile)) - TRAINING == {"gallery"}
    only = {}
    for target in set(re.findall(r"^([a-z_-]+):", makefile, flags=re.M)):
        ran = [line.split("vis.gallery --only ")[1] for line in make_dry_run(target)
               if "vis.gallery --only " in line]
        if ran:
            only[target] = ran
    assert only == {t: [t] for t in TARGETS} | {"demo": ["filters", "training_curve"]}


def test_make_passes_args_on():
    assert (make_dry_run("fooling", "ARGS=--seed 1")[-1]
            == 'python -m vis.gallery --only fooling --args="--seed 1"')
    assert (make_dry_run("figures", "FAST=1", "ARGS=--seed 1")[-1]
            == 'python -m vis.gallery --fast --args="--seed 1"')
    assert make_dry_run("figures", "JOBS=1")[-1] == "python -m vis.gallery --jobs 1"


def test_every_figure_target_is_in_make_help():
    done = subprocess.run(["make", "help"], cwd=ROOT, capture_output=True, text=True)
    listed = {line.split()[0] for line in done.stdout.splitlines()[1:]}
    assert set(TARGETS) <= listed, set(TARGETS) - listed


def test_printed_commands_are_the_captions_and_draw_the_gallerys_figures(tmp_path):
    """--print shows each figure's command as its caption does; run by hand, the printed
    commands (with --out elsewhere) draw the same pixels as the gallery."""
    assert run_gallery("--only", "filters", "--out", tmp_path / "gallery").returncode == 0
    page = (tmp_path / "gallery" / "index.html").read_text()
    printed = run_gallery("--only", "filters", "--print").stdout.splitlines()
    files = [f.file for f in gallery.FIGURES if f.target == "filters"]
    assert len(printed) == len(files) == 3
    for line in printed:
        assert line in commands_on(page), line
    elsewhere = run_gallery("--only", "filters", "--print", "--out", tmp_path / "by_hand")
    for line in elsewhere.stdout.splitlines():
        python, *argv = shlex.split(line)
        assert python == "python"
        subprocess.run([sys.executable, *argv], cwd=ROOT, check=True, capture_output=True)
    for file in files:
        by_hand, drawn = (np.asarray(Image.open(tmp_path / folder / file))
                          for folder in ("by_hand", "gallery"))
        assert np.array_equal(by_hand, drawn), file


def test_print_adds_the_fast_options_then_args():
    done = run_gallery("--only", "embedding", "--fast", "--print", "--args=--seed 3 --grid 8")
    assert done.stdout == ("python -m vis.embedding --model cifar10 --out "
                           "figures/embedding_cifar10.png --count 300 --iterations 250 --grid 10 "
                           "--seed 3 --grid 8\n")


def without_cifar10(tmp_path):
    """An environment in which CIFAR-10 is missing (skip where data/ holds it, which the variable
    cannot hide)."""
    if (ROOT / "data").exists():
        pytest.skip("data/ holds CIFAR-10 here; this test needs a machine without it")
    return {**os.environ, "TINYCNN_DATA_DIR": str(tmp_path / "nothing")}


def test_a_figure_asked_for_whose_inputs_are_missing_fails(tmp_path):
    """`make neighbors` without CIFAR-10 is an error, not a skip (make figures skips it)."""
    done = run_gallery("--only", "neighbors", "--out", tmp_path, env=without_cifar10(tmp_path))
    assert done.returncode == 1, done.stdout
    assert "neighbors_cifar10.png" in done.stdout and "FAILED: " in done.stdout, done.stdout
    assert not (tmp_path / "neighbors_cifar10.png").exists()


def test_progress_reaches_a_log_and_a_skip_says_what_to_do(tmp_path):
    # output to a pipe, as in CI: a line when each figure starts and one when it ends
    done = run_gallery("--only", "filters", "neighbors", "--fast", "--out", tmp_path,
                       "--jobs", "1", env=without_cifar10(tmp_path))
    lines = done.stdout.splitlines()
    assert lines[0] == "drawing 4 figures into " + f"{tmp_path}/ (fast mode)"
    # start, end (with its time)
    assert [line.split()[-1] for line in lines[1:7]] == ["...", "s", "...", "s", "...", "s"]
    assert "neighbors_cifar10.png" in lines[7], lines[7]
    assert "run `make data` to download it" in lines[7], lines[7]


def test_figures_drawn_side_by_side_each_report_their_start_and_end(tmp_path):
    done = run_gallery("--only", "filters", "training_curve", "--fast", "--out", tmp_path,
                       "--jobs", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for fig in ("filters_cifar10_conv1.png", "filters_squeezenet_conv1.png",
                "filters_cifar10_conv2.png", "training_curve.png"):
        mine = [line.split()[-1] for line in lines if fig in line]
        assert mine == ["...", "s"], lines   # its start, then its end, whatever the other printed
        assert (tmp_path / fig).is_file()
    assert lines[-1].startswith("4 drawn, 0 skipped, 0 failed in "), lines[-1]
    assert "2 at a time" in lines[-1], lines[-1]


def test_every_technique_module_has_a_figure():
    modules = {p.stem for p in (ROOT / "vis").glob("*.py") if not p.stem.startswith("_")}
    shown = {f.args[0] for f in gallery.FIGURES}
    # grabcut: a building block that the saliency figure draws
    assert modules - shown - TRAINING == {"cli", "render", "objectives", "gallery", "grabcut"}


def test_unknown_figure_is_named_with_the_known_targets():
    done = run_gallery("--only", "salency", "--print")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: unknown figure salency; choose from the make targets "
                                  "attribution, ")
    assert all(target in done.stderr for target in TARGETS) and done.stderr.count("\n") == 1


def test_thumbnails_only_for_publishable_inputs(tmp_path):
    for fig in gallery.FIGURES[:5]:
        Image.new("RGB", (900, 300), "white").save(tmp_path / fig.file)
    written = gallery.thumbnails(gallery.FIGURES[:5], tmp_path, tmp_path / "docs", height=100,
                                 max_width=240)
    thumbs = [p for p in written if p.name.startswith("thumb_")]
    assert [p.name for p in thumbs] == [f"thumb_{f.file}" for f in gallery.FIGURES[:5]
                                        if f.thumbnail]
    for fig in gallery.FIGURES[:5]:
        if fig.thumbnail:      # 900 x 300, cropped to fig.crop, then fitted into 240 x 100
            t, b, l, r = fig.crop
            w, h = 900 * (r - l), 300 * (b - t)
            scale = min(100 / h, 240 / w)
            size = Image.open(tmp_path / "docs" / f"thumb_{fig.file}").size
            assert size == (round(w * scale), round(h * scale))
    assert sorted(p.name for p in written if p not in thumbs) == sorted(gallery.DEMO)


def test_ctrl_c_stops_the_figures_being_drawn_and_starts_no_more(tmp_path):
    # the shipped CIFAR-10 net, a million gradient-ascent steps: still drawing when Ctrl-C comes
    command = [sys.executable, "-m", "vis.gallery", "--only", "class_visualization_cifar10",
               "multifaceted_cifar10", "--args=--steps 1000000", "--out", str(tmp_path),
               "--jobs", "1"]
    # Ctrl-C's SIGINT as a terminal delivers it (a shell ignores it in jobs it starts in the
    # background, and a Python started with SIGINT ignored keeps ignoring it)
    gallery = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert "drawing 2 figures" in gallery.stdout.readline()
    assert gallery.stdout.readline().endswith("make class_visualization ...\n")
    time.sleep(1)
    gallery.send_signal(signal.SIGINT)
    out, err = gallery.communicate(timeout=60)
    assert gallery.returncode == 130 and err.strip() == (
        "interrupted: the figures being drawn were stopped, the others not started"), err
    assert "multifaceted" not in out and not list(tmp_path.glob("*.png"))   # nothing after it
    leftover = [p for p in Path("/proc").glob("[0-9]*") if str(tmp_path) in _cmdline(p)]
    assert leftover == [], "a figure's command outlived the gallery"


def _cmdline(proc):
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_default_jobs_one_per_core_one_on_a_gpu(monkeypatch):
    monkeypatch.delenv("TINYCNN_BACKEND", raising=False)
    monkeypatch.delenv("TINYCNN_BLAS_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert gallery.default_jobs() == max(1, min(gallery.MAX_JOBS, cores))
    monkeypatch.setenv("TINYCNN_BLAS_THREADS", str(cores))       # each command takes every core
    assert gallery.default_jobs() == 1
    monkeypatch.delenv("TINYCNN_BLAS_THREADS")
    monkeypatch.setenv("TINYCNN_BACKEND", "cupy")                 # one GPU: one figure at a time
    assert gallery.default_jobs() == 1

