from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.errors import InvalidDicomError

from demo_corpus import DEFECT_KINDS, SERIES_KINDS, CorpusSummary, DemoCorpusConfig, generate_corpus
from demo_corpus.corpus import MANIFEST, check_output
from demo_corpus.plan import CorpusPlan
from testkit.files import sha_tree

Corpus = tuple[Path, CorpusSummary]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _dicom_files(root: Path) -> list[Path]:
    return sorted(p for part in ("train", "benchmark") for p in (root / part / "dicom").rglob("*") if p.is_file())


def test_counts_match_config_and_ground_truth(tiny_corpus: Corpus, tiny_config: DemoCorpusConfig) -> None:
    root, summary = tiny_corpus
    train = _rows(root / "ground_truth" / "train_labels.csv")
    bench = _rows(root / "ground_truth" / "benchmark_labels.csv")
    assert len(train) == tiny_config.n_train_studies
    assert len(bench) == tiny_config.n_benchmark_studies
    assert {r["label"] for r in bench} == {"normal", "stroke", "glioma", "meningioma", "metastasis"}
    assert not {r["accession_number"] for r in train} & {r["accession_number"] for r in bench}
    # RIS anomalies: one study without report, one empty report, one report matching no study
    reports = _rows(root / "train" / "reports.csv")
    labelled = {r["accession_number"] for r in train}
    reported = {r["accession_number"] for r in reports}
    assert len(labelled - reported) == 1
    assert len(reported - labelled) == 1
    assert sum(not r["report_text"].strip() for r in reports) == 1
    assert Counter(r["report_status"] for r in train) == {"ok": len(train) - 2, "missing": 1, "empty": 1}
    assert {r["accession_number"] for r in _rows(root / "benchmark" / "reports.csv")} == {
        r["accession_number"] for r in bench
    }
    series = [r for r in _rows(root / "ground_truth" / "series.csv") if not r["defect"]]
    per_study = Counter(r["study_instance_uid"] for r in series)
    assert set(per_study) == {r["study_instance_uid"] for r in train + bench}
    assert all(2 <= n <= 10 for n in per_study.values())
    assert summary.files == len(_dicom_files(root))
    assert summary.studies == {"train": len(train), "benchmark": len(bench)}
    assert json.loads((root / MANIFEST).read_text())["status"] == "complete"


def test_series_kinds_cover_every_kind_and_files_match(tiny_corpus: Corpus) -> None:
    root, _ = tiny_corpus
    series = [r for r in _rows(root / "ground_truth" / "series.csv") if not r["defect"]]
    assert {r["kind"] for r in series} == set(SERIES_KINDS)
    assert {r["plane"] for r in series} >= {"axial", "sagittal", "mixed"}
    assert any(r["multiframe"] == "1" for r in series)
    assert any(r["multiframe"] == "0" and r["kind"] == "t2" for r in series)
    bad = {r["path"] for r in _rows(root / "ground_truth" / "bad_files.csv")}
    uids = Counter(
        pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID
        for p in _dicom_files(root)
        if str(p.relative_to(root)) not in bad
    )
    assert uids == {r["series_instance_uid"]: int(r["n_files"]) for r in series}


def test_junk_series_look_like_junk(tiny_corpus: Corpus) -> None:
    root, _ = tiny_corpus
    series = _rows(root / "ground_truth" / "series.csv")
    bad = {r["path"] for r in _rows(root / "ground_truth" / "bad_files.csv")}

    def datasets(kind: str) -> list[pydicom.Dataset]:
        row = next(r for r in series if r["kind"] == kind)
        files = [p for p in sorted((root / row["folder"]).iterdir()) if str(p.relative_to(root)) not in bad]
        return [d for d in map(pydicom.dcmread, files) if d.SeriesInstanceUID == row["series_instance_uid"]]

    localizer = datasets("localizer")
    assert len({tuple(np.round(np.asarray(d.ImageOrientationPatient, float))) for d in localizer}) == 3
    capture = datasets("secondary_capture")[0]
    assert capture.SamplesPerPixel == 3
    assert capture.pixel_array.shape[-1] == 3
    assert capture.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert capture.BurnedInAnnotation == "YES"
    report = datasets("sr")[0]
    assert "PixelData" not in report
    assert report.ContentSequence[0].ValueType == "TEXT"


def test_bad_files_are_present_listed_and_bad(tiny_corpus: Corpus) -> None:
    root, summary = tiny_corpus
    rows = _rows(root / "ground_truth" / "bad_files.csv")
    for part in ("train", "benchmark"):
        assert {r["defect"] for r in rows if r["part"] == part} == set(DEFECT_KINDS)
    assert sum(summary.bad_files.values()) == len(rows)
    series = {r["series_instance_uid"]: r for r in _rows(root / "ground_truth" / "series.csv")}
    for r in rows:
        path = root / r["path"]
        data = path.read_bytes()
        if r["defect"] == "empty":
            assert data == b""
        elif r["defect"] == "not_dicom":
            with pytest.raises(InvalidDicomError):
                pydicom.dcmread(path)
        elif r["defect"] == "duplicate":
            assert data == (root / r["source_path"]).read_bytes()
            assert r["path"] != r["source_path"]
        elif r["defect"] == "truncated":
            assert len(data) < len((root / r["source_path"]).read_bytes())
            with pytest.raises(Exception):  # noqa: B017, PT011 - pydicom raises several kinds on a cut file
                pydicom.dcmread(path).pixel_array  # noqa: B018
        elif r["defect"] == "no_pixel_data":
            ds = pydicom.dcmread(path)
            assert "PixelData" not in ds
            assert ds.SeriesInstanceUID == r["series_instance_uid"]
        elif r["defect"] == "inconsistent_series":
            ds = pydicom.dcmread(path)
            good = series[r["series_instance_uid"]]
            matrix = (ds.Rows, ds.Columns) != (int(good["rows"]), int(good["columns"]))
            assert matrix or list(ds.ImageOrientationPatient)[:3] != [1.0, 0.0, 0.0]
        elif r["defect"] == "short_series":
            assert int(series[r["series_instance_uid"]]["n_files"]) <= 2


def test_every_good_file_reads_and_geometry_is_consistent(tiny_corpus: Corpus) -> None:
    root, _ = tiny_corpus
    bad = {r["path"] for r in _rows(root / "ground_truth" / "bad_files.csv")}
    kinds = {r["series_instance_uid"]: r["kind"] for r in _rows(root / "ground_truth" / "series.csv")}
    positions: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    sop_uids: Counter[str] = Counter()
    for path in _dicom_files(root):
        if str(path.relative_to(root)) in bad:
            continue
        ds = pydicom.dcmread(path)
        sop_uids[ds.SOPInstanceUID] += 1
        if "PixelData" in ds:
            assert ds.pixel_array.size > 0
        if kinds[ds.SeriesInstanceUID] in ("localizer", "sr", "secondary_capture"):
            continue
        if "PerFrameFunctionalGroupsSequence" in ds:
            iop = ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient
            for frame in ds.PerFrameFunctionalGroupsSequence:
                ipp = frame.PlanePositionSequence[0].ImagePositionPatient
                positions[ds.SeriesInstanceUID].append((np.asarray(iop, float), np.asarray(ipp, float)))
        else:
            positions[ds.SeriesInstanceUID].append(
                (np.asarray(ds.ImageOrientationPatient, float), np.asarray(ds.ImagePositionPatient, float))
            )
    assert max(sop_uids.values()) == 1
    checked = 0
    for items in positions.values():
        normal = np.cross(items[0][0][:3], items[0][0][3:])
        steps = np.diff(np.array([ipp for _, ipp in items]), axis=0)
        steps = steps[np.linalg.norm(steps, axis=1) > 1e-3]  # DWI b-values repeat positions
        if len(steps):
            cosine = np.abs(steps @ normal) / np.linalg.norm(steps, axis=1)
            assert cosine.min() > 0.999
            checked += 1
    assert checked >= 20


def test_stroke_is_dwi_bright_and_adc_dark_in_the_files(tiny_corpus: Corpus, tiny_plan: CorpusPlan) -> None:
    root, _ = tiny_corpus
    series = _rows(root / "ground_truth" / "series.csv")
    study = next(s for s in tiny_plan.studies if s.label == "stroke" and {"dwi", "adc"} <= s.kinds)
    centre = study.pose.to_patient(np.asarray(study.findings[0].blobs[0].centre))
    ratios = {}
    for kind in ("dwi", "adc"):
        row = next(r for r in series if r["study_instance_uid"] == study.uid and r["kind"] == kind and not r["defect"])
        image, position, iop, spacing = _slice_through(root, row, centre)
        r, c = _pixel_of(centre, position, iop, spacing)
        lesion = float(np.median(image[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2]))
        head = image[image > 0]
        brain = float(np.median(head[head > np.percentile(head, 30)]))
        ratios[kind] = lesion / brain
    assert ratios["dwi"] > 1.4, ratios
    assert ratios["adc"] < 0.75, ratios


def _slice_through(
    root: Path, row: dict[str, str], point: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The b=1000 (or only) slice of a series nearest a patient point, with its geometry."""
    slices = []
    for path in sorted((root / row["folder"]).iterdir()):
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError):
            continue
        if ds.get("SeriesInstanceUID") != row["series_instance_uid"] or "PixelData" not in ds:
            continue
        if "PerFrameFunctionalGroupsSequence" in ds:
            shared = ds.SharedFunctionalGroupsSequence[0]
            iop = np.asarray(shared.PlaneOrientationSequence[0].ImageOrientationPatient, float)
            spacing = np.asarray(shared.PixelMeasuresSequence[0].PixelSpacing, float)
            for frame, item in zip(ds.pixel_array, ds.PerFrameFunctionalGroupsSequence, strict=True):
                b = float(item.MRDiffusionSequence[0].DiffusionBValue) if "MRDiffusionSequence" in item else None
                slices.append(
                    (frame, np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, float), iop, spacing, b)
                )
        else:
            b = float(ds.DiffusionBValue) if "DiffusionBValue" in ds else None
            slices.append(
                (
                    ds.pixel_array,
                    np.asarray(ds.ImagePositionPatient, float),
                    np.asarray(ds.ImageOrientationPatient, float),
                    np.asarray(ds.PixelSpacing, float),
                    b,
                )
            )
    top = max((s[4] for s in slices if s[4] is not None), default=None)
    slices = [s for s in slices if s[4] == top]
    normal = np.cross(slices[0][2][:3], slices[0][2][3:])
    best = min(slices, key=lambda s: abs(float((point - s[1]) @ normal)))
    return best[0].astype(np.float32), best[1], best[2], best[3]


def _pixel_of(point: np.ndarray, position: np.ndarray, iop: np.ndarray, spacing: np.ndarray) -> tuple[int, int]:
    offset = point - position
    return round(float(offset @ iop[3:]) / spacing[0]), round(float(offset @ iop[:3]) / spacing[1])


def test_generation_is_byte_for_byte_deterministic(
    tmp_path: Path, tiny_corpus: Corpus, tiny_config: DemoCorpusConfig
) -> None:
    root, _ = tiny_corpus
    again = tmp_path / "again"
    generate_corpus(again, tiny_config, workers=2)
    assert sha_tree(again) == sha_tree(root)


def test_refuses_folders_it_did_not_write(tmp_path: Path, tiny_corpus: Corpus, tiny_config: DemoCorpusConfig) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_corpus(foreign, tiny_config, workers=1)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    root, _ = tiny_corpus
    check_output(root, tiny_config)  # an earlier output of the same config is accepted
    with pytest.raises(FileExistsError):
        check_output(root, DemoCorpusConfig.tiny(seed=12))


@pytest.mark.slow
def test_default_corpus_fits_its_budget(tmp_path: Path) -> None:
    """The embedded corpus: 1,300 studies, at most ~95k files and ~1.35 GB, every kind and defect."""
    summary = generate_corpus(tmp_path / "data", DemoCorpusConfig(), workers=2)
    assert summary.studies == {"train": 1100, "benchmark": 200}
    assert summary.files <= 95_000
    assert summary.bytes <= 1.35e9
    assert set(summary.series_kinds) == set(SERIES_KINDS)
    assert set(summary.bad_files) == set(DEFECT_KINDS)
    assert 0.005 < sum(summary.bad_files.values()) / summary.files < 0.03
