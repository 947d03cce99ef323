"""tinycnn.engine.malloc: freed temporaries are reused, not mapped afresh (counted in page
faults)."""
import subprocess
import sys

import pytest

CODE = """
import resource, numpy as np
from tinycnn.engine.malloc import keep_freed_memory

def temporaries():          # a pass's temporaries: a few blocks of 4 MB (a product, an output)
    blocks = [np.ones(2**20, np.float32) for _ in range(3)]     # each touches its 1024 pages
    del blocks

def faults(kept):
    if kept:
        assert keep_freed_memory()
    temporaries()           # a first pass may fault; the question is the passes after it
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        temporaries()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

print(faults(False), faults(True))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")
def test_kept_memory_is_reused_without_page_faults():
    done = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    fresh, kept = map(int, done.stdout.split())
    # by default glibc gives freed blocks back and maps them afresh: about a block (1024 page
    # faults) a pass
    assert fresh > 10 * 1024, fresh
    assert kept < 256, kept
