"""End-to-end ingestion of a small written corpus: accounting, reasons, de-identification, incremental reruns."""

from __future__ import annotations

import csv
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
import pytest

from hlip.config import to_dict
from hlip.data.config import IngestConfig
from hlip.data.deid import HashKey
from hlip.data.ingest import ingest
from testkit.files import sha_tree

from .conftest import PATIENT, SAGITTAL, RLELossless

CONFIG = IngestConfig.from_dict(
    {
        "workers": 1,
        "series": {"min_slices": 6},
        "preprocess": {"size": [8, 16, 16], "spacing": None, "size_mode": "resize"},
        "deid": {"hash_paths": False},  # readable paths, so the tests can name files (the default hashes them)
    }
)
KEY = HashKey("test-secret")
STUDY_B = {"PatientID": "PIDB2222222", "PatientName": "Panza^Teresa", "AccessionNumber": "ACCB9988776"}


@pytest.fixture
def corpus(tmp_path: Path, write_series: Callable[..., list[Path]], write_special: Callable[..., Path]) -> Path:
    root = tmp_path / "raw"
    a = "1.2.826.0.1.3680043.8.498.100"
    t1 = write_series(root / "exp1", n=8, study_uid=a, RepetitionTime=500, EchoTime=10, name=lambda i: f"T1_{i}.dcm")
    flair_uid = "1.2.826.0.1.3680043.8.498.101"
    write_series(root / "exp1" / "x", n=4, study_uid=a, series_uid=flair_uid, orientation=SAGITTAL,
                 RepetitionTime=9000, EchoTime=120, InversionTime=2500)  # fmt: skip
    write_series(root / "exp2" / "deep", n=4, study_uid=a, series_uid=flair_uid, orientation=SAGITTAL,
                 positions=[8, 10, 12, 14], RepetitionTime=9000, EchoTime=120, InversionTime=2500)  # fmt: skip
    dwi = "1.2.826.0.1.3680043.8.498.102"
    write_series(root / "exp2" / "b0", n=6, study_uid=a, series_uid=dwi, DiffusionBValue=0)
    write_series(root / "exp2" / "b1000", n=6, study_uid=a, series_uid=dwi, DiffusionBValue=1000)
    write_series(root / "exp3", n=8, study_uid=a, enhanced=True, transfer_syntax=RLELossless,
                 RepetitionTime=4000, EchoTime=100, name=lambda i: "t2_enhanced")  # fmt: skip
    t2b = write_series(root / "exp4", n=8, study_uid=a, RepetitionTime=4000, EchoTime=100, shuffle=False)
    write_series(root / "loc", n=3, study_uid=a, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])
    write_special(root / "exp1" / "sc", "sc_rgb", a)
    write_special(root / "exp1" / "sr", "sr", a)
    # bad files
    (root / "exp1" / "empty").write_bytes(b"")
    (root / "exp1" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(200))
    shutil.copyfile(t1[3], root / "exp3" / "T1_3 copy.dcm")
    last = t2b[-1]  # the top slice: losing it leaves a valid stack
    last.write_bytes(last.read_bytes()[:-300])
    nopix = pydicom.dcmread(t1[0])
    del nopix.PixelData
    nopix.save_as(t1[0])
    # study B, CT
    write_series(root / "ct", n=8, study_uid="1.2.826.0.1.3680043.8.498.200", modality="CT", slope=1.0,
                 intercept=-1024, ConvolutionKernel="H30s", **STUDY_B)  # fmt: skip
    reports = root.parent / "reports.csv"
    with reports.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["accession_number", "patient_id", "report_date", "report_text"])
        w.writerow(
            [
                PATIENT["AccessionNumber"],
                PATIENT["PatientID"],
                "2024-01-03",
                "Patient Alonso Quixote, DOB 1947-05-23.\nFINDINGS: FLAIR hyperintensity.\nSigned by Dr. Sancho",
            ]
        )
        w.writerow([STUDY_B["AccessionNumber"], STUDY_B["PatientID"], "2024-01-04", "   "])
        w.writerow(["ACC0000000", "PID0", "2024-01-05", "orphan report"])  # fmt: skip
    return root


def _run(root: Path, out: Path, **kw: Any) -> dict[str, Any]:
    return ingest(root, out, reports=root.parent / "reports.csv", config=kw.pop("config", CONFIG), key=KEY, **kw)


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    names = ("studies", "scans", "reports", "quarantine", "files")
    return {n: pd.read_parquet(out / f"{n}.parquet") for n in names}


def test_ingest_end_to_end(corpus: Path, tmp_path: Path) -> None:
    before = sha_tree(corpus)
    out = tmp_path / "out"
    summary = _run(corpus, out)
    t = _tables(out)
    assert sha_tree(corpus) == before  # raw files are never modified

    # every input file accounted for exactly once
    files = t["files"].set_index("path")
    assert sorted(files.index) == sorted(before)
    used, quarantined = files[files.disposition == "used"], files[files.disposition == "quarantined"]
    assert set(used.ref) <= set(t["scans"].series_key)
    assert set(quarantined.ref) <= set(t["quarantine"].entry_id)
    assert len(used) + len(quarantined) == len(before)

    reason_of = {p: ref.split(":")[-1] for p, ref in quarantined.ref.items()}
    assert reason_of["exp1/empty"] == "empty_file"
    assert reason_of["exp1/.DS_Store"] == "not_dicom"
    assert reason_of["exp3/T1_3 copy.dcm"] == "duplicate_file"
    assert reason_of["exp4/IM0007"] == "truncated"
    assert reason_of["exp1/T1_0.dcm"] == "missing_pixel_data"
    assert reason_of["exp1/sc"] == "secondary_capture"
    assert reason_of["exp1/sr"] == "structured_report"
    assert {reason_of[f"loc/IM000{i}"] for i in range(3)} == {"localizer"}

    scans = t["scans"]
    kinds = sorted(f"{k}/{w}" if w else k for k, w in zip(scans.kind, scans.window, strict=True))
    assert kinds == ["ct/blood", "ct/bone", "ct/brain", "dwi", "dwi", "flair", "t1", "t2", "t2"]
    assert sorted(scans.b_value.dropna()) == [0.0, 1000.0]
    assert scans.loc[scans.kind == "flair", "n_slices"].item() == 8  # a series spanning two folders
    assert scans.loc[scans.kind == "flair", "plane"].item() == "sagittal"
    assert scans.loc[scans.kind == "t1", "n_slices"].item() == 7  # the slice without pixels is gone, no gap
    for row in scans.itertuples():
        vol = np.load(out / row.path, mmap_mode="r")
        assert vol.dtype == np.uint8
        assert vol.shape == (8, 16, 16) == tuple(row.shape)
    assert summary["scans_by_kind"]["ct/brain"] == 1

    # reports: joined, scrubbed, anomalies quarantined
    assert len(t["reports"]) == 1
    text = t["reports"].text.item()
    assert "FLAIR hyperintensity" in text
    for leaked in ("Quixote", "1947", "Sancho"):
        assert leaked not in text
    report_reasons = set(t["quarantine"].loc[t["quarantine"].level == "report", "reason"])
    assert report_reasons == {"empty_report", "report_without_study"}
    studies = t["studies"].set_index("study_key")
    assert sorted(studies.has_report) == [False, True]
    assert studies.patient_key.nunique() == 2

    # no identifier or raw UID reaches any output byte
    blob = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    # parquet pages are compressed: search the decoded tables too
    blob += b"".join(pd.read_parquet(p).to_csv().encode() for p in out.glob("*.parquet"))
    secrets = [*PATIENT.values(), *STUDY_B.values(), "Quixote", "1.2.826.0.1.3680043.8.498.100", "test-secret"]
    for value in secrets:
        assert str(value).encode() not in blob, value
    assert b"Alonso" not in blob


def test_rerun_does_no_work_and_new_studies_are_processed_alone(
    corpus: Path, tmp_path: Path, write_series: Callable[..., list[Path]]
) -> None:
    out = tmp_path / "out"
    first = _run(corpus, out)
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "volumes").rglob("*.npy")}
    again = _run(corpus, out)
    assert again["studies_processed"] == 0
    assert again["files_header_read"] == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "volumes").rglob("*.npy")} == mtimes
    for k in ("studies", "scans", "files", "quarantined_by_reason"):
        assert again[k] == first[k]
    write_series(corpus / "new", n=8, study_uid="1.2.826.0.1.3680043.8.498.300", RepetitionTime=500, EchoTime=10)
    third = _run(corpus, out)
    assert third["studies_processed"] == 1
    assert third["files_header_read"] == 8
    assert third["studies"] == first["studies"] + 1
    assert third["scans"] == first["scans"] + 1
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # old volumes untouched


def test_process_pool_gives_the_same_tables(corpus: Path, tmp_path: Path) -> None:
    one = _run(corpus, tmp_path / "one")
    two = _run(corpus, tmp_path / "two", config=IngestConfig.from_dict({**_plain(CONFIG), "workers": 2}))
    for k in ("studies", "scans", "files", "quarantined_by_reason", "scans_by_kind"):
        assert one[k] == two[k]
    a, b = _tables(tmp_path / "one"), _tables(tmp_path / "two")
    pd.testing.assert_frame_equal(a["scans"].drop(columns="header"), b["scans"].drop(columns="header"))


def _plain(config: IngestConfig) -> dict[str, Any]:
    from hlip.config import to_dict

    return to_dict(config)


def test_a_pixel_less_slice_at_a_taken_position_costs_only_itself(
    tmp_path: Path, write_series: Callable[..., list[Path]]
) -> None:
    root = tmp_path / "raw"
    paths = write_series(root, n=8, RepetitionTime=500, EchoTime=10, shuffle=False)
    extra = pydicom.dcmread(paths[3])  # same position as a real slice, as an export glitch would have it
    del extra.PixelData
    extra.SOPInstanceUID = pydicom.uid.generate_uid()
    extra.InstanceNumber = 99
    extra.save_as(root / "extra")
    ingest(root, tmp_path / "out", config=CONFIG, key=KEY)
    tables = _tables(tmp_path / "out")
    assert len(tables["scans"]) == 1
    assert tables["scans"]["n_slices"].iloc[0] == 8
    files = tables["files"].set_index("path")
    assert files.loc["extra", "disposition"] == "quarantined"
    assert set(files.drop(index="extra")["disposition"]) == {"used"}
    assert list(tables["quarantine"]["reason"]) == ["missing_pixel_data"]


def test_paths_are_hashed_by_default_and_locate_finds_the_file(corpus: Path, tmp_path: Path) -> None:
    from hlip.data.ingest import locate

    config = IngestConfig.from_dict({"workers": 1, "series": {"min_slices": 6}})
    assert config.deid.hash_paths
    ingest(corpus, tmp_path / "out", config=config, key=KEY)
    tables = _tables(tmp_path / "out")
    raw_paths = {p.relative_to(corpus).as_posix() for p in corpus.rglob("*") if p.is_file()}
    assert not raw_paths & set(tables["files"]["path"])
    empty = tables["quarantine"].query("reason == 'empty_file'")["subject"].item()
    assert locate(corpus, empty, config, KEY) == ["exp1/empty"]
    assert locate(corpus, empty, config, HashKey("another-secret")) == []


def _tree_digest(root: Path) -> dict[str, str]:
    """Digest of every output file but the volatile incremental state in `.state/`; `summary.json` without the
    source location, which these tests vary on purpose."""
    digest = {k: v for k, v in sha_tree(root).items() if not k.startswith(".state/")}
    summary = json.loads((root / "summary.json").read_text())
    summary.pop("source")
    digest["summary.json"] = json.dumps(summary, sort_keys=True)
    return digest


def test_same_inputs_give_byte_identical_outputs_whatever_the_file_times(corpus: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy" / "raw"
    shutil.copytree(corpus, copy)  # new modification times, same content
    shutil.copyfile(corpus.parent / "reports.csv", copy.parent / "reports.csv")
    for path in copy.rglob("*"):
        os.utime(path, ns=(1, 1))
    _run(corpus, tmp_path / "a")
    _run(copy, tmp_path / "b")
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    assert (tmp_path / "a" / ".state" / "versions.parquet").is_file()


def test_a_file_changed_in_place_with_the_same_size_is_ingested_again(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(corpus, out)
    target = next(p for p in sorted(corpus.rglob("T1_*.dcm")) if p.name != "T1_0.dcm")
    ds = pydicom.dcmread(target)
    ds.PixelData = bytes(len(ds.PixelData))  # blank the slice: same size, other content
    ds.save_as(target)
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    again = _run(corpus, out)
    assert again["files_header_read"] == 1
    assert again["studies_processed"] == 1


@pytest.mark.integration
def test_a_dask_cluster_gives_the_same_tables_as_the_process_pool(corpus: Path, tmp_path: Path) -> None:
    pool = IngestConfig.from_dict({**to_dict(CONFIG), "workers": 2})
    dask = IngestConfig.from_dict({**to_dict(CONFIG), "workers": 2, "dask_scheduler": "local"})
    assert dask.fingerprint() == pool.fingerprint()  # where the work runs does not change what it produces
    _run(corpus, tmp_path / "pool", config=pool)
    summary = _run(corpus, tmp_path / "dask", config=dask)
    assert summary["studies_processed"] == 2
    assert _tree_digest(tmp_path / "pool") == _tree_digest(tmp_path / "dask")


def test_entries_that_cannot_be_ingested_are_quarantined_never_lost(
    tmp_path: Path, write_series: Callable[..., list[Path]]
) -> None:
    root = tmp_path / "raw"
    write_series(root / "good", n=6)
    (root / "dangling").symlink_to(root / "nowhere")
    (root / "loop_a").symlink_to(root / "loop_b")
    (root / "loop_b").symlink_to(root / "loop_a")
    os.mkfifo(root / "pipe")
    with open(os.fsencode(root) + b"/Quixote_\xe9.dcm", "wb") as fh:  # a patient name in Latin-1: not UTF-8
        fh.write(b"x")
    out = tmp_path / "out"
    hashed = CONFIG.from_dict({**_plain(CONFIG), "deid": {"hash_paths": True}})
    summary = ingest(root, out, config=hashed, key=KEY)
    t = _tables(out)
    assert summary["files_listed"] == len(t["files"]) == 11
    reasons = sorted(t["quarantine"].loc[t["quarantine"].level == "file", "reason"])
    assert reasons == ["broken_link", "invalid_name", "link_loop", "link_loop", "not_regular_file"]
    assert (t["files"].disposition == "used").sum() == 6
    blob = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    blob += b"".join(pd.read_parquet(p).to_csv().encode() for p in out.glob("*.parquet"))
    for raw in (b"Quixote_", b"dangling", b"loop_a", b"pipe"):
        assert raw not in blob


def test_invalid_identifier_values_never_reach_a_warning_a_log_or_stderr(
    tmp_path: Path,
    write_series: Callable[..., list[Path]],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # values that break their VR's rules: pydicom's read-time validation would quote each of them
    secrets = {"StudyInstanceUID": "1.2.826.9X.SECRETUID", "PatientBirthDate": "1980-SECRETDATE",
               "AccessionNumber": "ACC\\SECRETACC", "PatientAge": "SECRETAGE"}  # fmt: skip
    write_series(tmp_path / "raw", n=6, **{**PATIENT, **secrets})
    caplog.set_level("DEBUG")  # every logger, pydicom's included
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        summary = ingest(tmp_path / "raw", tmp_path / "out", config=CONFIG, key=KEY)
    assert summary["scans"] == 1  # the study is ingested, not quarantined for odd values
    out, err = capfd.readouterr()
    texts = [str(w.message) for w in warned] + [r.getMessage() for r in caplog.records] + [out, err]
    leaks = [t[:200] for t in texts if "SECRET" in t]
    assert not leaks, leaks
