"""The demo adapter on a tiny ingest part written by the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlip.data.contract import ContractError, StudyContract
from hlip.data.deid import HashKey
from hlip.data.preprocess import PreprocessConfig
from hlip.data.sampling import ScanPolicy
from hlip.evaluation.benchmarks.common import BenchmarkDataError, MissingBenchmarkFileError
from hlip.evaluation.benchmarks.demo import DemoBenchmark

KEY = HashKey("test-secret")
SHAPE = (4, 6, 6)
CONTRACT = StudyContract(PreprocessConfig(size=SHAPE))


def _sk(uid: str) -> str:
    return KEY.hash("study", uid, 20)


@pytest.fixture
def part(tmp_path: Path) -> tuple[Path, Path]:
    """Four labelled studies (one failed, one without scans), one unlabelled study, one label never ingested."""
    root = tmp_path / "benchmark"
    uids = {"1.1": "stroke", "1.2": "glioma", "1.3": "normal", "1.4": "metastasis", "9.9": "meningioma"}
    studies = [("1.1", "ok"), ("1.2", "ok"), ("1.3", "failed"), ("1.4", "ok"), ("7.7", "ok")]
    root.mkdir(parents=True)
    pd.DataFrame({"study_key": [_sk(u) for u, _ in studies], "status": [s for _, s in studies]}).to_parquet(
        root / "studies.parquet"
    )
    scans = []
    # study 1.1: three scans written out of order, with a distinct constant value each
    for value, (kind, plane, scan_key) in zip(
        (30, 10, 20), [("t2", "axial", "c"), ("flair", "axial", "b"), ("t1", "axial", "a")], strict=True
    ):
        scans.append((_sk("1.1"), kind, plane, scan_key, value))
    scans.append((_sk("1.2"), "t1", "axial", "d", 255))
    scans.append((_sk("1.3"), "t1", "axial", "e", 1))
    scans.append((_sk("7.7"), "t1", "axial", "f", 2))
    rows = []
    for study_key, kind, plane, scan_key, value in scans:
        rel = f"volumes/{study_key}/{scan_key}.npy"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        np.save(root / rel, np.full(SHAPE, value, np.uint8))
        rows.append({"study_key": study_key, "kind": kind, "plane": plane, "scan_key": scan_key, "path": rel})
    pd.DataFrame(rows).to_parquet(root / "scans.parquet")
    pd.DataFrame({"study_key": [_sk("1.1"), _sk("1.1"), _sk("7.7")], "text": ["a", "b", "c"]}).to_parquet(
        root / "reports.parquet"
    )
    labels = tmp_path / "labels.csv"
    pd.DataFrame(
        {"study_instance_uid": list(uids), "accession_number": ["x"] * len(uids), "label": list(uids.values())}
    ).to_csv(labels, index=False)
    return root, labels


def test_labels_are_one_hot_over_included_studies(part: tuple[Path, Path]) -> None:
    bench = DemoBenchmark(part[0], part[1], key=KEY, contract=CONTRACT)
    assert bench.study_ids() == sorted([_sk("1.1"), _sk("1.2")])
    labels = bench.labels()
    assert list(labels.columns) == ["normal", "stroke", "glioma", "meningioma", "metastasis"]
    assert labels.loc[_sk("1.1")].tolist() == [0, 1, 0, 0, 0]
    assert labels.loc[_sk("1.2")].tolist() == [0, 0, 1, 0, 0]
    assert (labels.sum(axis=1) == 1).all()


def test_excluded_studies_carry_their_reason(part: tuple[Path, Path]) -> None:
    reasons = dict(DemoBenchmark(part[0], part[1], key=KEY, contract=CONTRACT).excluded().itertuples(index=False))
    assert reasons == {
        _sk("1.3"): "status_failed",
        _sk("1.4"): "no_scans",
        _sk("7.7"): "no_reference_label",
        _sk("9.9"): "not_ingested",
    }


def test_load_orders_scans_as_training_does_and_applies_the_contract(part: tuple[Path, Path]) -> None:
    bench = DemoBenchmark(part[0], part[1], key=KEY, contract=CONTRACT)
    volume = bench.load(_sk("1.1"))
    assert volume.dtype == np.float32
    assert volume.shape == (3, *SHAPE)
    # training's canonical kind order (t1, t2, flair), not the alphabetical one (flair, t1, t2)
    np.testing.assert_allclose(volume[:, 0, 0, 0], np.array([20, 30, 10]) / 255.0, rtol=1e-6)
    capped = DemoBenchmark(
        part[0], part[1], key=KEY, contract=StudyContract(CONTRACT.preprocess, ScanPolicy(max_scans=2))
    )
    assert capped.load(_sk("1.1")).shape == (2, *SHAPE)
    no_t1 = StudyContract(CONTRACT.preprocess, ScanPolicy(kinds=("t2", "flair")))
    filtered = DemoBenchmark(part[0], part[1], key=KEY, contract=no_t1)
    np.testing.assert_allclose(filtered.load(_sk("1.1"))[:, 0, 0, 0], np.array([30, 10]) / 255.0, rtol=1e-6)
    assert ("" + _sk("1.2"), "no_scans") in set(filtered.excluded().itertuples(index=False))  # only a t1 scan
    assert float(bench.load(_sk("1.2")).max()) == 1.0
    with pytest.raises(KeyError, match="not in the demo benchmark"):
        bench.load(_sk("7.7"))


def test_reports_join_texts_of_included_studies(part: tuple[Path, Path]) -> None:
    reports = DemoBenchmark(part[0], part[1], key=KEY, contract=CONTRACT).reports()
    assert reports is not None
    assert reports.to_dict() == {_sk("1.1"): "a\n\nb"}


def test_a_spec_mismatch_is_reported(part: tuple[Path, Path]) -> None:
    bench = DemoBenchmark(part[0], part[1], key=KEY, contract=StudyContract(PreprocessConfig(size=(32, 64, 64))))
    with pytest.raises(BenchmarkDataError, match="differs from the contract"):
        bench.load(_sk("1.2"))


def test_a_part_ingested_with_other_preprocessing_is_refused(part: tuple[Path, Path]) -> None:
    import json

    (part[0] / "summary.json").write_text(json.dumps({"preprocess": {"size": list(SHAPE), "mode": "nearest"}}))
    with pytest.raises(ContractError, match=r"mode: model 'bilinear' vs the ingested part .* 'nearest'"):
        DemoBenchmark(part[0], part[1], key=KEY, contract=CONTRACT)


def test_missing_inputs_are_named(part: tuple[Path, Path], tmp_path: Path) -> None:
    root, labels = part
    with pytest.raises(MissingBenchmarkFileError, match=r"nowhere\.csv"):
        DemoBenchmark(root, tmp_path / "nowhere.csv", key=KEY, contract=CONTRACT)
    pd.read_csv(labels).drop(columns="label").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(BenchmarkDataError, match=r"bad\.csv lacks column\(s\) \['label'\]"):
        DemoBenchmark(root, tmp_path / "bad.csv", key=KEY, contract=CONTRACT)
    pd.read_csv(labels).assign(label="tumour").to_csv(tmp_path / "odd.csv", index=False)
    with pytest.raises(BenchmarkDataError, match="unknown label"):
        DemoBenchmark(root, tmp_path / "odd.csv", key=KEY, contract=CONTRACT)
    (root / "scans.parquet").unlink()
    with pytest.raises(MissingBenchmarkFileError, match=r"scans\.parquet"):
        DemoBenchmark(root, labels, key=KEY, contract=CONTRACT)


def test_a_benchmark_with_no_study_says_why(part: tuple[Path, Path]) -> None:
    """Ingested with one key, opened with another: no label matches; the error names the reasons and the cause."""
    from hlip.evaluation.embeddings import compute_embeddings

    bench = DemoBenchmark(part[0], part[1], key=HashKey("another-secret"), contract=CONTRACT)
    assert bench.study_ids() == []
    with pytest.raises(ValueError, match="serves no studies: left out 5 no_reference_label, 5 not_ingested") as err:
        compute_embeddings(None, bench)  # type: ignore[arg-type]  # fails before the model is touched
    assert "HLIP_DEID_KEY" in str(err.value)
