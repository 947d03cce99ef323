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
SOURCES = sorted((ROOT / "tinycnn").glob("*.py")) + sorted((ROOT / "vis").glob("*.py"))
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
    assert measurements(sample) == ["2: 2026-11-28", "2: 0.2 s", "2: 20 s", "1: 2.3 ms", "5: 4 min", "5: 14 s",
                                    "5: 90 minutes"]
