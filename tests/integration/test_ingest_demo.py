"""Ingest a tiny demo corpus and check it against the generator's ground truth (never read by ingestion).

Asserts: every bad file is quarantined with a matching reason; series kinds agree with `ground_truth/series.csv`;
every input file is accounted for exactly once; no identifier from any header of the corpus (nor any folder name
that carries one) appears in any output byte. Paths are hashed in the tables (the default), so ground-truth
paths are mapped through the same keyed hash.
"""

from __future__ import annotations

import re
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


KEY = HashKey("demo")
# the tiny corpus doubles slice spacing, so its real series are shorter than the default 10-slice minimum
CONFIG = IngestConfig.from_dict({"workers": 1, "series": {"min_slices": 6}})


def _label(rel: str) -> str:
    return KEY.hash("path", rel, CONFIG.deid.hash_length)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from demo_corpus import DemoCorpusConfig, generate_corpus

    root = tmp_path_factory.mktemp("demo")
    generate_corpus(root, DemoCorpusConfig.tiny(n_train_studies=6, n_benchmark_studies=0))
    out = root.parent / "out"
    ingest(root / "train" / "dicom", out, reports=root / "train" / "reports.csv", config=CONFIG, key=KEY)
    return root, out


def test_bad_files_are_quarantined_with_matching_reasons(demo: tuple[Path, Path]) -> None:
    root, out = demo
    bad = pd.read_csv(root / "ground_truth" / "bad_files.csv").query("part == 'train'")
    files = pd.read_parquet(out / "files.parquet").set_index("path")
    misses, checked, kinds = [], 0, set()
    for path, kind in zip(bad["path"], bad["defect"], strict=True):
        row = files.loc[_label(str(path).removeprefix("train/dicom/"))]
        reason = row.ref.split(":")[-1]
        checked += 1
        kinds.add(kind)
        if row.disposition != "quarantined" or reason not in DEFECT_REASONS[kind]:
            misses.append((path, kind, row.disposition, reason))
    assert not misses
    assert checked == len(bad) > 0
    assert kinds == set(DEFECT_REASONS)  # every defect kind was exercised


def test_every_file_accounted_for_once_and_series_kinds_agree(demo: tuple[Path, Path]) -> None:
    root, out = demo
    files = pd.read_parquet(out / "files.parquet")
    listed = sorted(_label(p.relative_to(root / "train" / "dicom").as_posix())
                    for p in (root / "train" / "dicom").rglob("*") if p.is_file())  # fmt: skip
    assert sorted(files.path) == listed
    scans = pd.read_parquet(out / "scans.parquet")
    quarantine = pd.read_parquet(out / "quarantine.parquet").set_index("entry_id")
    assert set(files.loc[files.disposition == "used", "ref"]) <= set(scans.series_key)
    assert set(files.loc[files.disposition == "quarantined", "ref"]) <= set(quarantine.index)
    truth = pd.read_csv(root / "ground_truth" / "series.csv").query("part == 'train' and defect.isna()")
    predicted = dict(zip(scans.series_key, scans.kind, strict=False))
    junk = {q.series_key: q.reason for q in quarantine.itertuples() if q.level == "series"}
    right = total = 0
    for uid, kind in zip(truth["series_instance_uid"], truth["kind"], strict=True):
        series_key = KEY.hash("series", str(uid))
        total += 1
        right += predicted.get(series_key) == kind or junk.get(series_key) in JUNK_REASONS.get(kind, set())
    assert total == len(truth) > 0
    assert right == total, f"series classification: {right}/{total} right"


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
    # folder names of the export carry patient names and MRNs: none may reach an output either
    secrets |= {part for p in (root / "train" / "dicom").rglob("*") for part in p.relative_to(root).parts[2:-1]
                if any(c.isdigit() for c in part) and len(part) >= 8}  # fmt: skip
    text = blob.decode("latin-1")
    # Digit-only values under 6 characters (a StudyID "1000") cannot be told from image numbers (b-value 1000)
    # in a byte search; their removal is asserted field by field in tests/unit/hlip/data/test_deid.py.
    # Longer numbers are matched as whole tokens, since digit runs also occur inside floats and hashes.
    leaked = sorted(
        s for s in secrets
        if not (s.isdigit() and len(s) < 6)
        and (re.search(rf"(?<![\w.]){re.escape(s)}(?![\w.])", text) if s.isdigit() else s in text)
    )  # fmt: skip
    assert not leaked
