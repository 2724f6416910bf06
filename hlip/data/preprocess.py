"""Per-modality preprocessing with MONAI transforms: canonical orientation with the through-plane axis as depth,
resampling to the target spacing, crop/pad (or resize) to the model's input size, intensity to [0, 1], stored as
uint8 as upstream HLIP does.

CT is kept in Hounsfield units until each window (brain, blood, bone by default) makes its own scan, as HLIP does
for head CT; MRI is clipped at the 0.5/99.5 percentiles and scaled. MONAI is imported inside the functions: it
costs seconds to import and the CLI must start instantly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hlip.data.volume import Volume

# (W, H, D) axis codes per plane, MONAI convention (each letter is where the index grows towards): images read
# in radiological convention, and the through-plane axis of the acquisition is always depth.
DEFAULT_AXCODES = {"axial": "LPS", "coronal": "LIP", "sagittal": "PIL"}
DEFAULT_CT_WINDOWS = {"brain": (40.0, 80.0), "blood": (80.0, 200.0), "bone": (600.0, 2800.0)}  # (level, width) HU
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
AIR_HU = -1024.0


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing settings (`ingest.preprocess` in params.yaml).

    Attributes:
        size: Output (depth, height, width) in voxels. Upstream HLIP brain MRI uses 48 x 224 x 224.
        spacing: Target (depth, height, width) spacing in mm; None keeps the native spacing.
        size_mode: "crop_pad" keeps the physical scale (centre crop or pad), "resize" stretches to `size`.
        mr_percentiles: Lower and upper percentile at which MRI intensities are clipped before scaling.
        ct_windows: CT windows as {name: (level, width)} in HU; each window becomes its own scan.
        axcodes: (W, H, D) orientation codes per acquisition plane; oblique/unknown planes use the axial codes.
        mode: Interpolation for resampling ("bilinear" or "nearest").
    """

    size: tuple[int, int, int] = (32, 64, 64)
    spacing: tuple[float, float, float] | None = (4.0, 3.5, 3.5)
    size_mode: str = "crop_pad"
    mr_percentiles: tuple[float, float] = (0.5, 99.5)
    ct_windows: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_CT_WINDOWS))
    axcodes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_AXCODES))
    mode: str = "bilinear"

    def __post_init__(self) -> None:
        if self.size_mode not in ("crop_pad", "resize"):
            raise ValueError(f"size_mode must be 'crop_pad' or 'resize', not {self.size_mode!r}")
        if any(s <= 0 for s in self.size) or (self.spacing is not None and any(s <= 0 for s in self.spacing)):
            raise ValueError("size and spacing must be positive")
        if not 0 <= self.mr_percentiles[0] < self.mr_percentiles[1] <= 100:
            raise ValueError("mr_percentiles must be 0 <= lower < upper <= 100")
        if set(DEFAULT_AXCODES) - set(self.axcodes):
            raise ValueError(f"axcodes needs {sorted(DEFAULT_AXCODES)}")


@dataclass(frozen=True)
class PreparedScan:
    """A model-ready scan.

    Attributes:
        window: The CT window name, or "" for MRI.
        array: uint8 voxels, shape [depth, height, width].
        affine: 4x4 matrix from voxel index (d, h, w) to RAS mm.
    """

    window: str
    array: np.ndarray
    affine: np.ndarray

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(depth, height, width) voxel size in mm."""
        d, h, w = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(d), float(h), float(w)


def preprocess(volume: Volume, modality: str, plane: str, config: PreprocessConfig) -> list[PreparedScan]:
    """Turn a volume into model-ready scans (one for MRI, one per window for CT).

    Args:
        volume: The rescaled volume (HU for CT).
        modality: "CT" or "MR".
        plane: Acquisition plane, which picks the orientation codes.
        config: Settings.

    Returns:
        The prepared scans.
    """
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Orientation, ScaleIntensityRange, Spacing

    data = torch.from_numpy(np.ascontiguousarray(volume.array.transpose(2, 1, 0))[None])  # [1, i, j, k]
    image: Any = MetaTensor(data, affine=torch.from_numpy(LPS_TO_RAS @ volume.affine))
    codes = config.axcodes.get(plane, config.axcodes["axial"])
    image = Orientation(axcodes=codes, labels=(("L", "R"), ("P", "A"), ("I", "S")))(image)  # [1, W, H, D]
    if modality != "CT":
        # what ScaleIntensityRangePercentiles does, with numpy's partition-based percentile: torch.quantile sorts
        # the whole volume and took most of the ingest time
        low, high = (float(v) for v in np.percentile(volume.array, config.mr_percentiles))
        image = ScaleIntensityRange(low, high if high > low else low + 1.0, 0.0, 1.0, clip=True)(image)
    if config.spacing is not None:
        d, h, w = config.spacing
        # Outside the field of view the resampler pads with zeros: fine for MRI (0 is the scaled minimum), but 0 HU
        # is water and draws soft-tissue-grey edges in CT windows. CT is shifted so that zero is air (-1024 HU, or
        # the series minimum when lower), resampled, and shifted back (interpolation commutes with the shift).
        spacing = Spacing(pixdim=(w, h, d), mode=config.mode, padding_mode="zeros")
        if modality == "CT":
            fill = min(AIR_HU, float(volume.array.min()))
            image = spacing(image - fill) + fill
        else:
            image = spacing(image)
    if modality != "CT":
        return [_finish("", image, config)]
    scans = []
    for name, (level, width) in config.ct_windows.items():
        windowed = ScaleIntensityRange(level - width / 2, level + width / 2, 0.0, 1.0, clip=True)(image)
        scans.append(_finish(name, windowed, config))
    return scans


def _finish(window: str, image: Any, config: PreprocessConfig) -> PreparedScan:
    from monai.transforms import Resize, ResizeWithPadOrCrop

    d, h, w = config.size
    if config.size_mode == "resize":
        image = Resize(spatial_size=(w, h, d), mode="trilinear" if config.mode == "bilinear" else "nearest")(image)
    else:
        image = ResizeWithPadOrCrop(spatial_size=(w, h, d))(image)
    array = image.array if hasattr(image, "array") else np.asarray(image)
    voxels = np.clip(np.rint(np.asarray(array[0], dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    affine = np.asarray(image.affine, dtype=float)
    out_affine = affine.copy()
    out_affine[:, 0], out_affine[:, 2] = affine[:, 2], affine[:, 0]  # index order (W, H, D) -> (D, H, W)
    return PreparedScan(window, np.ascontiguousarray(voxels.transpose(2, 1, 0)), out_affine)


def warm_up() -> None:
    """Import MONAI now (before a process pool forks, so workers share the import instead of paying it each)."""
    import monai.transforms  # noqa: F401
