"""Pub-Brain-5 adapter on a tiny assembly in HLIP's layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlip.data.contract import StudyContract
from hlip.data.preprocess import PreprocessConfig
from hlip.data.sampling import ScanPolicy
from hlip.evaluation.benchmarks.common import BenchmarkDataError
from hlip.evaluation.benchmarks.pub_brain_5 import CLASSES, PubBrain5Benchmark

HEADER = ["study", "Normal", "Stroke", "Glioma", "Meningioma", "Metastasis"]


@pytest.fixture
def pub(tmp_path: Path, write_nifti: Callable[..., Path]) -> Path:
    root = tmp_path / "pub_brain_5"
    rng = np.random.default_rng(0)
    mets = root / "nyu_mets" / "NYU_Mets_1_2"
    glioma = root / "brats23" / "test" / "adult_glioma" / "BraTS-GLI-00001-000"
    for folder, names in ((mets, ("t1c.nii.gz", "flair.nii.gz")), (glioma, ("BraTS-GLI-00001-000-t2w.nii.gz",))):
        for name in names:
            write_nifti(folder / name, rng.uniform(0, 500, (16, 16, 10)).astype(np.float32))
    write_nifti(glioma / "BraTS-GLI-00001-000-seg.nii.gz", np.ones((16, 16, 10), np.uint8))
    rows = [
        ["/data/pub_brain_5/nyu_mets/NYU_Mets_1_2", 0, 0, 0, 0, 1],
        ["/data/pub_brain_5/brats23/test/adult_glioma/BraTS-GLI-00001-000", 0, 0, 1, 0, 0],
        ["/data/pub_brain_5/open_bhb/sub-1", 1, 0, 0, 0, 0],
    ]
    pd.DataFrame(rows, columns=HEADER).to_csv(root / "pub_brain_5.csv", index=False)
    return root


def test_hlip_table_maps_onto_study_folders(pub: Path, small_spec: PreprocessConfig) -> None:
    bench = PubBrain5Benchmark(pub, small_spec)
    assert bench.classes == CLASSES
    assert bench.study_ids() == ["brats23/test/adult_glioma/BraTS-GLI-00001-000", "nyu_mets/NYU_Mets_1_2"]
    labels = bench.labels()
    assert labels.loc["nyu_mets/NYU_Mets_1_2"].tolist() == [0, 0, 0, 0, 1]
    assert labels.loc["brats23/test/adult_glioma/BraTS-GLI-00001-000", "glioma"] == 1
    assert bench.excluded().to_dict("records") == [{"study_id": "open_bhb/sub-1", "reason": "missing_folder"}]


def test_load_one_scan_per_sequence_without_segmentations(pub: Path, small_spec: PreprocessConfig) -> None:
    bench = PubBrain5Benchmark(pub, small_spec)
    mets = bench.load("nyu_mets/NYU_Mets_1_2")
    assert mets.shape == (2, 8, 16, 16)
    assert mets.dtype == np.float32
    assert 0.0 <= mets.min() < mets.max() <= 1.0
    assert bench.load("brats23/test/adult_glioma/BraTS-GLI-00001-000").shape == (1, 8, 16, 16)
    assert (
        PubBrain5Benchmark(pub, StudyContract(small_spec.preprocess, ScanPolicy(max_scans=1)))
        .load("nyu_mets/NYU_Mets_1_2")
        .shape[0]
        == 1
    )


def test_a_row_with_two_classes_is_an_error(pub: Path, small_spec: PreprocessConfig) -> None:
    table = pd.read_csv(pub / "pub_brain_5.csv")
    table.loc[0, "Stroke"] = 1
    table.to_csv(pub / "pub_brain_5.csv", index=False)
    with pytest.raises(BenchmarkDataError, match="NYU_Mets_1_2' has 2 classes set"):
        PubBrain5Benchmark(pub, small_spec)
