"""Per-modality preprocessing: canonical orientation with the through-plane axis as depth, resampling to the target
spacing, crop/pad (or resize) to the model's input size, intensity to [0, 1], stored as uint8 as upstream HLIP does.

CT is kept in Hounsfield units until each window (brain, blood, bone by default) makes its own scan, as HLIP does
for head CT; MRI is clipped at the 0.5/99.5 percentiles and scaled. The geometry is `hlip.data.resample` (MONAI's
conventions, in numpy: MONAI's import alone cost more per ingest process than resampling a thousand scans).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hlip.data.resample import orient, pad_or_crop, resample, resize, target_grid
from hlip.data.volume import Volume, spacing_of

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
        d, h, w = spacing_of(self.affine)
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
    codes = config.axcodes.get(plane, config.axcodes["axial"])
    image, affine = orient(volume.array.transpose(2, 1, 0), LPS_TO_RAS @ volume.affine, codes)  # [W, H, D]
    if modality != "CT":
        # clipped at the percentiles, with numpy's partition-based percentile (a full sort took most of the time)
        low, high = (float(v) for v in np.percentile(volume.array, config.mr_percentiles))
        image = _scale_range(image, low, high if high > low else low + 1.0)
    if config.spacing is not None:
        d, h, w = config.spacing
        shape, grid = target_grid(image.shape, affine, (w, h, d))
        # Outside the field of view the resampler pads with zeros: fine for MRI (0 is the scaled minimum), but 0 HU
        # is water and draws soft-tissue-grey edges in CT windows. CT is shifted so that zero is air (-1024 HU, or
        # the series minimum when lower), resampled, and shifted back (interpolation commutes with the shift).
        if modality == "CT":
            fill = np.float32(min(AIR_HU, float(volume.array.min())))
            image = resample(image - fill, affine, shape, grid, config.mode) + fill
        else:
            image = resample(image, affine, shape, grid, config.mode)
        affine = grid
    if modality != "CT":
        return [_finish("", image, affine, config)]
    return [
        _finish(name, _scale_range(image, level - width / 2, level + width / 2), affine, config)
        for name, (level, width) in config.ct_windows.items()
    ]


def _scale_range(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] to [0, 1] and clip, in the image's own precision."""
    dtype = image.dtype.type
    return np.clip((image - dtype(low)) / dtype(high - low), dtype(0.0), dtype(1.0))


def _finish(window: str, image: np.ndarray, affine: np.ndarray, config: PreprocessConfig) -> PreparedScan:
    d, h, w = config.size
    if config.size_mode == "resize":
        image, affine = resize(image, affine, (w, h, d), config.mode)
    else:
        image, affine = pad_or_crop(image, affine, (w, h, d))
    voxels = np.clip(np.rint(np.asarray(image, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    out_affine = affine.copy()
    out_affine[:, 0], out_affine[:, 2] = affine[:, 2], affine[:, 0]  # index order (W, H, D) -> (D, H, W)
    return PreparedScan(window, np.ascontiguousarray(voxels.transpose(2, 1, 0)), out_affine)


def warm_up() -> None:
    """Import what preprocessing imports lazily now (before a process pool forks, so workers share the import)."""
    import scipy.ndimage  # noqa: F401
