"""`retain_freed_memory`: a large array allocated again after a free is not faulted in again (glibc, Linux)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from hlip.allocator import SWITCH

# A child process (malloc settings are process-wide) runs 6 cycles of a training step's pattern: eight 8 MB arrays
# allocated and written, then all freed; the minor page faults of the last 5 cycles. With glibc's defaults the
# 64 MB freed at the top of the heap exceed its trim threshold (twice the largest freed mapping), so part of the
# heap goes back to the kernel every cycle and faults in again in the next (measured: 28 % of the pages; none
# with the setting).
CHILD = """
import json, resource
from hlip.allocator import retain_freed_memory
applied = retain_freed_memory()
import numpy as np
def cycle():
    arrays = [np.ones(2 * 1024 * 1024, dtype=np.float32) for _ in range(8)]
    del arrays
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    cycle()
print(json.dumps({"applied": applied, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or not platform.libc_ver()[0], reason="mallopt thresholds are glibc's"
)


def _child(switch: str) -> dict[str, object]:
    env = {**os.environ, SWITCH: switch}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@glibc_only
def test_freed_memory_is_reused_without_new_page_faults() -> None:
    kept, default = _child("1"), _child("0")
    assert kept["applied"] is True
    assert default["applied"] is False  # the switch turns it off
    pages = 5 * 8 * 8 * 1024 * 1024 // 4096
    assert int(default["faults"]) > pages // 10  # glibc's default: pages fault in again cycle after cycle
    assert int(kept["faults"]) < pages // 100  # retained: the heap hands the same pages back
