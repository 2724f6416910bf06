"""Flow `watch`: a sensor on the raw sources; runs the ingest flow when new data has arrived.

Scheduled on a short interval (infra/prefect.yaml), it fingerprints each part's DICOM source (local folder or
``s3://`` prefix: paths, sizes, mtimes/ETags, no content read) and reports file, compares with the fingerprints
of the last ingestion it triggered (``outputs/watch/state.json``), and runs `ingest_flow` as a subflow when any
changed. The state is written only after ingestion succeeded, so a failed ingestion is retried on the next tick.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, task

from flows.common import stage_params

DEFAULT_STATE = "outputs/watch/state.json"


@task
def fingerprint_parts(parts: dict[str, dict[str, str]]) -> dict[str, str]:
    """``{"<part>/dicom": sha256, "<part>/reports": sha256}`` of every part's sources."""
    from hlip.data.fingerprint import source_fingerprint

    prints = {}
    for part, spec in sorted(parts.items()):
        for kind in ("dicom", "reports"):
            if spec.get(kind):
                prints[f"{part}/{kind}"] = source_fingerprint(spec[kind])[0]
    return prints


@flow(name="watch", log_prints=True)
def watch_flow(params: str | None = None, state: str = DEFAULT_STATE) -> dict[str, Any]:
    """Run the ingest flow when the sources' fingerprints differ from the last triggered ingestion."""
    from flows.ingest import ingest_flow

    parts = stage_params("ingest", Path(params) if params else None).get("parts") or {}
    current = fingerprint_parts(parts)
    state_path = Path(state)
    previous = json.loads(state_path.read_text()) if state_path.is_file() else {}
    changed = sorted(k for k in current.keys() | previous.keys() if current.get(k) != previous.get(k))
    if not changed:
        print("watch: no new data")
        return {"triggered": False, "changed": []}
    print(f"watch: new data in {', '.join(changed)}: running ingest")
    ingest_flow(params)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    return {"triggered": True, "changed": changed}


if __name__ == "__main__":
    watch_flow()
