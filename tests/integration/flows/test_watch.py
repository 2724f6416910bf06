"""The `watch` sensor flow on a tiny demo corpus: it runs ingestion when a new study arrives in a source, not when
nothing changed, and records the sources' fingerprints only after an ingestion succeeded. Here with
``pipeline=False`` (the working directory is no DVC project); the DVC path is tests/integration/lineage."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

pytestmark = pytest.mark.integration


def _ingest_runs() -> int:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{Path('outputs/mlflow/mlflow.db').resolve()}")
    return len(mlflow.search_runs(experiment_names=["ingest"]))


def _train_studies() -> set[str]:
    return set(pd.read_parquet("outputs/ingest/train/studies.parquet")["study_key"])


def test_watch_ingests_new_data_only(
    tiny_corpus: Path, tmp_path: Path, project_workdir: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.ingest
    import hlip.data.ingest
    from flows.watch import DEFAULT_STATE, watch_flow
    from hlip.data.fingerprint import source_fingerprint

    corpus = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, corpus)  # the session's corpus stays as it is
    dicom = corpus / "train" / "dicom"
    late_study = sorted(p for p in dicom.glob("*/*") if p.is_dir())[0]
    held_back = tmp_path / "incoming" / late_study.name
    held_back.parent.mkdir()
    late_study.rename(held_back)  # this study "arrives" later
    workdir = project_workdir(corpus, None)
    state = workdir / DEFAULT_STATE

    first = watch_flow(pipeline=False)  # no state yet: the first look ingests everything
    assert first["triggered"] is True
    assert _ingest_runs() == 1
    studies_before = _train_studies()
    state_before = json.loads(state.read_text())
    assert state_before["train/dicom"] == source_fingerprint(str(dicom))[0]

    assert watch_flow(pipeline=False) == {"triggered": False, "changed": []}  # nothing new: no ingestion
    assert _ingest_runs() == 1
    assert json.loads(state.read_text()) == state_before

    held_back.rename(late_study)  # new data arrives in the train source
    real = hlip.data.ingest.ingest

    def unreachable(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ConnectionResetError("source unreachable (injected)")

    monkeypatch.setattr(hlip.data.ingest, "ingest", unreachable)
    no_wait = {prefix: {**options, "retry_delay_seconds": 0.0} for prefix, options in flows.ingest.RETRIES.items()}
    monkeypatch.setattr(flows.ingest, "RETRIES", no_wait)  # same retries, no waiting
    with pytest.raises(ConnectionResetError, match="injected"):
        watch_flow(pipeline=False)  # the ingestion it triggers fails ...
    assert json.loads(state.read_text()) == state_before  # ... so the state still says "not ingested yet"

    monkeypatch.setattr(hlip.data.ingest, "ingest", real)
    third = watch_flow(pipeline=False)  # the next tick sees the new data again and ingests it
    assert third == {"triggered": True, "changed": ["train/dicom"]}
    assert _ingest_runs() == 3  # the failed run and this one
    run = json.loads(Path("outputs/runs/ingest.json").read_text())  # the run's facts (not DVC metrics)
    assert len(_train_studies() - studies_before) == 1
    train = run["train"]  # incremental: the new study (and any whose report matching it changes) was ingested,
    assert 1 <= train["studies_processed"] < train["studies_processed"] + train["studies_unchanged"]  # not all
    assert train["studies_unchanged"] > 0
    assert run["benchmark"]["studies_processed"] == 0
    assert "studies_processed" not in json.loads(Path("outputs/metrics/ingest.json").read_text())["train"]
    state_after = json.loads(state.read_text())
    assert state_after["train/dicom"] == source_fingerprint(str(dicom))[0] != state_before["train/dicom"]
    assert {k: v for k, v in state_after.items() if k != "train/dicom"} == {
        k: v for k, v in state_before.items() if k != "train/dicom"
    }
    assert watch_flow(pipeline=False)["triggered"] is False  # and then it is quiet again
