"""Prefect flows of the pipeline stages: `dvc repro` runs each as `python -m flows.<stage>`.

Prefect's defaults send anonymous usage telemetry from every temporary API server a flow starts. The pipeline
runs offline, often inside hospital networks, so this package turns that off before Prefect is imported (the
Makefile does the same for its own targets); an explicit `PREFECT_SERVER_ANALYTICS_ENABLED` in the environment
still wins.

It also pins CPU numerics to kernel paths every x86-64 machine shares (`hlip.numerics`), before anything imports
torch, so each stage gives the same bytes on another machine and a fresh clone reproduces `dvc.lock`; and it keeps
freed memory in each stage's process (`hlip.allocator`), so large arrays are not faulted in again page by page.
"""

import os

from hlip.allocator import retain_freed_memory
from hlip.numerics import pin_portable_cpu_numerics

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
pin_portable_cpu_numerics()
retain_freed_memory()
