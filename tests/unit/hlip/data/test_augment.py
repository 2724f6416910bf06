"""Training-item augmentation: what it moves, what it must leave alone, and the values it refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hlip.config import ConfigError
from hlip.data.augment import AUGMENT_STREAM, AugmentPolicy, augment_scans
from hlip.data.dataset import ScanPolicy, StudyDataset, TextPolicy
from hlip.data.sampling import item_rng
from hlip.labels.table import to_matrix
from hlip.training.config import PretrainConfig
from testkit.training_data import FINDINGS, write_synthetic_part


@pytest.fixture(scope="module")
def part(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("part")
    return out, write_synthetic_part(out, n_studies=10, max_scans=4)


def _dot_scans(n: int = 3) -> np.ndarray:
    """Scans `[n, 12, 20, 20]` of air with one bright voxel each, at a known place."""
    scans = np.zeros((n, 12, 20, 20), np.uint8)
    scans[:, 6, 10, 10] = 200
    return scans


def test_shift_moves_each_scan_within_its_bounds_and_fills_with_air() -> None:
    scans = _dot_scans(16)
    before = scans.copy()
    out = augment_scans(scans, AugmentPolicy(shift=(1, 3, 2)), np.random.default_rng(0))
    np.testing.assert_array_equal(scans, before)  # the input is not modified
    assert out.dtype == np.uint8
    assert out.shape == scans.shape
    offsets = []
    for volume in out:
        (d, r, c) = np.argwhere(volume == 200)[0]
        offsets.append((d - 6, r - 10, c - 10))
        assert np.count_nonzero(volume) == 1  # nothing but air moved in
    offsets_arr = np.array(offsets)
    assert np.all(np.abs(offsets_arr) <= (1, 3, 2))
    assert len({tuple(o) for o in offsets}) > 1  # each scan draws its own shift


def test_edge_content_leaves_the_volume_instead_of_wrapping_round() -> None:
    scans = np.zeros((1, 4, 6, 6), np.uint8)
    scans[0, :, :, 5] = 90  # the last column
    for seed in range(20):
        out = augment_scans(scans, AugmentPolicy(shift=(0, 0, 2)), np.random.default_rng(seed))
        assert not out[0, :, :, 0].any()  # np.roll would carry the column to the first one
        assert set(np.unique(out).tolist()) <= {0, 90}


def test_gamma_keeps_black_white_and_order_and_changes_mid_tones() -> None:
    ramp = np.tile(np.arange(256, dtype=np.uint8), (1, 2, 2, 1))[:, :, :, :]  # [1, 2, 2, 256]
    changed = False
    for seed in range(10):
        out = augment_scans(ramp, AugmentPolicy(gamma=0.3), np.random.default_rng(seed))[0, 0, 0]
        assert out[0] == 0
        assert out[255] == 255
        assert np.all(np.diff(out.astype(int)) >= 0)  # a contrast curve never reorders intensities
        changed |= bool(np.any(out != np.arange(256)))
    assert changed


def test_draws_are_a_function_of_seed_epoch_and_index() -> None:
    scans = np.random.default_rng(1).integers(0, 255, (2, 8, 16, 16), dtype=np.uint8)
    policy = AugmentPolicy(shift=(2, 4, 4), gamma=0.2)
    first = augment_scans(scans, policy, item_rng(3, 0, 5, AUGMENT_STREAM))
    np.testing.assert_array_equal(first, augment_scans(scans, policy, item_rng(3, 0, 5, AUGMENT_STREAM)))
    assert not np.array_equal(first, augment_scans(scans, policy, item_rng(3, 1, 5, AUGMENT_STREAM)))


def test_dataset_augments_only_the_image_and_only_in_training(part: tuple[Path, pd.DataFrame]) -> None:
    folder, long = part
    labels = to_matrix(long, FINDINGS).astype("float32")
    kwargs = {"scans_policy": ScanPolicy("max_n", 3), "text_policy": TextPolicy(), "labels": labels, "seed": 2}
    plain = StudyDataset(folder, train=True, **kwargs)
    policy = AugmentPolicy(shift=(2, 4, 4), gamma=0.2)
    augmented = StudyDataset(folder, train=True, augment=policy, **kwargs)
    differs = 0
    for index in range(len(plain)):
        a, b = plain[(1, index)], augmented[(1, index)]
        assert a["scan_keys"] == b["scan_keys"]  # the scans chosen, the report and the labels are untouched
        assert a["report"] == b["report"]
        torch.testing.assert_close(a["labels"], b["labels"], equal_nan=True)
        assert a["image"].shape == b["image"].shape
        differs += int(not torch.equal(a["image"], b["image"]))
    assert differs == len(plain)
    evaluation = StudyDataset(folder, train=False, augment=policy, **kwargs)
    reference = StudyDataset(folder, train=False, **kwargs)
    assert all(torch.equal(evaluation[i]["image"], reference[i]["image"]) for i in range(len(reference)))


def test_bad_values_are_refused_with_the_key_named(part: tuple[Path, pd.DataFrame]) -> None:
    with pytest.raises(ValueError, match="shift"):
        AugmentPolicy(shift=(0, -1, 0))
    with pytest.raises(ValueError, match="gamma"):
        AugmentPolicy(gamma=2.0)
    with pytest.raises(ValueError, match=r"shift\[1\] = 20 voxels"):
        augment_scans(_dot_scans(), AugmentPolicy(shift=(0, 20, 0)), np.random.default_rng(0))
    with pytest.raises(ConfigError, match="augment"):
        PretrainConfig.from_params({"data": {"augment": {"shift": [1, 2]}}})
    with pytest.raises(ConfigError, match="augment"):
        PretrainConfig.from_params({"data": {"augment": {"flip": True}}})
    config = PretrainConfig.from_params({"data": {"augment": {"shift": [1, 2, 2], "gamma": 0.1}}})
    assert config.data.augment == AugmentPolicy(shift=(1, 2, 2), gamma=0.1)
    assert PretrainConfig.from_params({}).data.augment.enabled is False
