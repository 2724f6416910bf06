"""`retain_freed_memory`: a large array allocated again after a free is not faulted in again (glibc, Linux)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from hlip.allocator import SWITCH

# A child process (malloc settings are process-wide) runs 6 cycles of a training step's pattern: N buffers of M MB
# allocated and written, then all freed; the minor page faults of the last 5 cycles. With glibc's defaults the
# freed memory goes back to the kernel (8 MB buffers: the heap top is trimmed or the buffers are mapped; 48 MB
# buffers, above any mmap threshold glibc adapts to, are mapped and unmapped every cycle), so every page faults in
# again (measured: 99.8 % and 100 % of the pages); with the setting, none does.
FAULTS = """
import resource
def faults(n, mb):
    def cycle():
        arrays = [bytearray(mb * 1024 * 1024) for _ in range(n)]  # malloc + memset: every page written (as torch's)
        del arrays
    cycle()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        cycle()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
"""
CHILD = (
    FAULTS
    + """
import json, sys
N, MB = int(sys.argv[1]), int(sys.argv[2])
from hlip.allocator import retain_freed_memory
applied = retain_freed_memory()
print(json.dumps({"applied": applied, "faults": faults(N, MB)}))
"""
)

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or not platform.libc_ver()[0], reason="mallopt thresholds are glibc's"
)


def _child(switch: str, arrays: int, mb: int) -> dict[str, object]:
    env = {**os.environ, SWITCH: switch}
    cmd = [sys.executable, "-c", CHILD, str(arrays), str(mb)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@glibc_only
@pytest.mark.parametrize(("arrays", "mb"), [(8, 8), (2, 48)], ids=["heap-8MB", "mapped-48MB"])
def test_freed_memory_is_reused_without_new_page_faults(arrays: int, mb: int) -> None:
    kept, default = _child("1", arrays, mb), _child("0", arrays, mb)
    assert kept["applied"] is True
    assert default["applied"] is False  # the switch turns it off
    pages = 5 * arrays * mb * 1024 * 1024 // 4096
    assert int(default["faults"]) > pages // 2  # glibc's defaults: pages fault in again cycle after cycle
    assert int(kept["faults"]) < pages // 100  # retained: the heap hands the same pages back


# The training child is a new interpreter (`python -m hlip.stages.training_process JOB`): the stage process's setting
# does not reach it, so its entry point must make the setting itself. Its real entry point runs here with the
# training (`main`) replaced by the same probe.
TRAINING_CHILD = (
    FAULTS
    + """
import json
from hlip.stages import training_process
def probe(job):
    print(json.dumps({"job": str(job), "faults": faults(2, 48)}))
training_process.main = probe
training_process.child(["training_process", "JOB"])
"""
)


@glibc_only
def test_the_training_child_keeps_freed_memory_itself() -> None:
    env = {k: v for k, v in os.environ.items() if k != SWITCH}
    done = subprocess.run([sys.executable, "-c", TRAINING_CHILD], env=env, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["job"] == "JOB"  # the child's argument reached the training
    pages = 5 * 2 * 48 * 1024 * 1024 // 4096
    assert result["faults"] < pages // 100  # without the child's own call: every page faults in again (> pages / 2)
