"""CT-RATE adapter on a tiny validation split in CT-RATE's layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlip.data.preprocess import PreprocessConfig
from hlip.evaluation.benchmarks.common import BenchmarkDataError
from hlip.evaluation.benchmarks.ct_rate import ALL_FINDINGS, HLIP_CLASSES, CTRateBenchmark

NAMES = ("valid_1_a_1.nii.gz", "valid_1_a_2.nii.gz", "valid_2_a_1.nii.gz", "valid_3_a_1.nii.gz")


@pytest.fixture
def ct_rate(tmp_path: Path, write_nifti: Callable[..., Path]) -> Path:
    """Three volumes on disk (valid_3 has labels but no file); raw values = HU + 1024; header zooms are 1 mm."""
    root = tmp_path / "dataset"
    for name in NAMES[:3]:
        stem = name[: -len(".nii.gz")]
        raw = np.full((16, 16, 10), 1024 - 400, dtype=np.int16)  # -400 HU: the chest window's level
        write_nifti(root / "valid" / stem.rsplit("_", 2)[0] / stem.rsplit("_", 1)[0] / name, raw)
    meta = pd.DataFrame(
        {
            "VolumeName": NAMES,
            "RescaleSlope": 1.0,
            "RescaleIntercept": -1024.0,
            "XYSpacing": "[0.75, 0.75]",
            "ZSpacing": 1.5,
        }
    )
    (root / "metadata").mkdir()
    meta.to_csv(root / "metadata" / "validation_metadata.csv", index=False)
    labels = pd.DataFrame(0, index=range(len(NAMES)), columns=list(ALL_FINDINGS))
    labels.insert(0, "VolumeName", NAMES)
    labels.loc[0, "Emphysema"] = 1
    labels.loc[1, "Cardiomegaly"] = 1
    labels.loc[2, "Medical material"] = 1
    (root / "multi_abnormality_labels").mkdir()
    labels.to_csv(root / "multi_abnormality_labels" / "valid_predicted_labels.csv", index=False)
    reports = pd.DataFrame({"VolumeName": NAMES, "Findings_EN": ["lungs f", "x", "y", "z"], "Impressions_EN": "ok"})
    (root / "radiology_text_reports").mkdir()
    reports.to_csv(root / "radiology_text_reports" / "validation_reports.csv", index=False)
    return root


def test_volumes_are_studies_with_hlip_classes(ct_rate: Path, small_spec: PreprocessConfig) -> None:
    bench = CTRateBenchmark(ct_rate, small_spec)
    assert bench.study_ids() == ["valid_1_a_1", "valid_1_a_2", "valid_2_a_1"]
    assert bench.classes == HLIP_CLASSES
    labels = bench.labels()
    assert labels.loc["valid_1_a_1", "Emphysema"] == 1
    assert int(labels.to_numpy().sum()) == 2  # "Medical material" is not among HLIP's 16
    assert bench.excluded().to_dict("records") == [{"study_id": "valid_3_a_1", "reason": "missing_volume"}]
    reports = bench.reports()
    assert reports is not None
    assert reports["valid_1_a_1"] == "Findings: lungs f\nImpression: ok"


def test_study_grouping_takes_the_max(ct_rate: Path, small_spec: PreprocessConfig) -> None:
    bench = CTRateBenchmark(ct_rate, small_spec, group="study", classes=ALL_FINDINGS)
    assert bench.study_ids() == ["valid_1_a", "valid_2_a"]
    labels = bench.labels()
    assert labels.loc["valid_1_a", ["Emphysema", "Cardiomegaly"]].tolist() == [1, 1]
    assert labels.loc["valid_2_a", "Medical material"] == 1
    assert bench.load("valid_1_a").shape == (2, 8, 16, 16)  # two reconstructions x one chest window


def test_rescale_and_metadata_spacing_are_applied(ct_rate: Path, small_spec: PreprocessConfig) -> None:
    bench = CTRateBenchmark(ct_rate, small_spec)
    volume = bench.read_volume("valid_2_a_1.nii.gz")
    assert float(volume.array.mean()) == -400.0
    assert volume.spacing == pytest.approx((1.5, 0.75, 0.75))
    loaded = bench.load("valid_2_a_1")
    assert loaded.shape == (1, 8, 16, 16)
    # -400 HU is the centre of HLIP's chest window [-1150, 350]
    assert float(loaded[0, 4, 8, 8]) == pytest.approx(0.5, abs=0.01)


def test_missing_metadata_column_is_named(ct_rate: Path, small_spec: PreprocessConfig) -> None:
    path = ct_rate / "metadata" / "validation_metadata.csv"
    pd.read_csv(path).drop(columns="ZSpacing").to_csv(path, index=False)
    with pytest.raises(BenchmarkDataError, match=r"validation_metadata\.csv lacks column\(s\) \['ZSpacing'\]"):
        CTRateBenchmark(ct_rate, small_spec)
