"""CQ500 adapter on a tiny download in CQ500's layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlip.data.preprocess import DEFAULT_CT_WINDOWS, PreprocessConfig
from hlip.evaluation.benchmarks.common import BenchmarkDataError, MissingBenchmarkFileError
from hlip.evaluation.benchmarks.cq500 import FINDINGS, HLIP_CLASSES, READERS, CQ500Benchmark


def _reads(votes: dict[str, dict[str, tuple[int, int, int]]]) -> pd.DataFrame:
    rows = []
    for name, marks in votes.items():
        row: dict[str, object] = {"name": name, "Category": "B1"}
        for k, reader in enumerate(READERS):
            for finding in FINDINGS:
                row[f"{reader}:{finding}"] = marks.get(finding, (0, 0, 0))[k]
        rows.append(row)
    return pd.DataFrame(rows)


@pytest.fixture
def cq500(tmp_path: Path, write_ct_series: Callable[..., list[Path]]) -> Path:
    root = tmp_path / "cq500"
    write_ct_series(root / "CQ500CT0 CQ500CT0" / "Unknown Study" / "CT PLAIN", "1.2.3.0", hu=40.0)
    write_ct_series(root / "qct02" / "CQ500CT1 CQ500CT1" / "Unknown Study" / "CT 5mm", "1.2.3.1", hu=60.0)
    write_ct_series(root / "CQ500CT3 CQ500CT3" / "Unknown Study" / "CT PLAIN", "1.2.3.3")
    votes = {
        "CQ500-CT-0": {"ICH": (1, 1, 0), "IPH": (1, 0, 0), "Fracture": (0, 1, 1)},
        "CQ500-CT-1": {"SDH": (0, 1, 1), "MidlineShift": (1, 1, 1), "ChronicBleed": (1, 1, 1)},
        "CQ500-CT-2": {"ICH": (1, 1, 1)},
    }
    _reads(votes).to_csv(root / "reads.csv", index=False)
    return root


def test_labels_are_the_reader_majority(cq500: Path, small_spec: PreprocessConfig) -> None:
    bench = CQ500Benchmark(cq500, small_spec)
    assert bench.study_ids() == ["CQ500CT000", "CQ500CT001"]
    assert bench.classes == HLIP_CLASSES
    labels = bench.labels()
    positives = {sid: sorted(labels.columns[labels.loc[sid] == 1]) for sid in labels.index}
    assert positives == {"CQ500CT000": ["Fracture", "ICH"], "CQ500CT001": ["MidlineShift", "SDH"]}
    reasons = dict(bench.excluded().itertuples(index=False))
    assert reasons == {"CQ500CT002": "no_dicom_folder", "CQ500CT003": "no_reads"}
    unanimous = CQ500Benchmark(cq500, small_spec, classes=["ChronicBleed", "ICH"], min_votes=3).labels()
    assert unanimous.to_dict("index") == {
        "CQ500CT000": {"ChronicBleed": 0, "ICH": 0},
        "CQ500CT001": {"ChronicBleed": 1, "ICH": 0},
    }


def test_load_windows_each_series_as_ingest_does(cq500: Path, small_spec: PreprocessConfig) -> None:
    volume = CQ500Benchmark(cq500, small_spec).load("CQ500CT000")
    assert volume.dtype == np.float32
    assert volume.shape == (3, 8, 16, 16)  # brain, blood, bone windows of the one series
    centre = volume[:, 4, 8, 8]
    # 40 HU through each window (level, width): (40 - level + width / 2) / width
    expected = [(40 - lv + w / 2) / w for lv, w in DEFAULT_CT_WINDOWS.values()]
    np.testing.assert_allclose(centre, expected, atol=0.01)
    assert expected[0] == 0.5
    assert 0.0 <= volume.min() <= volume.max() <= 1.0


def test_missing_inputs_are_named(cq500: Path, small_spec: PreprocessConfig, tmp_path: Path) -> None:
    with pytest.raises(MissingBenchmarkFileError, match=r"nothing\.csv"):
        CQ500Benchmark(cq500, small_spec, reads_csv=tmp_path / "nothing.csv")
    pd.read_csv(cq500 / "reads.csv").drop(columns="R2:SAH").to_csv(tmp_path / "reads.csv", index=False)
    with pytest.raises(BenchmarkDataError, match=r"lacks column\(s\) \['R2:SAH'\]"):
        CQ500Benchmark(cq500, small_spec, reads_csv=tmp_path / "reads.csv")
    with pytest.raises(ValueError, match="unknown class"):
        CQ500Benchmark(cq500, small_spec, classes=["Tumour"])
