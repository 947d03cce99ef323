"""Run Python code in a child process and measure what it cost: exit status, output, peak
resident memory and wall time. The hostile-input tests assert the promises of SECURITY.md
with it: a forged file is refused or read within a memory bound (a small multiple of its
size above what the interpreter and its imports cost) and a time bound.

    baseline = peak_of_imports("tinycnn.io.weights")       # the interpreter and the import
    run = run_child("from tinycnn.io.weights import read_npz; read_npz(...)")
    assert run.peak - baseline < 8 * size + 16 * MB
"""
import functools
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20


@dataclass
class Run:
    returncode: int     # the child's exit status, or -signal
    stdout: str
    stderr: str
    peak: int           # peak resident set size of the child, in bytes
    seconds: float      # wall time
    timed_out: bool


def run_child(code, *, timeout=60, memory_limit=None, env=None, cwd=None):
    """Run ``python -c code`` in a child and measure it. memory_limit (bytes) caps the child's
    address space (RLIMIT_AS), so an unbounded allocation fails there instead of here."""
    def limit():
        if memory_limit is not None:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=child_env,
                             cwd=cwd or ROOT, preexec_fn=limit)
    timed_out = False
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate()
        timed_out = True
    seconds = time.perf_counter() - start
    # RUSAGE_CHILDREN is a maximum over all children ever reaped, so a child run through
    # run_measured reports its own peak on stderr instead
    return Run(child.returncode, out, err, _peak(err), seconds, timed_out)


_REPORT = ("import resource as _r, sys as _s; "
           "print('peak-rss-kb', _r.getrusage(_r.RUSAGE_SELF).ru_maxrss, file=_s.stderr)")


def measured(code):
    """code followed by a line that reports the child's peak memory, run even when the
    code fails (the code runs inside try/finally)."""
    body = "\n".join("    " + line for line in code.splitlines()) or "    pass"
    return f"try:\n{body}\nfinally:\n    {_REPORT}\n"


def _peak(stderr):
    for line in reversed(stderr.splitlines()):
        if line.startswith("peak-rss-kb "):
            return int(line.split()[1]) * 1024
    return -1


def run_measured(code, **kwargs):
    """run_child(measured(code)): the child's peak memory is known (-1 if it was killed)."""
    run = run_child(measured(code), **kwargs)
    run.stderr = "\n".join(line for line in run.stderr.splitlines()
                           if not line.startswith("peak-rss-kb "))
    return run


@functools.lru_cache(maxsize=None)
def peak_of_imports(*modules):
    """Peak memory of a child that only imports these modules: the baseline a reader's
    cost is measured above."""
    run = run_measured("\n".join(f"import {m}" for m in modules))
    assert run.returncode == 0 and run.peak > 0, run.stderr
    return run.peak
