from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from hlip.data.deid import HashKey
from hlip.labels.evaluate import ReferenceConfig, evaluate_labels, load_reference
from hlip.labels.table import label_rows, make_label_table


def _table(values: dict[str, dict[str, int]]) -> pd.DataFrame:
    rows = []
    for key, per in values.items():
        rows += label_rows(key, {f: (v, "") for f, v in per.items()}, ["a", "b"], "rules")
    return make_label_table(rows)


def test_metrics_follow_the_definitions() -> None:
    reference = pd.DataFrame({"a": [1, -1, 0, 0], "b": [0, 0, 0, 0]}, index=["s1", "s2", "s3", "s4"])
    table = _table({"s1": {"a": 1}, "s2": {"a": -1}, "s3": {"a": -1}, "s4": {}, "extra": {"a": 1}})
    report = evaluate_labels(table, reference, ["a", "b"])
    a = report.per_finding.loc["a"]
    assert report.n_studies == 4  # "extra" is not in the reference
    # scores 1, .5, .5, 0 for present, present, absent, absent: 3.5 of 4 pairs ordered
    assert a.auc == pytest.approx(3.5 / 4)
    assert (a.precision, a.recall) == (pytest.approx(2 / 3), 1.0)
    assert a.f1 == pytest.approx(0.8)
    assert a.agreement == pytest.approx(3 / 4)
    assert (a.n_pos, a.n_uncertain) == (2, 2)
    assert math.isnan(report.per_finding.loc["b", "auc"])  # one class only: no AUC, left out of the mean
    assert report.macro["auc"] == pytest.approx(3.5 / 4)
    assert "| a | 0.875 |" in report.to_markdown()
    assert report.as_dict()["per_finding"]["b"]["auc"] is None


def test_reference_is_keyed_like_ingest_and_reads_uncertainty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_DEID_KEY", "s3cret")
    csv = tmp_path / "truth.csv"
    pd.DataFrame({"uid": ["1.2.3", "1.2.4"], "a": [1, 1], "b": [0, 1], "uncertain": ["a", None]}).to_csv(csv)
    config = ReferenceConfig(str(csv), uid_column="uid", findings=("a", "b"), uncertain_column="uncertain",
                             key_env="TEST_DEID_KEY")  # fmt: skip
    reference = load_reference(config)
    key = HashKey("s3cret")
    assert list(reference.index) == [key.hash("study", "1.2.3", 20), key.hash("study", "1.2.4", 20)]
    assert reference.to_numpy().tolist() == [[-1, 0], [1, 1]]
    with pytest.raises(ValueError, match="missing column"):
        load_reference(ReferenceConfig(str(csv), uid_column="uid", findings=("zzz",)))
    with pytest.raises(FileNotFoundError):
        load_reference(ReferenceConfig(str(tmp_path / "none.csv")))
