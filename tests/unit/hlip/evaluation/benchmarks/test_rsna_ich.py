"""RSNA ICH adapter on a tiny download in Kaggle's layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hlip.data.preprocess import PreprocessConfig
from hlip.evaluation.benchmarks.common import BenchmarkDataError
from hlip.evaluation.benchmarks.rsna_ich import HLIP_CLASSES, SUBTYPES, RSNAICHBenchmark


@pytest.fixture
def rsna(tmp_path: Path, write_ct_series: Callable[..., list[Path]]) -> Path:
    """Two studies of one 10-slice series; slice 3 of study A bleeds (intraparenchymal, intraventricular)."""
    root = tmp_path / "rsna"
    rows = []
    for study, prefix in (("ID_aaaaaaaaaa", "a"), ("ID_bbbbbbbbbb", "b")):
        write_ct_series(
            root / "stage_2_train",
            study,
            sop_uid=lambda i, p=prefix: f"ID_{p}{i:08x}",
            name=lambda i, sop: f"{sop}.dcm",
        )
        for i in range(10):
            for subtype in SUBTYPES:
                bleed = prefix == "a" and i == 3 and subtype in ("any", "intraparenchymal", "intraventricular")
                rows.append({"ID": f"ID_{prefix}{i:08x}_{subtype}", "Label": int(bleed)})
    rows += [{"ID": f"ID_cmissing_{s}", "Label": 1} for s in SUBTYPES]  # a slice whose file is not there
    pd.DataFrame(rows).to_csv(root / "stage_2_train.csv", index=False)
    return root


def test_study_label_is_the_max_over_its_slices(rsna: Path, small_spec: PreprocessConfig) -> None:
    bench = RSNAICHBenchmark(rsna, small_spec)
    assert bench.study_ids() == ["ID_aaaaaaaaaa", "ID_bbbbbbbbbb"]
    assert bench.classes == SUBTYPES
    labels = bench.labels()
    assert labels.loc["ID_aaaaaaaaaa"].to_dict() == {
        "any": 1,
        "epidural": 0,
        "intraparenchymal": 1,
        "intraventricular": 1,
        "subarachnoid": 0,
        "subdural": 0,
    }
    assert labels.loc["ID_bbbbbbbbbb"].sum() == 0
    assert bench.excluded().to_dict("records") == [{"study_id": "ID_cmissing", "reason": "missing_slice_file"}]


def test_subset_index_cache_and_hlip_classes(rsna: Path, small_spec: PreprocessConfig, tmp_path: Path) -> None:
    pd.DataFrame({"study": ["ID_aaaaaaaaaa", "ID_zzzzzzzzzz"]}).to_csv(tmp_path / "subset.csv", index=False)
    cache = tmp_path / "cache" / "index.parquet"
    first = RSNAICHBenchmark(rsna, small_spec, subset_csv=tmp_path / "subset.csv", index_cache=cache)
    assert first.study_ids() == ["ID_aaaaaaaaaa"]
    assert ("ID_zzzzzzzzzz", "not_in_download") in set(first.excluded().itertuples(index=False))
    assert cache.is_file()
    (rsna / "stage_2_train" / "ID_b00000000.dcm").unlink()  # the cached index no longer needs the headers
    second = RSNAICHBenchmark(rsna, small_spec, index_cache=cache, classes=HLIP_CLASSES)
    assert list(second.labels().columns) == list(HLIP_CLASSES)
    assert second.study_ids() == ["ID_aaaaaaaaaa", "ID_bbbbbbbbbb"]


def test_load_and_bad_labels(rsna: Path, small_spec: PreprocessConfig, tmp_path: Path) -> None:
    volume = RSNAICHBenchmark(rsna, small_spec).load("ID_bbbbbbbbbb")
    assert volume.shape == (3, 8, 16, 16)
    assert volume.dtype == np.float32
    assert 0.0 <= volume.min() <= volume.max() <= 1.0
    bad = pd.read_csv(rsna / "stage_2_train.csv")
    bad.loc[0, "ID"] = "ID_a00000000_tumour"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(BenchmarkDataError, match=r"bad\.csv: unknown subtype\(s\) \['tumour'\]"):
        RSNAICHBenchmark(rsna, small_spec, labels_csv=tmp_path / "bad.csv")
    bad.rename(columns={"Label": "y"}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(BenchmarkDataError, match=r"lacks column\(s\) \['Label'\]"):
        RSNAICHBenchmark(rsna, small_spec, labels_csv=tmp_path / "bad.csv")
