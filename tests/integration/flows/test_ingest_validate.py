"""The ingest and validate flows on a tiny demo corpus, with a real Prefect server and a real MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.integration


def _runs(experiment: str) -> pd.DataFrame:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{Path('outputs/mlflow/mlflow.db').resolve()}")
    return mlflow.search_runs(experiment_names=[experiment])


def _artifact_markdown(key: str) -> str:
    import anyio
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> str:
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
            return str(found[0].data) if found else ""

    return anyio.run(read)


def test_ingest_then_validate(workdir: Path) -> None:
    from flows.ingest import ingest_flow
    from flows.validate import validate_flow

    summaries = ingest_flow()
    assert set(summaries) == {"train", "benchmark"}
    for part in ("train", "benchmark"):
        assert (workdir / "outputs/ingest" / part / "scans.parquet").is_file()
    metrics = json.loads((workdir / "outputs/metrics/ingest.json").read_text())
    assert metrics["train"]["studies_with_scans"] > 0
    assert metrics["train"]["files_quarantined"] > 0  # the demo corpus always carries bad files
    runs = _runs("ingest")
    assert list(runs["status"]) == ["FINISHED"]
    assert runs["metrics.train/scans"].iloc[0] == metrics["train"]["scans"]
    assert "train scans" in _artifact_markdown("ingest-summary")

    result = validate_flow()
    assert result["passed"], json.dumps(result["results"], indent=1)
    assert (workdir / "outputs/validate/validation.html").is_file()
    assert (workdir / "outputs/validate_baseline/profile.json").is_file()
    assert list(_runs("validate")["status"]) == ["FINISHED"]
    assert "passed" in _artifact_markdown("validate-summary")


def test_validate_stops_on_an_identifier_and_marks_the_run_failed(workdir: Path) -> None:
    from flows.ingest import ingest_flow
    from flows.validate import ValidationFailedError, validate_flow

    ingest_flow()
    reports_path = workdir / "outputs/ingest/train/reports.parquet"
    reports = pd.read_parquet(reports_path)
    reports.loc[0, "text"] = reports.loc[0, "text"] + " Called DOE^JANE on 555-867-5309."
    reports.to_parquet(reports_path)

    with pytest.raises(ValidationFailedError, match="identifier pattern 'phone' left in report text"):
        validate_flow()
    saved = (workdir / "outputs/validate/validation.json").read_text()
    assert '"passed": false' in saved
    assert "555-867-5309" not in saved
    assert "DOE^JANE" not in saved
    assert not (workdir / "outputs/validate_baseline/profile.json").exists()  # a failed run is never the baseline
    assert list(_runs("validate")["status"]) == ["FAILED"]
