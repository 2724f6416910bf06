"""Geometry of preprocessing, in numpy: reorient, resample to a spacing, pad/crop or resize, each with its affine.

The conventions are MONAI's (`Orientation`, `Spacing`, `ResizeWithPadOrCrop`, `Resize`), so that volumes and
affines agree with what the MONAI transforms give (`tests/unit/hlip/data/test_resample.py` compares them on
oblique, sheared, flipped and CT/MR volumes), without MONAI's import (seconds per process) or its per-call
metadata machinery:

- arrays are [i, j, k] with `affine` mapping (i, j, k) to RAS mm;
- resampling keeps the volume's rotation (and shear), changes only the spacing, and puts the output grid's first
  voxel on the input corner that is smallest in the output's index space (`compute_shape_offset` in MONAI); a
  spacing within 1e-3 mm of the target is kept, so an input already on the grid is not interpolated;
- interpolation is linear (or nearest) with zeros outside the field of view, blended over the last half voxel as
  `torch.nn.functional.grid_sample(padding_mode="zeros", align_corners=False)` does; computed in float64 and
  returned as float32. When the output grid is a scaling of the input's (no shear: the usual case) it runs as
  three 1-D interpolations, otherwise as one `scipy.ndimage.map_coordinates` over the output grid.
"""

from __future__ import annotations

import numpy as np
from nibabel import orientations

from hlip.data.volume import spacing_of

AFFINE_TOL = 1e-3  # mm: a spacing this close to the target is kept (no resampling), as MONAI does
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
MAX_DROPPED_SHIFT = 1e-4  # voxels: cross terms of the index map that move no sample further than this are dropped


def orient(array: np.ndarray, affine: np.ndarray, axcodes: str) -> tuple[np.ndarray, np.ndarray]:
    """Flip and transpose `array` so that its axes point along `axcodes` (letters of RAS_LABELS' ends).

    Returns:
        The reoriented array (a view when possible) and its affine.
    """
    ornt = orientations.ornt_transform(
        orientations.io_orientation(affine), orientations.axcodes2ornt(axcodes, labels=RAS_LABELS)
    )
    out = orientations.apply_orientation(array, ornt)
    return out, np.asarray(affine, dtype=float) @ orientations.inv_ornt_aff(ornt, array.shape)


def target_grid(
    shape: tuple[int, ...], affine: np.ndarray, spacing: tuple[float, float, float]
) -> tuple[tuple[int, int, int], np.ndarray]:
    """The output grid of resampling to `spacing`: its shape and affine (rotation and shear of `affine` kept).

    Args:
        shape: Input shape (i, j, k).
        affine: Input affine.
        spacing: Target voxel size along (i, j, k) in mm.
    """
    affine = np.asarray(affine, dtype=float)
    native = spacing_of(affine)
    target = np.array(spacing, dtype=float)
    keep = np.abs(native - target) <= AFFINE_TOL
    target[keep] = native[keep]
    rzs = affine[:3, :3]
    zs = np.linalg.cholesky(rzs.T @ rzs).T  # rzs = rotation @ zs, zs upper triangular with a positive diagonal
    out = np.eye(4)
    out[:3, :3] = rzs @ np.linalg.inv(zs) @ np.diag(target)
    corners = np.array(np.meshgrid(*[(0.0, n - 1.0) for n in shape], indexing="ij")).reshape(3, -1)
    corners = np.vstack([corners, np.ones((1, corners.shape[1]))])
    in_out = np.linalg.solve(out, affine) @ corners  # input corners in the output's index space (translation 0)
    out_shape = np.round(np.ptp(in_out[:3], axis=1) + 1.0).astype(int)
    world = affine @ corners
    for c in range(corners.shape[1]):
        if np.allclose(np.min(in_out[:3] - in_out[:3, c : c + 1], axis=1), 0.0, rtol=AFFINE_TOL):
            out[:3, 3] = world[:3, c]  # this corner is smallest along every output axis: it becomes voxel 0
            break
    else:  # no corner is: centre the output on the input
        size = np.array(shape, dtype=float)
        out[:3, 3] = affine[:3, :3] @ (size / 2.0) + affine[:3, 3] - out[:3, :3] @ (out_shape / 2.0)
    return (int(out_shape[0]), int(out_shape[1]), int(out_shape[2])), out


def resample(
    array: np.ndarray, affine: np.ndarray, shape: tuple[int, int, int], out_affine: np.ndarray, mode: str = "bilinear"
) -> np.ndarray:
    """Sample `array` (on `affine`) at the voxels of the grid (`shape`, `out_affine`); zeros outside.

    Args:
        mode: "bilinear" (linear along each axis, i.e. trilinear) or "nearest" (ties to even, as grid_sample).

    Returns:
        float32 array of `shape`.
    """
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', not {mode!r}")
    xform = np.linalg.solve(np.asarray(affine, dtype=float), np.asarray(out_affine, dtype=float))  # out -> in index
    data = np.asarray(array, dtype=np.float64)
    if tuple(shape) == data.shape and np.allclose(xform, np.eye(4), atol=AFFINE_TOL):
        return data.astype(np.float32)  # already on the grid
    linear = xform[:3, :3]
    cross = np.abs(linear - np.diag(np.diag(linear))).max()
    if cross * max(shape) <= MAX_DROPPED_SHIFT:  # a scaling (direction cosines rounded in the header: not shear)
        # Each pass is elementwise, so no value depends on the memory order: a Fortran-ordered volume (a DICOM
        # stack arrives as the transposed view [W, H, D]) is sampled through its C-ordered transpose, where `take`
        # copies whole rows instead of gathering strided voxels (about 1.5x faster, the same bytes).
        flip = data.flags.f_contiguous and not data.flags.c_contiguous
        work = data.T if flip else data
        for axis in range(3):
            coords = xform[axis, axis] * np.arange(shape[axis], dtype=np.float64) + xform[axis, 3]
            work = _sample_axis(work, 2 - axis if flip else axis, coords, mode)
        return (work.T if flip else work).astype(np.float32)
    return _sample_grid(data, xform, shape, mode).astype(np.float32)


def _sample_axis(data: np.ndarray, axis: int, coords: np.ndarray, mode: str) -> np.ndarray:
    n = data.shape[axis]
    padded = np.pad(data, [(1, 1) if a == axis else (0, 0) for a in range(data.ndim)])  # zeros on both ends
    if mode == "nearest":
        index = np.rint(coords)
        return padded.take(np.clip(index, -1, n).astype(np.intp) + 1, axis=axis)
    low = np.floor(coords)
    weight = coords - low
    i0 = np.clip(low, -1, n).astype(np.intp) + 1
    i1 = np.clip(low + 1, -1, n).astype(np.intp) + 1
    shape = [1] * data.ndim
    shape[axis] = len(weight)
    w = weight.reshape(shape)  # broadcast along `axis`
    return padded.take(i0, axis=axis) * (1.0 - w) + padded.take(i1, axis=axis) * w


def _sample_grid(data: np.ndarray, xform: np.ndarray, shape: tuple[int, int, int], mode: str) -> np.ndarray:
    from scipy import ndimage

    grid = np.indices(shape, dtype=np.float64).reshape(3, -1)
    coords = xform[:3, :3] @ grid + xform[:3, 3:4] + 1.0  # +1: index in the zero-padded array
    padded = np.pad(data, 1)
    if mode == "nearest":
        coords = np.rint(coords)
    sampled = ndimage.map_coordinates(padded, coords, order=0 if mode == "nearest" else 1, mode="nearest")
    return sampled.reshape(shape)


def pad_or_crop(array: np.ndarray, affine: np.ndarray, size: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pad with zeros (split evenly, the extra voxel after) and centre-crop to `size`; the affine follows."""
    pad = [max(s - n, 0) for s, n in zip(size, array.shape, strict=True)]
    widths = [(p // 2, p - p // 2) for p in pad]
    padded = np.pad(array, widths) if any(pad) else array
    starts = [max(n // 2 - s // 2, 0) for s, n in zip(size, padded.shape, strict=True)]
    cropped = padded[tuple(slice(b, b + s) for b, s in zip(starts, size, strict=True))]
    shift = np.eye(4)
    shift[:3, 3] = np.array(starts, dtype=float) - np.array([w[0] for w in widths], dtype=float)
    return cropped, np.asarray(affine, dtype=float) @ shift


def resize(
    array: np.ndarray, affine: np.ndarray, size: tuple[int, int, int], mode: str = "bilinear"
) -> tuple[np.ndarray, np.ndarray]:
    """Stretch to `size` (trilinear or nearest, voxel centres aligned as `align_corners=False`); the affine follows."""
    import torch
    import torch.nn.functional as F

    if tuple(array.shape) == tuple(size):
        return array.astype(np.float32, copy=False), np.asarray(affine, dtype=float)
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    if mode == "bilinear":
        out = F.interpolate(tensor, size=tuple(size), mode="trilinear", align_corners=False)
    else:
        out = F.interpolate(tensor, size=tuple(size), mode="nearest")
    scale = np.eye(4)
    factors = np.array(array.shape, dtype=float) / np.array(size, dtype=float)
    scale[:3, :3] = np.diag(factors)
    scale[:3, 3] = (factors - 1.0) / 2.0
    return out[0, 0].numpy(), np.asarray(affine, dtype=float) @ scale
