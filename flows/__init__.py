"""Prefect flows of the pipeline stages: `dvc repro` runs each as `python -m flows.<stage>`.

Prefect's defaults send anonymous usage telemetry from every temporary API server a flow starts. The pipeline
runs offline, often inside hospital networks, so this package turns that off before Prefect is imported (the
Makefile does the same for its own targets); an explicit `PREFECT_SERVER_ANALYTICS_ENABLED` in the environment
still wins.
"""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
