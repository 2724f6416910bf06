"""`label_flow` end to end on synthetic ingest outputs: rules and llm backends, files, metrics, MLflow, quality."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from hlip.data.deid import HashKey
from testkit.chat_server import keyword_chat_server

pytestmark = pytest.mark.integration

KEY_ENV = "LABEL_FLOW_TEST_KEY"
STUDIES = {  # uid: (report, truth stroke, glioma, meningioma, hedged)
    "1.2.3.1": ("Indication: rule out stroke.\nFindings:\nAcute infarct in the left MCA territory.", 1, 0, 0, ""),
    "1.2.3.2": ("Findings:\nNo acute infarct. Possible glioma of the right frontal lobe.", 0, 1, 0, "glioma"),
    "1.2.3.3": ("Findings:\nFalx meningioma. No evidence of acute ischemia.", 0, 0, 1, ""),
    "1.2.3.4": ("Impression:\nNormal MRI of the brain.", 0, 0, 0, ""),
    "1.2.3.5": ("", 0, 0, 0, ""),  # empty report: a failure, never a normal study
}


@pytest.fixture(scope="module", autouse=True)
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(KEY_ENV, "flow-test-secret")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("HLIP_PARAMS", raising=False)
    key = HashKey("flow-test-secret")
    for part in ("train", "benchmark"):
        folder = tmp_path / "ingest" / part
        folder.mkdir(parents=True)
        pd.DataFrame({
            "study_key": [key.hash("study", uid, 20) for uid in STUDIES],
            "report_key": [f"r{i}" for i in range(len(STUDIES))],
            "text": [s[0] for s in STUDIES.values()],
        }).to_parquet(folder / "reports.parquet")  # fmt: skip
    pd.DataFrame(
        [(uid, *s[1:]) for uid, s in STUDIES.items()],
        columns=["study_instance_uid", "stroke", "glioma", "meningioma", "uncertain"],
    ).to_csv(tmp_path / "truth.csv", index=False)
    (tmp_path / "mini.yaml").write_text(yaml.safe_dump({"name": "mini", "version": "0.1", "findings": [
        {"name": "stroke", "description": "Ischemic infarct.", "terms": ["infarct", "acute ischemia"]},
        {"name": "glioma", "description": "Glial tumour.", "terms": ["glioma"]},
        {"name": "meningioma", "description": "Meningioma.", "terms": ["meningioma"]},
    ]}))  # fmt: skip
    return tmp_path


def _params(workdir: Path, backend: str, llm: dict | None = None) -> Path:
    block = {
        "backend": backend,
        "findings": str(workdir / "mini.yaml"),
        "parts": ["train", "benchmark"],
        "ingest_dir": str(workdir / "ingest"),
        "out": "outputs/labels",
        "llm": {"cache_dir": "outputs/labels/llm_cache", **(llm or {})},
        "reference": {
            "path": str(workdir / "truth.csv"),
            "findings": ["stroke", "glioma", "meningioma"],
            "uncertain_column": "uncertain",
            "key_env": KEY_ENV,
        },
    }
    path = workdir / f"params_{backend}.yaml"
    path.write_text(yaml.safe_dump({"label": block}))
    return path


def test_rules_flow_writes_labels_failures_quality_metrics_and_mlflow_run(workdir: Path) -> None:
    from flows.label import label_flow

    metrics = label_flow(str(_params(workdir, "rules")))
    labels = pd.read_parquet(workdir / "outputs/labels/train/labels.parquet")
    assert list(labels.columns) == ["study_key", "finding", "value", "evidence", "backend"]
    assert str(labels["value"].dtype) == "int8"
    assert len(labels) == 4 * 3
    failures = pd.read_parquet(workdir / "outputs/labels/train/failures.parquet")
    assert failures.reason.tolist() == ["empty_report"]
    quality = json.loads((workdir / "outputs/labels/quality.json").read_text())
    assert quality["n_studies"] == 4
    assert quality["macro"]["agreement"] == 1.0
    saved = json.loads((workdir / "outputs/metrics/label.json").read_text())
    assert saved == metrics
    assert saved["train"]["counts"]["stroke"] == {"present": 1, "absent": 3, "uncertain": 0}
    assert saved["train"]["counts"]["glioma"] == {"present": 0, "absent": 3, "uncertain": 1}
    assert saved["quality"]["f1"] == 1.0
    assert "seconds" not in saved["train"]  # wall clock stays out of `dvc metrics diff`

    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{workdir / 'outputs/mlflow/mlflow.db'}")
    run = mlflow.search_runs(experiment_names=["label"], output_format="list")[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["label.backend"] == "rules"
    assert run.data.metrics["quality/f1"] == 1.0
    assert run.data.metrics["train/seconds"] > 0  # ... and goes to MLflow
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"quality.json", "quality.md"} <= artifacts


def test_llm_flow_labels_through_the_endpoint_and_reruns_from_cache(workdir: Path) -> None:
    from flows.label import label_flow

    keywords = {"stroke": ["infarct"], "glioma": ["glioma"], "meningioma": ["meningioma"]}
    with keyword_chat_server(keywords) as server:
        llm = {"base_url": server.base_url, "model": "kw", "max_in_flight": 2, "backoff_s": 0.01,
               "cost_per_1m_input": 1.0, "cost_per_1m_output": 1.0}  # fmt: skip
        params = _params(workdir, "llm", llm)
        metrics = label_flow(str(params))
        assert server.log.requests == 4  # train and benchmark share reports: the second part is cached
        assert metrics["train"]["prompt_tokens"] > 0
        assert metrics["train"]["cost_usd"] > 0
        assert metrics["benchmark"]["cache_hits"] == 4
        labels = pd.read_parquet(workdir / "outputs/labels/train/labels.parquet")
        assert set(labels.backend) == {"llm"}
        assert len(labels) == 12
        server.reset()
        label_flow(str(params))
        assert server.log.requests == 0
