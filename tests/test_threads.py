"""Setting OpenBLAS's threads while running, and the commands' default of one."""
import os
import subprocess
import sys

import pytest

from tinycnn.engine.threads import blas_threads, set_blas_threads, threads_for_commands


def test_set_blas_threads_reaches_every_loaded_openblas():
    import scipy.linalg  # noqa: F401  (SciPy brings its own OpenBLAS)
    before = blas_threads()
    if not before:
        pytest.skip(
            "no OpenBLAS found in /proc/self/maps (not Linux, or NumPy built on another BLAS)"
        )
    try:
        assert set_blas_threads(1) == len(before)
        assert blas_threads() == [1] * len(before)
    finally:
        for n in set(before):
            set_blas_threads(n)


def test_commands_default_to_one_thread_and_check_the_variable(monkeypatch):
    monkeypatch.delenv("TINYCNN_BLAS_THREADS", raising=False)
    assert threads_for_commands() == 1
    monkeypatch.setenv("TINYCNN_BLAS_THREADS", "2")
    assert threads_for_commands() == 2
    for bad in ("0", "two", ""):
        monkeypatch.setenv("TINYCNN_BLAS_THREADS", bad)
        with pytest.raises(ValueError, match="TINYCNN_BLAS_THREADS"):
            threads_for_commands()


def test_a_bad_thread_count_is_one_line_from_a_command():
    env = dict(os.environ, TINYCNN_BLAS_THREADS="many")
    done = subprocess.run(
        [sys.executable, "-m", "vis.filters", "--help"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: TINYCNN_BLAS_THREADS='many': give a whole number of threads, at least 1"]
