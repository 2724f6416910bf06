"""`predict` over new studies: the registered champion through the served model's code path, one table, equal to
evaluation's scores on the same studies; a rerun skips what the same model version already predicted, and a run
cut short (a half-written last line) resumes with the missing studies only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from .conftest import NAME, PROMPTS, evaluate_studies

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parents[3]


def test_predict_writes_the_table_equal_to_evaluation_and_resumes(
    env: dict[str, str],
    champion: str,
    corpus: Path,
    exported_model: Path,
    ingest_config: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib
    import json
    import sys

    import pydicom
    from mlflow import MlflowClient

    from hlip.stages.predict import RESULTS, PredictParams, run

    monkeypatch.chdir(tmp_path)  # outputs/metrics/predict.json lands here
    dicom = corpus / "benchmark" / "dicom"
    params = PredictParams(model=f"models:/{NAME}@champion", source=str(dicom), out=str(tmp_path / "predict"))
    path_before = list(sys.path)
    first = run(params)
    table = pd.read_parquet(first.table)
    # the model ran its shipped code; this process imports the project's own `hlip` again afterwards
    assert sys.path == path_before
    assert Path(importlib.import_module("hlip.data.dataset").__file__ or "").is_relative_to(PROJECT)

    assert first.model_version == f"{NAME}/{champion}"
    assert (first.n_studies, first.n_predicted, first.n_errors) == (2, 2, 0)
    assert list(table["model_version"].unique()) == [first.model_version]
    assert {"study_key", *PROMPTS["findings"], "embedding", "n_scans", "quarantine", "error"} <= set(table.columns)
    reference = evaluate_studies(dicom, exported_model, ingest_config, tmp_path)
    assert sorted(table["study_key"]) == sorted(reference)  # the same keyed hashes evaluation's ingest writes
    for row in table.to_dict("records"):
        embedding, scores = reference[row["study_key"]]
        np.testing.assert_allclose(row["embedding"], embedding, atol=1e-5)
        np.testing.assert_allclose([row[f] for f in PROMPTS["findings"]], scores, atol=1e-5)
        assert isinstance(json.loads(row["quarantine"]), dict)
    assert sum(first.quarantine.values()) >= 1  # the demo corpus's junk files are accounted for

    client = MlflowClient()
    logged = {a.path for a in client.list_artifacts(first.mlflow_run_id)}
    assert {"predictions.parquet", "summary.json"} <= logged
    assert client.get_run(first.mlflow_run_id).data.tags["model.version"] == first.model_version

    # a rerun with the same model version, from the command line, predicts nothing again
    from typer.testing import CliRunner

    from hlip.cli.main import app

    args = ["predict", "--model", params.model, "--source", params.source, "--out", params.out]
    cli = CliRunner().invoke(app, args)
    assert cli.exit_code == 0, cli.output
    assert f"{first.model_version}: 2 studies (0 predicted now, 0 with an error)" in cli.output
    pd.testing.assert_frame_equal(pd.read_parquet(first.table), table)

    # a run killed while writing its second study: the cut line is ignored, only that study is predicted again
    results = tmp_path / "predict" / RESULTS
    lines = results.read_text().splitlines()
    results.write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])
    resumed = run(params)
    assert (resumed.n_studies, resumed.n_predicted) == (2, 1)
    pd.testing.assert_frame_equal(pd.read_parquet(resumed.table), table)

    # no patient identifier or source path in anything predict wrote outside its ingested volumes
    identifiers = set()
    for path in dicom.rglob("*"):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True) if path.is_file() else None
        except Exception:  # the demo corpus's junk files
            continue
        if ds is not None and "PatientID" in ds:
            identifiers |= {str(ds.PatientID), str(ds.AccessionNumber), str(ds.StudyInstanceUID)}
    identifiers |= {str(dicom)}
    written = [p for p in (tmp_path / "predict").rglob("*") if p.is_file() and p.suffix != ".npy"]
    leaks = {i: p.name for p in written for i in identifiers if i and i.encode() in p.read_bytes()}
    assert not leaks, leaks
