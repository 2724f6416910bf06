"""`benchmarks/bench_ablation.py` compares runs pairwise only on the same benchmark studies *and* images."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("bench_ablation")


def _scans(folder: Path, means: list[float]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(
        {"scan_key": [f"s{i}" for i in range(len(means))], "voxel_mean": means, "voxel_std": [10.0] * len(means)}
    )
    table.to_parquet(folder / "scans.parquet", index=False)
    return folder


def test_images_fingerprint_follows_the_intensities_not_the_row_order(bench: ModuleType, tmp_path: Path) -> None:
    a = bench.images_fingerprint(_scans(tmp_path / "a", [50.0, 60.0, 70.0]))
    shuffled = tmp_path / "b"
    _scans(shuffled, [50.0, 60.0, 70.0])
    table = pd.read_parquet(shuffled / "scans.parquet").iloc[::-1]
    table.to_parquet(shuffled / "scans.parquet", index=False)
    assert bench.images_fingerprint(shuffled) == a
    assert bench.images_fingerprint(_scans(tmp_path / "c", [50.0, 60.5, 70.0])) != a  # one brighter volume


def _record(path: Path, images: str | None) -> Path:
    scores = [[[0.2] * 5, [0.3] * 5]]
    record = {"variants": {"scan+study": scores}, "probe": {"scan+study": scores},
              "train_probe": {"scan+study": scores}, "benchmark_ids": ["a", "b"], "pairs": {}}  # fmt: skip
    if images is not None:
        record["benchmark_images"] = images
    path.write_text(json.dumps(record))
    return path


def _merge(bench: ModuleType, path: Path, images: str) -> dict[str, dict[str, list[np.ndarray]]]:
    tables: dict[str, dict[str, list[np.ndarray]]] = {"variants": {}, "probe": {}, "train_probe": {}}
    bench.merge_baseline(path, ["a", "b"], images, {}, tables, {})
    return tables


def test_baseline_on_the_same_images_merges_all_three_scores(bench: ModuleType, tmp_path: Path) -> None:
    tables = _merge(bench, _record(tmp_path / "r.json", "abc"), "abc")
    assert {name: list(t) for name, t in tables.items()} == {
        name: ["scan+study (earlier)"] for name in ("variants", "probe", "train_probe")
    }
    assert tables["train_probe"]["scan+study (earlier)"][0].shape == (2, 5)


def test_baseline_on_other_images_is_refused(bench: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="other benchmark images"):
        _merge(bench, _record(tmp_path / "r.json", "abc"), "def")


def test_baseline_without_a_fingerprint_merges_with_a_warning(
    bench: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="bench_ablation"):
        tables = _merge(bench, _record(tmp_path / "r.json", None), "abc")
    assert "no benchmark image fingerprint" in caplog.text
    assert list(tables["variants"]) == ["scan+study (earlier)"]


def test_baseline_on_other_studies_is_refused(bench: ModuleType, tmp_path: Path) -> None:
    path = _record(tmp_path / "r.json", "abc")
    tables: dict[str, dict[str, list[np.ndarray]]] = {"variants": {}}
    with pytest.raises(SystemExit, match="other benchmark studies"):
        bench.merge_baseline(path, ["a", "c"], "abc", {}, tables, {})
