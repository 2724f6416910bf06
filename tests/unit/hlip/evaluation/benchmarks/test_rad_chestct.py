"""RAD-ChestCT adapter on a tiny download in RAD-ChestCT's layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlip.data.preprocess import PreprocessConfig
from hlip.evaluation.benchmarks.common import BenchmarkDataError
from hlip.evaluation.benchmarks.rad_chestct import ABNORMALITY_TO_CLASS, CLASSES, RadChestCTBenchmark

LABELS = "imgtest_Abnormality_and_Location_Labels.csv"


@pytest.fixture
def rad(tmp_path: Path) -> Path:
    root = tmp_path / "rad_chestct"
    (root / "part1").mkdir(parents=True)
    for name in ("tst001", "tst002"):
        np.savez_compressed(root / "part1" / f"{name}.npz", ct=np.full((10, 16, 16), -400, dtype=np.int16))
    columns = {f"{a}*{loc}": [0, 0, 0] for a in ABNORMALITY_TO_CLASS for loc in ("left_lung", "right_lung")}
    columns["calcification*aorta"] = [0, 0, 0]
    columns["calcification*coronary_artery"] = [0, 1, 0]  # only the coronary location of tst002
    columns["nodule*right_lung"] = [1, 0, 0]  # tst001
    columns["arthritis*spine"] = [1, 1, 1]  # an abnormality not evaluated
    table = pd.DataFrame({"NoteAcc_DEID": ["tst001", "tst002", "tst003"], **columns})
    table.to_csv(root / LABELS, index=False)
    return root


def test_locations_are_merged_and_calcification_is_one_class(rad: Path, small_spec: PreprocessConfig) -> None:
    bench = RadChestCTBenchmark(rad, small_spec)
    assert bench.classes == CLASSES
    assert "Calcification" in CLASSES
    assert len(CLASSES) == 14
    labels = bench.labels()
    assert labels.index.tolist() == ["tst001", "tst002"]
    positives = {sid: sorted(labels.columns[labels.loc[sid] == 1]) for sid in labels.index}
    assert positives == {"tst001": ["Lung nodule"], "tst002": ["Calcification"]}
    assert bench.excluded().to_dict("records") == [{"study_id": "tst003", "reason": "missing_volume"}]


def test_load_windows_hu_as_hlip_chest(rad: Path, small_spec: PreprocessConfig) -> None:
    volume = RadChestCTBenchmark(rad, small_spec).load("tst001")
    assert volume.shape == (1, 8, 16, 16)
    assert volume.dtype == np.float32
    assert float(volume[0, 4, 8, 8]) == pytest.approx(0.5, abs=0.01)


def test_bad_inputs_are_named(rad: Path, small_spec: PreprocessConfig, tmp_path: Path) -> None:
    table = pd.read_csv(rad / LABELS)
    table.drop(columns=[c for c in table.columns if c.startswith("hernia*")]).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(BenchmarkDataError, match=r"x\.csv: no '<abnormality>\*<location>' columns for \['hernia'\]"):
        RadChestCTBenchmark(rad, small_spec, labels_csv=tmp_path / "x.csv")
    np.savez(rad / "part1" / "tst001.npz", volume=np.zeros((4, 4, 4)))
    with pytest.raises(BenchmarkDataError, match=r"tst001\.npz: no 'ct' array"):
        RadChestCTBenchmark(rad, small_spec).load("tst001")
