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


def _head(lesion: tuple[float, float] | None = None, seed: int = 0) -> np.ndarray:
    """A noisy ellipsoid "head" of tissue at 0.4 on a 0 background; optionally a ball of another level inside it."""
    rng = np.random.default_rng(seed)
    d, h, w = np.mgrid[:24, :48, :48]
    inside = ((d - 12) / 10) ** 2 + ((h - 24) / 20) ** 2 + ((w - 24) / 20) ** 2 < 1
    volume = np.where(inside, 0.4 + rng.normal(0, 0.02, inside.shape), 0.0)
    if lesion is not None:
        radius, level = lesion
        ball = (d - 12) ** 2 + (h - 20) ** 2 + (w - 28) ** 2 < radius**2
        volume[ball] = level
    return volume.astype(np.float32)


def test_scan_statistics_see_a_bright_and_a_dark_lesion_and_refuse_an_empty_scan(bench: ModuleType) -> None:
    plain, bright = bench.scan_statistics(_head()), bench.scan_statistics(_head((4, 0.9)))
    dark = bench.scan_statistics(_head((4, 0.1)))
    # columns: p99.5, p0.5, p95, p5 tails; shares above and below 2 deviations (x10); present
    assert bright[0] > 2 * plain[0]  # the upper tail reaches the lesion (in deviations, which it widens)
    assert dark[1] > 2 * plain[1]  # the lower tail reaches the dark one
    assert bright[4] > dark[4] + 0.1  # > 1 % of the brain above the median + 2 deviations: the bright lesion
    assert dark[5] > bright[5] + 0.1  # and below the median - 2 deviations: the dark one
    assert plain[6] == bright[6] == 1.0
    assert bench.scan_statistics(np.zeros((24, 48, 48), np.float32)) is None


def test_intensity_features_keep_kinds_apart_and_split_dwi_by_b_value(bench: ModuleType, tmp_path: Path) -> None:
    part = tmp_path / "part"
    (part / "volumes").mkdir(parents=True)
    rows = []
    for i, (kind, b, lesion) in enumerate([("dwi", 0.0, None), ("dwi", 1000.0, (4, 0.9)), ("t1", None, None)]):
        np.save(part / "volumes" / f"v{i}.npy", (_head(lesion, seed=i) * 255).astype(np.uint8))
        rows.append({"study_key": "a", "scan_key": f"s{i}", "kind": kind, "plane": "axial", "b_value": b,
                     "path": f"volumes/v{i}.npy"})  # fmt: skip
    pd.DataFrame(rows).to_parquet(part / "scans.parquet", index=False)
    per_kind, agnostic = bench.intensity_features(bench.StudyLoader(part, 8), ["a"])
    table = per_kind.reshape(len(bench.REFERENCE_KINDS), 7)
    present = {k for k, row in zip(bench.REFERENCE_KINDS, table, strict=True) if row[6] == 1.0}
    assert present == {"dwi_b0", "dwi", "t1"}
    kinds = list(bench.REFERENCE_KINDS)
    assert table[kinds.index("dwi"), 0] > 2 * table[kinds.index("dwi_b0"), 0]  # the lesion is on the b1000 scan only
    assert agnostic.shape == (1, 21)
    assert agnostic[0, 0] == pytest.approx(table[kinds.index("dwi"), 0])  # the maximum over scans is that scan's


def test_pool_per_kind_keeps_each_kind_in_its_slot_and_zeros_absent_ones(bench: ModuleType) -> None:
    features = np.array([[1.0, 5.0], [3.0, -1.0], [7.0, 7.0], [9.0, 9.0]], dtype=np.float32)
    kinds = ["t1", "t1", "flair", "localizer"]  # a kind outside the list is left out
    slot = {k: i for i, k in enumerate(bench.REFERENCE_KINDS)}
    for how, t1 in (("max", [3.0, 5.0]), ("mean", [2.0, 2.0])):
        table = bench.pool_per_kind(features, kinds, how).reshape(len(bench.REFERENCE_KINDS), 2)
        assert table[slot["t1"]].tolist() == t1
        assert table[slot["flair"]].tolist() == [7.0, 7.0]
        assert not np.delete(table, [slot["t1"], slot["flair"]], axis=0).any()


def test_kind_probe_features_split_a_batch_into_its_studies(bench: ModuleType, tmp_path: Path) -> None:
    """Studies with 3 and 1 scans read in one batch give each study what it gives alone: the packed scans are cut
    into studies in order, and the b0 DWI scan lands in its own slot."""
    import torch

    from hlip.models.factory import create_model

    part = tmp_path / "part"
    (part / "volumes").mkdir(parents=True)
    rows = []
    scans = {"a": [("dwi", 0.0), ("dwi", 1000.0), ("t1", None)], "b": [("flair", None)]}
    for study, kinds in scans.items():
        for i, (kind, b) in enumerate(kinds):
            volume = _head((3, 0.9), seed=i)[4:20, 8:40, 8:40]  # hlip-tiny's 16x32x32 scans
            np.save(part / "volumes" / f"{study}{i}.npy", (volume * 255).astype(np.uint8))
            rows.append({"study_key": study, "scan_key": f"{study}{i}", "kind": kind, "plane": "axial", "b_value": b,
                         "path": f"volumes/{study}{i}.npy"})  # fmt: skip
    pd.DataFrame(rows).to_parquet(part / "scans.parquet", index=False)
    loader = bench.StudyLoader(part, 8)
    torch.manual_seed(0)
    model = create_model("hlip-tiny").eval()
    together = bench.kind_probe_features(model, loader, ["a", "b"], batch_size=2)
    alone = [bench.kind_probe_features(model, loader, [k], batch_size=1) for k in ("a", "b")]
    slot = {k: i for i, k in enumerate(bench.REFERENCE_KINDS)}
    for name in bench.KIND_PROBES:
        assert together[name].shape == (2, len(bench.REFERENCE_KINDS) * 24)
        for row, single in enumerate(alone):
            np.testing.assert_allclose(together[name][row], single[name][0], rtol=1e-4, atol=1e-5)
        table = together[name][0].reshape(len(bench.REFERENCE_KINDS), 24)
        assert {k for k, i in slot.items() if table[i].any()} == {"dwi_b0", "dwi", "t1"}
