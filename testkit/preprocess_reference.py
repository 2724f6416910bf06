"""Preprocessing references for tests and benchmarks: the same steps written with MONAI 1.6 transforms (the
conventions `hlip.data.resample` follows), and smooth random volumes on odd scanner grids."""

from __future__ import annotations

from typing import Any

import numpy as np

from hlip.data.preprocess import AIR_HU, LPS_TO_RAS, PreprocessConfig
from hlip.data.volume import Volume


def monai_preprocess(volume: Volume, modality: str, plane: str, config: PreprocessConfig) -> list[tuple[Any, ...]]:
    """The same preprocessing written with MONAI 1.6 transforms: (window, uint8 array [D, H, W], affine)."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Orientation, Resize, ResizeWithPadOrCrop, ScaleIntensityRange, Spacing

    data = torch.from_numpy(np.ascontiguousarray(volume.array.transpose(2, 1, 0))[None])
    image: Any = MetaTensor(data, affine=torch.from_numpy(LPS_TO_RAS @ volume.affine))
    codes = config.axcodes.get(plane, config.axcodes["axial"])
    image = Orientation(axcodes=codes, labels=(("L", "R"), ("P", "A"), ("I", "S")))(image)
    if modality != "CT":
        low, high = (float(v) for v in np.percentile(volume.array, config.mr_percentiles))
        image = ScaleIntensityRange(low, high if high > low else low + 1.0, 0.0, 1.0, clip=True)(image)
    if config.spacing is not None:
        d, h, w = config.spacing
        spacing = Spacing(pixdim=(w, h, d), mode=config.mode, padding_mode="zeros")
        if modality == "CT":
            fill = min(AIR_HU, float(volume.array.min()))
            image = spacing(image - fill) + fill
        else:
            image = spacing(image)
    windows = {"": None} if modality != "CT" else config.ct_windows
    out = []
    for name, window in windows.items():
        scan: Any = image
        if window is not None:
            level, width = window
            scan = ScaleIntensityRange(level - width / 2, level + width / 2, 0.0, 1.0, clip=True)(image)
        d, h, w = config.size
        if config.size_mode == "resize":
            scan = Resize(spatial_size=(w, h, d), mode="trilinear" if config.mode == "bilinear" else "nearest")(scan)
        else:
            scan = ResizeWithPadOrCrop(spatial_size=(w, h, d))(scan)
        voxels = np.clip(np.rint(np.asarray(scan.array[0], dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
        affine = np.asarray(scan.affine, dtype=float)
        swapped = affine.copy()
        swapped[:, 0], swapped[:, 2] = affine[:, 2], affine[:, 0]
        out.append((name, voxels.transpose(2, 1, 0), swapped))
    return out


def _rotation(rng: np.random.Generator, degrees: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


PLANES = {  # (row direction, column direction, slice direction) in LPS, as scanners write them
    "axial": ([1, 0, 0], [0, 1, 0], [0, 0, 1]),
    "coronal": ([1, 0, 0], [0, 0, -1], [0, -1, 0]),
    "sagittal": ([0, 1, 0], [0, 0, -1], [1, 0, 0]),
    "axial_reversed": ([-1, 0, 0], [0, 1, 0], [0, 0, -1]),  # flipped rows and slices written foot to head
}


def smooth_volume(seed: int, plane: str, *, oblique: float = 0.0, shear: float = 0.0, ct: bool = False) -> Volume:
    """A smooth random volume [slices, rows, cols] on an odd grid (spacing, origin, obliquity, gantry-tilt shear)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers([9, 20, 18], [16, 44, 40]))
    coarse = rng.normal(size=(4, 5, 5))
    zoom = [n / c for n, c in zip(shape, coarse.shape, strict=True)]
    from scipy import ndimage

    array = ndimage.zoom(coarse, zoom, order=3)[: shape[0], : shape[1], : shape[2]]
    array = (array * 300.0 + 40.0) if ct else (array * 80.0 + 300.0)
    rows, cols, slices = (np.array(v, dtype=float) for v in PLANES[plane])
    spacing = rng.uniform([2.0, 1.8, 1.8], [6.0, 2.6, 2.6])
    r = _rotation(rng, oblique)
    affine = np.eye(4)
    affine[:3, 0] = r @ rows * spacing[2]
    affine[:3, 1] = r @ cols * spacing[1]
    affine[:3, 2] = r @ (slices + shear * cols) / np.linalg.norm(slices + shear * cols) * spacing[0]
    affine[:3, 3] = rng.uniform(-90, 90, size=3)
    return Volume(array.astype(np.float32), affine)
