"""Preprocessing geometry against MONAI's transforms (the reference our conventions come from) on odd volumes."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from hlip.data.preprocess import LPS_TO_RAS, PreprocessConfig, preprocess
from hlip.data.resample import orient, pad_or_crop, resample, target_grid
from hlip.data.volume import spacing_of
from testkit.preprocess_reference import monai_preprocess, smooth_volume

CASES = [
    ("axial", 0.0, 0.0),
    ("coronal", 0.0, 0.0),
    ("sagittal", 0.0, 0.0),
    ("axial_reversed", 0.0, 0.0),
    ("axial", 12.0, 0.0),  # oblique: the grid keeps its rotation
    ("sagittal", 25.0, 0.0),
    ("axial", 0.0, 0.15),  # gantry tilt: slice direction not normal to the rows/columns (sheared grid)
    ("coronal", 8.0, -0.2),
]


@pytest.mark.parametrize(("plane", "oblique", "shear"), CASES)
@pytest.mark.parametrize("modality", ["MR", "CT"])
@pytest.mark.parametrize(
    "config",
    [
        PreprocessConfig(size=(16, 32, 32), spacing=(4.0, 3.5, 3.5)),
        PreprocessConfig(size=(24, 40, 28), spacing=(2.0, 1.1, 0.9)),  # upsampling and padding
        PreprocessConfig(size=(12, 24, 24), spacing=(4.0, 3.5, 3.5), mode="nearest"),
        PreprocessConfig(size=(12, 24, 20), spacing=None, size_mode="resize"),
        PreprocessConfig(size=(10, 16, 16), spacing=(3.0, 2.0, 2.0), size_mode="resize"),
    ],
    ids=["demo", "upsample-pad", "nearest", "resize-native", "resize"],
)
def test_matches_monai(plane: str, oblique: float, shear: float, modality: str, config: PreprocessConfig) -> None:
    seed = zlib.crc32(f"{plane}/{oblique}/{shear}/{modality}".encode()) % 1000
    volume = smooth_volume(seed, plane, oblique=oblique, shear=shear, ct=modality == "CT")
    plane_name = plane.removesuffix("_reversed")
    ours = preprocess(volume, modality, plane_name, config)
    reference = monai_preprocess(volume, modality, plane_name, config)
    assert [s.window for s in ours] == [r[0] for r in reference]
    for scan, (_, array, affine) in zip(ours, reference, strict=True):
        np.testing.assert_allclose(scan.affine, affine, atol=1e-6)
        assert scan.array.shape == array.shape
        diff = np.abs(scan.array.astype(int) - array.astype(int))
        # float64 arithmetic in another order: a voxel may round the other way at a .5 boundary, never more
        assert diff.max() <= 1
        assert np.count_nonzero(diff) <= max(2, array.size // 2000), np.count_nonzero(diff)
        assert np.count_nonzero(array) > array.size // 20  # the comparison is about content, not empty grids


def test_grid_keeps_rotation_and_native_spacing_within_tolerance() -> None:
    volume = smooth_volume(3, "axial", oblique=20.0)
    affine = LPS_TO_RAS @ volume.affine
    native = spacing_of(affine)
    shape, grid = target_grid(volume.array.shape[::-1], affine, (native[0] + 5e-4, 3.0, 3.0))
    assert spacing_of(grid) == pytest.approx([native[0], 3.0, 3.0])  # within 1e-3 mm: kept, not resampled
    directions = affine[:3, :3] / native
    np.testing.assert_allclose(grid[:3, :3] / spacing_of(grid), directions, atol=1e-12)
    assert shape[0] == volume.array.shape[2]


def test_linear_resampling_is_exact_on_a_linear_ramp() -> None:
    # trilinear interpolation reproduces an affine function exactly wherever all eight neighbours are inside
    i, j, k = np.indices((20, 18, 16), dtype=float)
    array = 2.0 * i - 3.0 * j + 0.5 * k + 7.0
    affine = np.diag([1.0, 1.2, 2.5, 1.0])
    shape, grid = target_grid(array.shape, affine, (1.7, 1.9, 3.1))
    out = resample(array, affine, shape, grid).astype(float)
    xform = np.linalg.solve(affine, grid)
    idx = np.indices(shape, dtype=float).reshape(3, -1)
    src = xform[:3, :3] @ idx + xform[:3, 3:4]
    inside = np.all((src >= 0) & (src <= np.array(array.shape)[:, None] - 1), axis=0)
    expected = 2.0 * src[0] - 3.0 * src[1] + 0.5 * src[2] + 7.0
    assert inside.sum() > 100
    np.testing.assert_allclose(out.reshape(-1)[inside], expected[inside], rtol=1e-5, atol=1e-4)


def test_sheared_and_separable_paths_agree() -> None:
    rng = np.random.default_rng(1)
    array = rng.normal(size=(14, 12, 10))
    affine = np.diag([1.1, 0.9, 2.0, 1.0])
    shape, grid = target_grid(array.shape, affine, (1.6, 1.3, 2.9))
    separable = resample(array, affine, shape, grid)
    from hlip.data import resample as module

    xform = np.linalg.solve(affine, grid)
    general = module._sample_grid(array.astype(np.float64), xform, shape, "bilinear").astype(np.float32)
    np.testing.assert_allclose(separable, general, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_memory_order_changes_no_value(mode: str) -> None:
    # a DICOM stack reaches the resampler as a Fortran-ordered [W, H, D] view, which it samples through the
    # C-ordered transpose: every axis must still get its own coordinates, to the last bit
    rng = np.random.default_rng(2)
    c_ordered = rng.normal(size=(23, 17, 11)).astype(np.float32)
    fortran = np.asfortranarray(c_ordered)
    affine = np.array([[0.9, 0, 0, 3.0], [0, 1.3, 0, -2.0], [0, 0, 4.0, 1.0], [0, 0, 0, 1.0]])
    shape, grid = target_grid(c_ordered.shape, affine, (1.7, 1.1, 2.5))
    grid[:3, 3] += (0.3, -0.45, 0.8)  # sample between voxels and past the edges on every axis
    expected = resample(c_ordered, affine, shape, grid, mode)
    got = resample(fortran, affine, shape, grid, mode)
    assert fortran.flags.f_contiguous
    assert not fortran.flags.c_contiguous
    assert len(set(shape)) == 3
    assert got.shape == expected.shape == shape
    assert got.dtype == np.float32
    assert np.ascontiguousarray(got).tobytes() == expected.tobytes()
    assert np.abs(expected).sum() > 0


def test_pad_or_crop_keeps_world_positions() -> None:
    array = np.arange(5 * 8 * 3, dtype=float).reshape(5, 8, 3)
    affine = np.diag([2.0, 1.0, 3.0, 1.0])
    affine[:3, 3] = [10.0, -4.0, 1.0]
    out, out_affine = pad_or_crop(array, affine, (4, 10, 6))
    assert out.shape == (4, 10, 6)
    # every voxel that came from the input sits at the world position it had there
    for idx in [(0, 1, 1), (3, 8, 3), (2, 5, 2)]:
        value = out[idx]
        src = np.argwhere(array == value)[0]
        world_out = out_affine @ np.array([*idx, 1.0])
        world_in = affine @ np.array([*src, 1.0])
        np.testing.assert_allclose(world_out, world_in)


def test_orient_puts_the_slice_axis_last_for_each_plane() -> None:
    for plane, codes in (("axial", "LPS"), ("sagittal", "PIL"), ("coronal", "LIP")):
        volume = smooth_volume(5, plane)
        array, affine = orient(volume.array.transpose(2, 1, 0), LPS_TO_RAS @ volume.affine, codes)
        assert array.shape[2] == volume.array.shape[0]  # the slices are the depth axis
        assert np.linalg.det(affine[:3, :3]) != 0


def test_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        resample(np.zeros((3, 3, 3)), np.eye(4), (2, 2, 2), np.diag([1.5, 1.5, 1.5, 1.0]), mode="cubic")
