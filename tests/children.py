"""Run Python code in a child process and measure what it cost: exit status, output, peak
resident memory and wall time. The hostile-input tests assert the promises of SECURITY.md
with it: a forged file is refused or read within a memory bound (a small multiple of its
size above what the interpreter and its imports cost) and a time bound.

    baseline = peak_of_imports("tinycnn.io.weights")       # the interpreter and the import
    run = run_child("from tinycnn.io.weights import read_npz; read_npz(...)")
    assert run.peak - baseline < 8 * size + 16 * MB
"""
import functools
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 1 << 20


def _pythonpath():
    """The repository first, then what the tests run with (the strict stand-in's folder)."""
    return os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])


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
    child_env = {**os.environ, "PYTHONPATH": _pythonpath(), **(env or {})}
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


# VmHWM, not ru_maxrss: a child forked from a large parent (pytest) keeps the parent's resident
# size in ru_maxrss across exec, so ru_maxrss would report the test process; VmHWM is the high
# water mark of the child's own address space
_REPORT = ("import re as _re; "
           "print('peak-rss-kb', _re.search(r'VmHWM:\\s*(\\d+)', "
           "open('/proc/self/status').read())[1], file=__import__('sys').stderr)")


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


_SERVER = r'''
import contextlib, io, json, os, signal, sys, time, traceback
SECONDS, LIMIT = int(sys.argv[1]), int(sys.argv[2])
exec(sys.argv[3])                                           # the setup: imports, helpers
PAGE = os.sysconf("SC_PAGE_SIZE")
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * PAGE


for request in sys.stdin:
    code = json.loads(request)
    out, into = os.pipe()
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:                                            # the child: run code, report, exit
        os.close(out)
        at_start = resident()               # a child starts with fewer pages than the server
        signal.alarm(SECONDS)
        if LIMIT:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))
        stdout, stderr, status = io.StringIO(), io.StringIO(), 0
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                exec(code, dict(globals()))
            except SystemExit as e:
                status = e.code if isinstance(e.code, int) else int(e.code is not None)
            except BaseException:
                traceback.print_exc()
                status = 1
        with os.fdopen(into, "w") as f:
            json.dump([stdout.getvalue(), stderr.getvalue(), at_start], f)
        os._exit(status)
    os.close(into)
    with os.fdopen(out) as f:
        text = f.read()
    _, status, usage = os.wait4(pid, 0)
    output, errors, at_start = json.loads(text) if text else ("", "", resident())
    print(json.dumps([os.waitstatus_to_exitcode(status), output, errors,
                      usage.ru_maxrss * 1024 - at_start, time.perf_counter() - start]),
          flush=True)
'''


class ForkServer:
    """A child per piece of code, forked from one interpreter that has run ``setup`` (its
    imports) once: what run_measured measures, at the cost of a fork rather than of an
    interpreter's start, so that a fuzz profile's thousand examples take seconds, not many
    minutes. ``Run.peak`` is the child's peak memory ABOVE what it held when it started (the
    server's imports), from ``os.wait4``; a child running past ``seconds`` is killed
    (SIGALRM) and reported as timed out; memory_limit (bytes) caps each child's address space.

        with ForkServer("from tinycnn.io.weights import read_npz") as server:
            run = server.run("read_npz('x.npz')")
    """

    def __init__(self, setup, *, seconds=30, memory_limit=None):
        self.seconds = seconds
        self.server = subprocess.Popen([sys.executable, "-c", _SERVER, str(seconds),
                                        str(memory_limit or 0), setup],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                       cwd=ROOT, env={**os.environ, "PYTHONPATH": _pythonpath()})

    def run(self, code):
        self.server.stdin.write(json.dumps(code) + "\n")
        self.server.stdin.flush()
        line = self.server.stdout.readline()
        if not line:
            raise RuntimeError("the fork server stopped (its setup failed?)")
        status, out, err, peak, seconds = json.loads(line)
        return Run(status, out, err, peak, seconds, status == -signal.SIGALRM)

    def close(self):
        self.server.stdin.close()
        self.server.wait(timeout=self.seconds)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
