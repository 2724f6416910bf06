"""Preprocessing: shapes, depth axis, CT windows, MRI percentiles, uint8."""

from __future__ import annotations

import numpy as np
import pytest

from hlip.data.preprocess import PreprocessConfig, preprocess
from hlip.data.volume import Volume


def _volume(array: np.ndarray, spacing: tuple[float, float, float], orientation: str) -> Volume:
    """A volume [slices, rows, cols] with the given plane (row/column directions as a scanner writes them)."""
    dirs = {
        "axial": ([1, 0, 0], [0, 1, 0], [0, 0, 1]),
        "sagittal": ([0, 1, 0], [0, 0, -1], [1, 0, 0]),
    }[orientation]
    affine = np.eye(4)
    affine[:3, 0] = np.array(dirs[0]) * spacing[2]
    affine[:3, 1] = np.array(dirs[1]) * spacing[1]
    affine[:3, 2] = np.array(dirs[2]) * spacing[0]
    return Volume(array.astype(np.float32), affine)


def test_mri_is_resampled_cropped_and_scaled_to_uint8() -> None:
    rng = np.random.default_rng(0)
    array = rng.normal(100, 10, size=(20, 40, 30))
    array[0, 0, 0] = 1e6  # an outlier the 99.5 percentile clip must absorb
    cfg = PreprocessConfig(size=(8, 16, 16), spacing=(4.0, 2.0, 2.0))
    (scan,) = preprocess(_volume(array, (2.0, 1.0, 1.0), "axial"), "MR", "axial", cfg)
    assert scan.array.shape == (8, 16, 16)
    assert scan.array.dtype == np.uint8
    assert scan.spacing == pytest.approx((4.0, 2.0, 2.0))
    assert 60 < scan.array.mean() < 200  # not crushed to 0 by the outlier


def test_sagittal_through_plane_axis_becomes_depth() -> None:
    array = np.zeros((10, 30, 40), np.float32)  # 10 sagittal slices of 30 x 40
    array[:5] = 100.0  # the first half of the slices (patient right) is bright
    cfg = PreprocessConfig(size=(10, 30, 40), spacing=None, mr_percentiles=(0.0, 100.0))
    (scan,) = preprocess(_volume(array, (3.0, 1.0, 1.0), "sagittal"), "MR", "sagittal", cfg)
    assert scan.array.shape == (10, 30, 40)
    profile = scan.array.mean(axis=(1, 2))
    assert profile.max() - profile.min() > 200  # brightness changes along depth: depth is the slice axis


def test_ct_windows_make_separate_scans() -> None:
    hu = np.full((12, 16, 16), 40.0)  # brain tissue
    hu[:, :, :4] = 1000.0  # bone
    cfg = PreprocessConfig(size=(12, 16, 16), spacing=None, size_mode="resize")
    scans = {s.window: s.array for s in preprocess(_volume(hu, (1.0, 1.0, 1.0), "axial"), "CT", "axial", cfg)}
    assert set(scans) == {"brain", "blood", "bone"}
    assert scans["brain"].max() == 255  # bone saturates the brain window
    assert 120 <= np.median(scans["brain"]) <= 135  # 40 HU sits mid-window (level 40)
    assert np.median(scans["bone"]) < 80  # soft tissue is dark in the bone window


@pytest.mark.parametrize("spacing", [(3.0, 2.0, 2.0), (4.0, 3.5, 3.5)])
def test_ct_outside_an_off_centre_field_of_view_is_air_not_water(spacing: tuple[float, float, float]) -> None:
    # a soft-tissue block (40 HU) whose grid does not divide by the target spacing: the resampler reaches past its
    # edge, where padding with 0 HU would show as water grey (26 in the blood window) instead of black air
    volume = _volume(np.full((10, 20, 20), 40.0), (2.5, 0.9, 0.9), "axial")
    volume.affine[:3, 3] = [37.0, -55.0, 80.0]
    cfg = PreprocessConfig(size=(40, 40, 40), spacing=spacing, ct_windows={"blood": (80.0, 200.0)})
    (scan,) = preprocess(volume, "CT", "axial", cfg)
    tissue = round((40.0 + 20.0) / 200.0 * 255.0)  # 40 HU in the blood window (level 80, width 200)
    assert set(np.unique(scan.array)) == {0, tissue}


def test_ct_padding_follows_a_series_minimum_below_air() -> None:
    # -2000 HU: the value some scanners write outside the reconstruction circle; in a window that shows it as 0,
    # the resampled edge must stay 0 (padding with air, -1024 HU, would show as 249 there, with water as 255)
    volume = _volume(np.full((10, 20, 20), -2000.0), (2.5, 0.9, 0.9), "axial")
    cfg = PreprocessConfig(size=(40, 40, 40), spacing=(3.0, 2.0, 2.0), ct_windows={"low": (-1500.0, 1000.0)})
    (scan,) = preprocess(volume, "CT", "axial", cfg)
    assert scan.array.max() == 0
