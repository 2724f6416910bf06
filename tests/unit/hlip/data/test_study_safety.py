"""Studies whose files disagree on the patient, and series with text burned into the pixels, are not used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hlip.config import to_dict
from hlip.data.config import IngestConfig
from hlip.data.deid import HashKey
from hlip.data.ingest import ingest

Writer = Callable[..., list[Path]]
BASE: dict[str, Any] = {"workers": 1, "series": {"min_slices": 6}, "preprocess": {"size": [6, 8, 8]}}
T1 = {"RepetitionTime": 500, "EchoTime": 10}


def _config(**deid: Any) -> IngestConfig:
    return IngestConfig.from_dict({**BASE, "deid": {**to_dict(IngestConfig().deid), **deid}})


def _run(root: Path, out: Path, config: IngestConfig) -> tuple[dict[str, Any], pd.DataFrame]:
    summary = ingest(root, out, config=config, key=HashKey("k"))
    return summary, pd.read_parquet(out / "quarantine.parquet")


def _two_patients(root: Path, write_series: Writer) -> None:
    study = "1.2.826.0.1.3680043.8.498.700"
    write_series(root / "a", n=6, study_uid=study, PatientID="PID-A", **T1)
    write_series(root / "b", n=6, study_uid=study, PatientID="PID-B", RepetitionTime=4000, EchoTime=100)


def test_a_study_with_two_patient_ids_is_quarantined(tmp_path: Path, write_series: Writer) -> None:
    _two_patients(tmp_path / "raw", write_series)
    summary, quarantine = _run(tmp_path / "raw", tmp_path / "out", _config())
    assert summary["scans"] == 0
    assert summary["files_quarantined"] == 12
    assert summary["quarantined_by_reason"]["study:identity_conflict"] == 1
    files = pd.read_parquet(tmp_path / "out" / "files.parquet")
    assert set(files.ref) == set(quarantine.loc[quarantine.reason == "identity_conflict", "entry_id"])
    assert "PID-A" not in quarantine.to_csv()


def test_flag_mode_keeps_the_study_and_says_so(tmp_path: Path, write_series: Writer) -> None:
    _two_patients(tmp_path / "raw", write_series)
    summary, quarantine = _run(tmp_path / "raw", tmp_path / "out", _config(identity_conflict="flag"))
    assert summary["scans"] == 2
    assert summary["files_used"] == 12
    assert "flagged only" in quarantine.loc[quarantine.reason == "identity_conflict", "message"].item()


def test_one_patient_id_is_no_conflict(tmp_path: Path, write_series: Writer) -> None:
    study = "1.2.826.0.1.3680043.8.498.701"
    write_series(tmp_path / "raw" / "a", n=6, study_uid=study, **T1)
    write_series(tmp_path / "raw" / "b", n=6, study_uid=study, RepetitionTime=4000, EchoTime=100)
    summary, _ = _run(tmp_path / "raw", tmp_path / "out", _config())
    assert summary["scans"] == 2


def test_burned_in_annotation_is_quarantined_unless_allowed(tmp_path: Path, write_series: Writer) -> None:
    write_series(tmp_path / "raw" / "burned", n=6, BurnedInAnnotation="YES", **T1)
    write_series(tmp_path / "raw" / "clean", n=6, BurnedInAnnotation="NO", **T1)
    summary, quarantine = _run(tmp_path / "raw", tmp_path / "out", _config())
    assert summary["scans"] == 1
    assert summary["quarantined_by_reason"]["series:burned_in_annotation"] == 1
    assert "BurnedInAnnotation = YES in 6 of 6 files" in quarantine.message.tolist()
    allowed, _ = _run(tmp_path / "raw", tmp_path / "out2", _config(allow_burned_in=True))
    assert allowed["scans"] == 2


def test_deid_rule_set_is_opt_in(tmp_path: Path, write_series: Writer) -> None:
    # a DERIVED/SECONDARY MR series: the deid package's CTP-derived blacklist flags it; BurnedInAnnotation is absent
    write_series(tmp_path / "raw" / "derived", n=6, ImageType=["DERIVED", "SECONDARY", "MPR"], **T1)
    default, _ = _run(tmp_path / "raw", tmp_path / "out", _config())
    assert default["scans"] == 1
    ruled, quarantine = _run(tmp_path / "raw", tmp_path / "out2", _config(burned_in_rules=True))
    assert ruled["scans"] == 0
    assert quarantine.loc[quarantine.reason == "burned_in_annotation", "message"].item().startswith("deid rule set")


def test_identity_conflict_setting_is_checked() -> None:
    with pytest.raises(ValueError, match="identity_conflict"):
        _config(identity_conflict="ignore")
