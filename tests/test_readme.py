"""The README works as written: its pictures exist, its make targets exist, its Python runs,
its links lead somewhere, its reading order gives true sizes, and it stays short."""
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vis import gallery

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PAGES = ["README.md", "SECURITY.md", "bench/RESULTS.md", *sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
MAX_LINES = 200                      # issue 26: a README a newcomer reads top to bottom
SIZE_TOLERANCE = 0.10                # a reading order's line counts within 10 % of wc -l
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
TIMING = re.compile(r"\b\d+(\.\d+)?\s?(ms|µs|us|s|sec|seconds|min|minutes|hours)\b")
FENCED = re.compile(r"^```.*?^```", flags=re.M | re.S)
INLINE = re.compile(r"`[^`\n]*`")


def section(text, title):
    """The body of the '## title' section of a Markdown text ('' if there is none)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    return match.group(1) if match else ""



def without_code(text):
    """The text with its fenced code blocks and inline code spans blanked out."""
    return INLINE.sub("", FENCED.sub("", text))


def code(text):
    """The text's code: fenced blocks and inline spans."""
    return [m.group(0) for m in FENCED.finditer(text)] + INLINE.findall(FENCED.sub("", text))


def slug(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    """The anchors of a Markdown file's headings."""
    headings = re.findall(r"^#+ (.*)$", FENCED.sub("", path.read_text()), flags=re.M)
    return {slug(h) for h in headings}


def test_the_readme_is_short():
    assert len(README.splitlines()) <= MAX_LINES


def test_the_readme_holds_no_dated_result_or_timing():
    """Measurements live in bench/RESULTS.md, one dated entry per run, not in the README."""
    found = [m.group(0) for pattern in (DATE, TIMING) for m in pattern.finditer(README)]
    assert found == []


def test_every_picture_is_committed_and_small():
    pictures = re.findall(r"\]\((docs/[^)]+\.png)\)", README)
    assert len(pictures) >= 15
    for path in pictures:
        assert (ROOT / path).is_file(), path
        assert (ROOT / path).stat().st_size < 200_000, path


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_leads_somewhere(page):
    """Each relative link (and image) names a file or folder that exists, and an anchor after
    '#' names a heading of that page."""
    path = ROOT / page
    links = re.findall(r"\]\(([^)\s]+)\)", without_code(path.read_text()))
    assert links
    for link in links:
        if re.match(r"[a-z]+:", link):           # https:, mailto: ...
            continue
        target, _, anchor = link.partition("#")
        target = (path.parent / target).resolve() if target else path
        assert target.exists(), f"{page}: {link}"
        if anchor:
            assert target.suffix == ".md" and anchor in anchors(target), f"{page}: {link}"


def test_the_link_check_can_fail(tmp_path):
    """The anchors it computes are GitHub's, so a wrong one is caught and a right one is not."""
    page = tmp_path / "page.md"
    page.write_text("## 2026-11-28: `make bench` on the CPU\n## Efros & Leung's distances\n")
    assert anchors(page) == {"2026-11-28-make-bench-on-the-cpu", "efros--leungs-distances"}


def test_every_make_target_exists():
    targets = set(re.findall(r"^([a-z_-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    for page in ("README.md", "SECURITY.md", *[p for p in PAGES if p.startswith("docs/")]):
        mentioned = {target for span in code((ROOT / page).read_text())
                     for target in re.findall(r"\bmake ([a-z][a-z_-]*)", span)}
        assert mentioned - targets == set(), page
    assert {f.target for f in gallery.FIGURES} <= set(re.findall(r"`make ([a-z_-]+)", README))


def test_the_reading_order_gives_true_sizes():
    """Every file the reading order links is followed by its size in lines, within 10 % of
    wc -l, so that the numbers cannot go stale; the lesson comes in the issue's order."""
    order = section(README, "Reading order")
    linked = re.findall(r"\]\(([^)\s]+\.py)\)", order)
    sized = re.findall(r"\]\(([^)\s]+\.py)\)\s+(\d+)", order)
    assert linked and [path for path, _ in sized] == linked, "a linked file without its size"
    for path, lines in sized:
        actual = (ROOT / path).read_bytes().count(b"\n")     # wc -l
        assert abs(int(lines) - actual) <= SIZE_TOLERANCE * actual, f"{path}: {lines}, wc {actual}"
    lesson = ["naive", "im2col", "layers", "gradcheck", "net", "models"]
    firsts = [Path(path).stem for path in linked if Path(path).stem in lesson]
    assert firsts == lesson
    for group in ("Gradients of the image", "Optimising the image", "Activations and data"):
        assert f"**{group}**" in order, group


def test_the_reading_order_tells_the_structure_as_it_is():
    """Every module of tinycnn/, tinycnn/engine/, tinycnn/io/ and vis/ is named there."""
    order = section(README, "Reading order")
    named = set(re.findall(r"[\w]+", order))
    for folder in ("tinycnn", "tinycnn/engine", "tinycnn/io", "vis"):
        for module in sorted((ROOT / folder).glob("*.py")):
            if module.stem != "__init__":
                assert module.stem in named, f"{folder}/{module.name}"
        assert f"`{folder}/`" in order or folder == "tinycnn", folder


@pytest.mark.parametrize("block", re.findall(r"```python\n(.*?)```", README, flags=re.S))
def test_python_blocks_run(block, tmp_path):
    if "cupy" in block and importlib.util.find_spec("cupy") is None:
        pytest.skip("needs CuPy (or the strict stand-in: make test runs it)")
    done = subprocess.run([sys.executable, "-c", block], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


def test_shown_print_commands_print_commands():
    shown = re.findall(r"`python -m (vis\.gallery [^`<]*--print)`", README)
    assert shown
    for command in shown:
        done = subprocess.run([sys.executable, "-m", *command.split()], cwd=ROOT,
                              capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.startswith("python -m vis."), (command, done.stdout)
