"""The prose a student reads (comments and docstrings of tinycnn/ and vis/) teaches ideas:
what one run measured, with its date or its timings, belongs in bench/RESULTS.md, a
figure's caption or a commit message."""
import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "tinycnn").rglob("*.py")) + sorted((ROOT / "vis").rglob("*.py"))
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
TIMING = re.compile(r"\b\d+(\.\d+)?\s?(ms|µs|us|s|sec|seconds|min|minutes|hours)\b")


def prose(path):
    """(line, text) of every comment and docstring in the file at path."""
    source = path.read_text()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield node.body[0].lineno, doc


def measurements(path):
    """'line: what' for each date or timing in the prose of the file at path."""
    return [f"{line}: {m.group(0)}" for line, text in prose(path)
            for m in [*DATE.finditer(text), *TIMING.finditer(text)]]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_date_or_timing_in_code_prose(path):
    assert measurements(path) == []


def test_the_check_finds_them(tmp_path):
    """It can fail: dates and timings in comments and docstrings are found, code is not read."""
    sample = tmp_path / "sample.py"
    sample.write_text('"""Fast: 2.3 ms now."""\n'
                      'x = 1  # measured on 2026-11-28, 0.2 s against 20 s\n'
                      'y = "5 s"  # a string in code is not prose\n'
                      'def f():\n    """Ten minutes, 4 min 14 s, 90 minutes."""\n')
    assert measurements(sample) == [
        "2: 2026-11-28",
        "2: 0.2 s",
        "2: 20 s",
        "1: 2.3 ms",
        "5: 4 min",
        "5: 14 s",
        "5: 90 minutes",
    ]


def test_the_prose_test_reads_the_subpackages():
    names = {p.relative_to(ROOT).as_posix() for p in SOURCES}
    assert {"tinycnn/engine/conv.py", "tinycnn/io/images.py", "vis/saliency.py"} <= names


def test_lines_keep_to_the_projects_line_length():
    """pyproject.toml sets the line length; at most 2 % of the Python lines exceed it (URLs, tables
    and a few long error messages)."""
    ruff = (ROOT / "pyproject.toml").read_text().split("[tool.ruff]")[1]
    limit = int(re.search(r"^line-length = (\d+)$", ruff, re.M).group(1))
    assert limit == 99
    files = [p for folder in ("tinycnn", "vis", "tests", "bench") for p in (ROOT / folder).rglob("*.py")]
    lines = [line for p in files for line in p.read_text().splitlines()]
    over = [line for line in lines if len(line) > limit]
    assert len(over) <= 0.02 * len(lines), f"{len(over)} of {len(lines)} lines exceed {limit}"


def test_the_lesson_stays_short_enough_to_read_in_an_afternoon():
    """The core a student reads before any technique (backend, im2col, layers, net, models) is
    at most 1,100 lines, layers.py at most 520 and Conv2d at most 70: speed paths go to
    tinycnn/engine, input checks to tinycnn/io."""
    core = ["backend", "im2col", "layers", "net", "models"]
    sizes = {m: len((ROOT / "tinycnn" / f"{m}.py").read_text().splitlines()) for m in core}
    assert sum(sizes.values()) <= 1100, sizes
    assert sizes["layers"] <= 520
    tree = ast.parse((ROOT / "tinycnn" / "layers.py").read_text())
    conv = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Conv2d")
    assert conv.end_lineno - conv.lineno + 1 <= 70
