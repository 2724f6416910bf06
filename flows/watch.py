"""Flow `watch`: a sensor on the raw sources; runs the pipeline through DVC when new data has arrived.

Scheduled on a short interval (infra/prefect.yaml), it fingerprints each part's DICOM source (local folder or
``s3://`` prefix: paths, sizes, mtimes/ETags, no content read) and reports file, compares with the fingerprints
of the last run it triggered (``outputs/watch/state.json``), and when any changed runs the `pipeline` flow as a
subflow: the new data is recorded with ``dvc add``, DVC re-runs what is stale and the result is saved as a commit
that `hlip lineage` finds (see `flows.pipeline`). With ``pipeline=False`` it runs only `ingest_flow`, for a working
directory that is not a DVC project (no lineage is saved then). The state is written only after the triggered run
succeeded, so a failed one is retried on the next tick.
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
def watch_flow(params: str | None = None, state: str = DEFAULT_STATE, pipeline: bool = True) -> dict[str, Any]:
    """Run the pipeline through DVC (or, with `pipeline` false, the ingest flow alone) when the sources'
    fingerprints differ from the last triggered run."""

    if pipeline and params:
        raise ValueError(f"params={params!r}: the pipeline runs through DVC, whose stages read params.yaml; "
                         "edit params.yaml, or pass pipeline=False to run the ingest flow alone")  # fmt: skip
    parts = stage_params("ingest", Path(params) if params else None).get("parts") or {}
    current = fingerprint_parts(parts)
    state_path = Path(state)
    previous = json.loads(state_path.read_text()) if state_path.is_file() else {}
    changed = sorted(k for k in current.keys() | previous.keys() if current.get(k) != previous.get(k))
    if not changed:
        print("watch: no new data")
        return {"triggered": False, "changed": []}
    if pipeline:
        from flows.pipeline import pipeline_flow

        print(f"watch: new data in {', '.join(changed)}: running the pipeline through DVC")
        pipeline_flow()
    else:
        from flows.ingest import ingest_flow

        print(f"watch: new data in {', '.join(changed)}: running ingest (pipeline=False: no DVC lineage)")
        ingest_flow(params)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    return {"triggered": True, "changed": changed}


if __name__ == "__main__":
    watch_flow()
