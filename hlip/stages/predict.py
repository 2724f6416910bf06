"""Stage `predict`: run a registered model over a folder or `s3://` prefix of new studies; one table out.

The served model's own code path does the work: the model is loaded with `mlflow.pyfunc.load_model` (alias
resolved once to a fixed version, so a promotion mid-run cannot mix two models in one table), the source is
ingested with the model's own ingest settings (`hlip.data.ingest.ingest`, incremental: a rerun reads only what
changed), and each study is predicted by the pyfunc's `predict` from its ingested scans, with the ingested
folder as the only allowed root. Results are appended to `<out>/predictions.jsonl` one study at a time, so a
killed run resumes where it stopped: studies already predicted by the same model version are skipped.

Outputs (`<out>/`): `predictions.parquet` (this model version's rows: `study_key`, a probability per finding,
`embedding`, `n_scans`, `quarantine` (JSON reason counts of the study's set-aside files), `error`,
`model_version`), `summary.json`, and `outputs/metrics/predict.json`. Keys are the keyed hashes ingest writes;
no patient identifier or source path reaches the table, the logs or MLflow.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlip.config import to_dict
from hlip.serving.in_process import model_code_scope
from hlip.stages.base import load_block, write_metrics

log = logging.getLogger(__name__)

STAGE = "predict"
RESULTS, TABLE, SUMMARY = "predictions.jsonl", "predictions.parquet", "summary.json"


@dataclass(frozen=True)
class PredictParams:
    """The `predict:` block of `params.yaml`.

    Attributes:
        model: A model URI: `models:/<name>@<alias>` (resolved to its version at start), `models:/<name>/<v>`,
            `runs:/...` or a local model folder.
        source: Folder or `s3://bucket/prefix` of new DICOM studies (any layout: files are grouped by their UIDs).
        out: Output folder (the ingested studies go under `<out>/ingest`).
        workers: Ingest worker processes.
    """

    model: str = "models:/hlip-demo@champion"
    source: str = ""
    out: str = "outputs/predict"
    workers: int = 1

    def __post_init__(self) -> None:
        if not self.source:
            raise ValueError("predict.source must name a folder or s3:// prefix of new studies")
        if self.workers < 1:
            raise ValueError("predict.workers must be at least 1")

    @classmethod
    def load(cls, path: str | Path | None = None) -> PredictParams:
        """The `predict:` block of the parameters file (unknown keys rejected)."""
        return load_block(cls, STAGE, path)


@dataclass(frozen=True)
class PredictResult:
    """What a run did.

    Attributes:
        table: The written table.
        model_version: The model that predicted (`<name>/<version>`, or the URI when it is not a registry model).
        n_studies: Studies in the table.
        n_predicted: Studies predicted in this run (the rest were done before, by the same model version).
        n_errors: Studies with an error (no probabilities).
        quarantine: Reason counts of every file ingest set aside (including files in no study).
        mlflow_run_id: The stage's MLflow run.
    """

    table: Path
    model_version: str
    n_studies: int
    n_predicted: int
    n_errors: int
    quarantine: dict[str, int]
    mlflow_run_id: str


def run(params: PredictParams) -> PredictResult:
    """Ingest the source, predict every study not yet predicted by this model version, write and log the table."""
    import mlflow

    from hlip.tracking.runs import stage_run

    out = Path(params.out)
    out.mkdir(parents=True, exist_ok=True)
    with stage_run(STAGE, {STAGE: to_dict(params)}) as active:
        uri, version = pin_model(params.model)
        mlflow.set_tags({"model.uri": uri, "model.version": version})
        ingested = (out / "ingest").resolve()
        with model_code_scope():  # the model runs its shipped code; this process keeps its own after
            result = _predict_all(uri, version, params, out, ingested, active.info.run_id)
        mlflow.log_artifact(str(result.table))
        mlflow.log_metrics({"n_studies": result.n_studies, "n_predicted": result.n_predicted,
                            "n_errors": result.n_errors})  # fmt: skip
        summary = {k: v for k, v in result.__dict__.items() if k != "table"}
        (out / SUMMARY).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        mlflow.log_artifact(str(out / SUMMARY))
        write_metrics(STAGE, {"n_studies": result.n_studies, "n_errors": result.n_errors})
    return result


def _predict_all(
    uri: str, version: str, params: PredictParams, out: Path, ingested: Path, run_id: str
) -> PredictResult:
    """Load the model, ingest the source, append a row per study not yet predicted, write the table."""
    import mlflow

    model = mlflow.pyfunc.load_model(uri, model_config={"serving": {"roots": [str(ingested)]}})
    ingest_source(model, params, ingested)
    studies = list(study_scans(ingested))
    reasons = quarantine_by_study(ingested)
    done = completed(out / RESULTS, version)
    todo = [(key, paths) for key, paths in studies if key not in done]
    log.info("%d studies: %d to predict, %d done before by %s", len(studies), len(todo), len(done), version)
    drop_partial_line(out / RESULTS)
    with (out / RESULTS).open("a") as results:
        for i, (key, scans) in enumerate(todo):
            row = predict_study(model, key, scans, reasons.get(key, {}), version)
            results.write(json.dumps(row, allow_nan=False) + "\n")
            results.flush()
            os.fsync(results.fileno())  # a kill loses at most the study in flight
            log.info("predicted %d/%d studies", i + 1, len(todo))
    table = write_table(out, version, [key for key, _ in studies])
    return _result(table, version, len(todo), reasons, run_id)


def pin_model(uri: str) -> tuple[str, str]:
    """`(uri, version)`: a registry alias resolved to its current version (`models:/name/3`, `name/3`); other
    URIs are returned as they are, and name themselves as the version."""
    if uri.startswith("models:/") and "@" in uri:
        from mlflow import MlflowClient

        name, alias = uri[len("models:/") :].split("@", 1)
        version = MlflowClient().get_model_version_by_alias(name, alias).version
        return f"models:/{name}/{version}", f"{name}/{version}"
    return uri, uri[len("models:/") :] if uri.startswith("models:/") else uri


def ingest_source(model: Any, params: PredictParams, ingested: Path) -> None:
    """Ingest the source with the served model's own ingest settings (incremental over reruns)."""
    import dataclasses

    from hlip.data.deid import HashKey
    from hlip.data.ingest import ingest

    config = dataclasses.replace(model.unwrap_python_model().ingest_config, workers=params.workers)
    summary = ingest(params.source, ingested, config=config, key=HashKey.from_env(config.deid.key_env))
    log.info("ingest: %d files listed, %d studies processed", summary["files_listed"], summary["studies_processed"])


def study_scans(ingested: Path) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """`(study_key, scan rows)` of every ingested study, in key order; each scan row (`kind`, `plane`,
    `scan_key`, ...) with its volume `path` made absolute."""
    from hlip.data import manifest

    scans: dict[str, list[dict[str, Any]]] = {}
    for scan in manifest.read_table(ingested, "scans"):
        scans.setdefault(str(scan["study_key"]), []).append({**scan, "path": str(ingested / scan["path"])})
    for study in sorted(manifest.read_table(ingested, "studies"), key=lambda s: str(s["study_key"])):
        yield str(study["study_key"]), scans.get(str(study["study_key"]), [])


def quarantine_by_study(ingested: Path) -> dict[str, dict[str, int]]:
    """Reason counts of the quarantined entries of each study (`""`: entries in no study)."""
    from hlip.data import manifest

    counts: dict[str, Counter[str]] = {}
    for q in manifest.read_table(ingested, "quarantine"):
        counts.setdefault(str(q.get("study_key") or ""), Counter())[str(q["reason"])] += 1
    return {k: dict(sorted(c.items())) for k, c in counts.items()}


def predict_study(
    model: Any, key: str, scans: list[dict[str, Any]], reasons: Mapping[str, int], version: str
) -> dict[str, Any]:
    """One table row: the served model's answer for the study's scans, chosen by the served model's own rule
    (`chosen_paths` with its study contract, as for a study folder it ingests itself); an error row when the
    study has no usable scan."""
    import pandas as pd

    from hlip.tracking.pyfunc import chosen_paths

    try:
        paths = chosen_paths(scans, model.unwrap_python_model().contract)
    except ValueError as exc:
        answer: dict[str, Any] = {"embedding": [], "n_scans": 0, "error": str(exc)}
    else:
        answer = model.predict(pd.DataFrame({"scan_paths": [paths]})).iloc[0].to_dict()
    row = {k: _json_value(v) for k, v in answer.items() if k != "quarantine"}
    return {"study_key": key, **row, "quarantine": json.dumps(dict(reasons)), "model_version": version}


def drop_partial_line(results: Path) -> None:
    """Cut a last line that a kill left unfinished (no newline), so the next row starts on a line of its own."""
    if not results.is_file():
        return
    data = results.read_bytes()
    if data and not data.endswith(b"\n"):
        with results.open("r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)
        log.warning("cut an unfinished last line of %s (an interrupted run)", RESULTS)


def completed(results: Path, version: str) -> set[str]:
    """Study keys already predicted by `version` (a line cut short by a kill is ignored)."""
    return {row["study_key"] for row in _read_results(results) if row.get("model_version") == version}


def write_table(out: Path, version: str, keys: list[str]) -> Path:
    """`predictions.parquet`: the latest row of each of `keys` predicted by `version`, in key order."""
    import pandas as pd

    latest = {r["study_key"]: r for r in _read_results(out / RESULTS) if r.get("model_version") == version}
    rows = [latest[k] for k in keys if k in latest]
    pd.DataFrame(rows).to_parquet(out / TABLE, index=False)
    return out / TABLE


def _read_results(path: Path) -> Iterator[dict[str, Any]]:
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            log.warning("skipping a results line cut short (an interrupted run)")


def _json_value(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _result(
    table: Path, version: str, n_predicted: int, reasons: dict[str, dict[str, int]], run_id: str
) -> PredictResult:
    import pandas as pd

    frame = pd.read_parquet(table)
    total: Counter[str] = Counter()
    for counts in reasons.values():
        total.update(counts)
    errors = int((frame["error"].fillna("") != "").sum()) if "error" in frame else 0
    return PredictResult(table, version, len(frame), n_predicted, errors, dict(sorted(total.items())), run_id)
