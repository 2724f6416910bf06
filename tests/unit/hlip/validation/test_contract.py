"""The manifest data contract: clean manifests pass; each kind of tampering fails and names its expectation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hlip.data import manifest
from hlip.validation import ValidateConfig, validate_manifests, write_report

SCHEMA_COLUMNS = {name: list(schema.names) for name, schema in manifest.SCHEMAS.items()}


def _part(n: int, part: str, patient_offset: int = 0) -> dict[str, list[dict[str, Any]]]:
    studies, scans, reports, files = [], [], [], []
    for i in range(n):
        sk = f"{part}-study-{i:03d}"
        studies.append(
            {
                "study_key": sk,
                "patient_key": f"patient-{i + patient_offset:03d}",
                "accession_key": f"acc{i}",
                "modalities": "MR",
                "n_files": 3,
                "n_series": 2,
                "n_scans": 2,
                "n_quarantined_files": 0,
                "has_report": True,
                "status": "ok",
                "fingerprint": "f",
            }
        )
        for j, kind in enumerate(("t1", "flair")):
            scans.append(
                {
                    "study_key": sk,
                    "series_key": f"{sk}-se{j}",
                    "scan_key": f"{sk}-sc{j}",
                    "modality": "MR",
                    "kind": kind,
                    "plane": "axial",
                    "shape": [32, 64, 64],
                    "spacing": [4.0, 3.4, 3.4],
                    "path": f"volumes/{sk}/{j}.npy",
                    "voxel_mean": 60.0,
                    "voxel_std": 40.0,
                    "voxel_min": 0,
                    "voxel_max": 255,
                    "nonzero_fraction": 0.4,
                    "n_slices": 24,
                }
            )
            files.append({"path": f"f{i}-{j}", "size": 10, "disposition": "used", "study_key": sk})
        reports.append(
            {
                "study_key": sk,
                "report_key": f"r{i}",
                "n_redactions": 1,
                "text": "FINDINGS: No acute infarct. Patient [NAME] seen. IMPRESSION: Normal study.",
            }
        )
    return {"studies": studies, "scans": scans, "reports": reports, "quarantine": [], "files": files}


def _write(root: Path, tables: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, Path]:
    parts = {}
    for part, part_tables in tables.items():
        out = root / part
        out.mkdir(parents=True)
        for name, rows in part_tables.items():
            manifest.write_table(out, name, rows)
        parts[part] = out
    return parts


def _validate(tmp_path: Path, tables: dict[str, dict[str, list[dict[str, Any]]]], baseline: Path | None = None):  # type: ignore[no-untyped-def]
    parts = _write(tmp_path / "m", tables)
    return validate_manifests(parts, ValidateConfig(), baseline or tmp_path / "baseline.json", SCHEMA_COLUMNS)


def _failed(report: Any) -> set[tuple[str, str, str]]:
    return {(r.check.table, r.check.expectation, r.check.column) for r in report.critical_failures + report.warnings}


def test_clean_manifests_pass_and_become_the_baseline(tmp_path: Path) -> None:
    report = _validate(tmp_path, {"train": _part(6, "train"), "benchmark": _part(3, "bench", patient_offset=100)})
    assert report.passed, report.as_text()
    assert not report.warnings
    assert (tmp_path / "baseline.json").is_file()


def test_duplicate_study_key_is_critical(tmp_path: Path) -> None:
    part = _part(4, "train")
    part["studies"].append(dict(part["studies"][0]))
    report = _validate(tmp_path, {"train": part})
    assert not report.passed
    assert ("studies", "ExpectColumnValuesToBeUnique", "study_key") in _failed(report)


def test_identifier_left_in_report_fails_and_is_not_copied_into_the_report(tmp_path: Path) -> None:
    part = _part(4, "train")
    part["reports"][2]["text"] = "FINDINGS: seen on 03/14/2025 for DOE^JANE, MRN 99887766, call 555-123-4567."
    report = _validate(tmp_path, {"train": part})
    assert not report.passed
    failed_patterns = {r.check.why for r in report.critical_failures}
    for name in ("date", "phone", "long_number", "dicom_person_name"):
        assert f"identifier pattern '{name}' left in report text" in failed_patterns
    json_path, html_path = write_report(report, tmp_path / "out")
    for path in (json_path, html_path):
        text = path.read_text()
        for value in ("DOE^JANE", "99887766", "555-123-4567", "03/14/2025"):
            assert value not in text
    offending = next(r for r in report.critical_failures if "dicom_person_name" in r.check.why)
    assert offending.unexpected_keys == ["train-study-002"]  # the hashed row key, not the value


def test_patient_in_two_parts_is_critical(tmp_path: Path) -> None:
    report = _validate(tmp_path, {"train": _part(4, "train"), "benchmark": _part(2, "bench", patient_offset=3)})
    assert ("patients", "ExpectColumnValuesToBeBetween", "n_parts") in _failed(report)
    assert not report.passed


def test_schema_change_and_bad_spacing_are_critical(tmp_path: Path) -> None:
    part = _part(3, "train")
    part["scans"][1]["spacing"] = [0.0, 1.0, 1.0]
    report = _validate(tmp_path, {"train": part})
    assert ("scans", "ExpectColumnValuesToBeBetween", "spacing_min") in _failed(report)
    # schema: a table with a column missing
    parts = _write(tmp_path / "m2", {"train": _part(2, "train")})
    import pyarrow.parquet as pq

    table = pq.read_table(parts["train"] / "scans.parquet").drop_columns(["kind"])
    pq.write_table(table, parts["train"] / "scans.parquet")
    report = validate_manifests(parts, ValidateConfig(), tmp_path / "b2.json", SCHEMA_COLUMNS)
    assert ("scans", "ExpectTableColumnsToMatchSet", "") in _failed(report)


def test_missing_reports_are_a_warning_not_a_stop(tmp_path: Path) -> None:
    part = _part(10, "train")
    for study in part["studies"][:3]:
        study["has_report"] = False
    report = _validate(tmp_path, {"train": part})
    assert report.passed
    assert ("studies", "ExpectColumnMeanToBeBetween", "has_report_int") in _failed(report)


def test_kind_drift_against_the_accepted_baseline(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    assert _validate(tmp_path / "a", {"train": _part(6, "train")}, baseline).passed
    shifted = _part(6, "train")
    for scan in shifted["scans"]:
        scan["kind"] = "t2"  # every scan now a kind the baseline never saw: total variation 1.0
    report = _validate(tmp_path / "b", {"train": shifted}, baseline)
    drift = {d.column: d.distance for d in report.drifts}
    assert drift["scans.kind"] == pytest.approx(1.0)
    assert drift["scans.plane"] == pytest.approx(0.0)
    assert not report.passed
    assert json.loads(baseline.read_text())["scans.kind"] == {"flair": 0.5, "t1": 0.5}  # a failed run is not accepted


def test_check_files_are_the_same_with_or_without_an_earlier_run_and_the_drift_is_kept_apart(tmp_path: Path) -> None:
    # the check files are a DVC output: a workspace with an accepted baseline must write what a fresh clone writes
    baseline = tmp_path / "history" / "profile.json"
    tables = {"train": _part(6, "train")}
    fresh = _validate(tmp_path / "a", tables, baseline)  # no baseline yet: this run becomes it
    again = _validate(tmp_path / "b", tables, baseline)
    assert (fresh.baseline_found, again.baseline_found) == (False, True)
    first = write_report(fresh, tmp_path / "out_a", drift_dir=tmp_path / "history")
    assert [p.name for p in first] == ["validation.json", "validation.html", "drift.json", "drift.html"]
    drift_a = json.loads(first[2].read_text())
    second = write_report(again, tmp_path / "out_b", drift_dir=tmp_path / "history")
    for a, b in zip(first[:2], second[:2], strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert "drift" not in json.loads(first[0].read_text())
    drift_b = json.loads(second[2].read_text())
    assert (drift_a["baseline_found"], drift_b["baseline_found"]) == (False, True)
    assert {d["column"] for d in drift_b["drift"]} >= {"scans.kind", "scans.plane"}
    assert "Baseline found." in second[3].read_text()
    # without a drift folder (a library caller) one report holds both, as before
    both = write_report(again, tmp_path / "out_c")
    assert json.loads(both[0].read_text())["baseline_found"] is True
