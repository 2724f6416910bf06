"""Ingest a tiny demo corpus and check it against the generator's ground truth (never read by ingestion).

Skipped until `hlip.data.demo.generate_corpus` exists. Asserts: every bad file is quarantined with a matching
reason; series kinds agree with `ground_truth/series.csv` (accuracy printed); every input file is accounted for
exactly once; no identifier from any header of the corpus appears in any output byte.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from hlip.data.config import IngestConfig
from hlip.data.deid import HashKey
from hlip.data.ingest import ingest
from hlip.data.scrub import identifiers_from_dataset

pytestmark = pytest.mark.integration

# ground-truth defect kind -> acceptable quarantine reasons
DEFECT_REASONS = {
    "truncated": {"truncated", "unreadable"},
    "not_dicom": {"not_dicom"},
    "empty": {"empty_file"},
    "no_pixel_data": {"missing_pixel_data"},
    "inconsistent_series": {"inconsistent_slice"},
    "duplicate": {"duplicate_file"},
    "short_series": {"too_short"},
}
JUNK_REASONS = {"localizer": {"localizer"}, "secondary_capture": {"secondary_capture", "derived_screenshot"},
                "sr": {"structured_report", "dose_report"}}  # fmt: skip


def _column(frame: pd.DataFrame, *words: str) -> str:
    return next(c for c in frame.columns if any(w in c.lower() for w in words))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    module = importlib.import_module("hlip.data.demo")
    if not hasattr(module, "generate_corpus"):
        pytest.skip("hlip.data.demo.generate_corpus is not there yet")
    root = tmp_path_factory.mktemp("demo")
    module.generate_corpus(root, module.DemoCorpusConfig.tiny(n_train_studies=6, n_benchmark_studies=0))
    out = root.parent / "out"
    config = IngestConfig.from_dict({"workers": 1})
    ingest(root / "train" / "dicom", out, reports=root / "train" / "reports.csv", config=config, key=HashKey("demo"))
    return root, out


def test_bad_files_are_quarantined_with_matching_reasons(demo: tuple[Path, Path]) -> None:
    root, out = demo
    bad = pd.read_csv(root / "ground_truth" / "bad_files.csv")
    files = pd.read_parquet(out / "files.parquet").set_index("path")
    path_col, kind_col = _column(bad, "path"), _column(bad, "kind", "defect")
    misses = []
    for path, kind in zip(bad[path_col], bad[kind_col], strict=True):
        rel = str(path).split("train/dicom/", 1)[-1]
        if rel not in files.index:
            continue  # a benchmark-part file
        row = files.loc[rel]
        reason = row.ref.split(":")[-1]
        if row.disposition != "quarantined" or reason not in DEFECT_REASONS.get(kind, {kind}):
            misses.append((rel, kind, row.disposition, reason))
    assert not misses


def test_every_file_accounted_for_once_and_series_kinds_agree(demo: tuple[Path, Path]) -> None:
    root, out = demo
    files = pd.read_parquet(out / "files.parquet")
    listed = sorted(p.relative_to(root / "train" / "dicom").as_posix() for p in (root / "train" / "dicom").rglob("*")
                    if p.is_file())  # fmt: skip
    assert sorted(files.path) == listed
    scans = pd.read_parquet(out / "scans.parquet")
    quarantine = pd.read_parquet(out / "quarantine.parquet").set_index("entry_id")
    assert set(files.loc[files.disposition == "used", "ref"]) <= set(scans.series_key)
    assert set(files.loc[files.disposition == "quarantined", "ref"]) <= set(quarantine.index)
    truth = pd.read_csv(root / "ground_truth" / "series.csv")
    kind_col = _column(truth, "kind")
    uid_col = next((c for c in truth.columns if "uid" in c.lower()), None)
    if uid_col is None:
        pytest.skip(f"series.csv has no UID column to join on: {list(truth.columns)}")
    key = HashKey("demo")
    predicted = dict(zip(scans.series_key, scans.kind, strict=False))
    junk = {q.series_key: q.reason for q in quarantine.itertuples() if q.level == "series"}
    right = total = 0
    for uid, kind in zip(truth[uid_col], truth[kind_col], strict=True):
        series_key = key.hash("series", str(uid))
        if series_key not in predicted and series_key not in junk:
            continue  # a series of the benchmark part, or one whose files were all bad
        total += 1
        right += predicted.get(series_key) == kind or junk.get(series_key) in JUNK_REASONS.get(kind, set())
    print(f"series classification accuracy: {right}/{total}")
    assert total
    assert right / total >= 0.95


def test_no_header_identifier_reaches_any_output(demo: tuple[Path, Path]) -> None:
    root, out = demo
    secrets: set[str] = set()
    for path in (root / "train" / "dicom").rglob("*"):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        secrets |= {v for v in identifiers_from_dataset(ds).all_values() if len(v) >= 4}
        secrets |= {str(ds.get(k)) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID") if k in ds}
    blob = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    # parquet pages are compressed: search the decoded tables too
    blob += b"".join(pd.read_parquet(p).to_csv().encode() for p in out.glob("*.parquet"))
    leaked = sorted(s for s in secrets if s.encode() in blob)
    assert not leaked
