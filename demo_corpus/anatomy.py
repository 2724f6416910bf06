"""Subject anatomy from the MNI152 template that nilearn ships: tissue maps, skull and scalp, vessels.

The template is skull-stripped, so the layers outside the brain (CSF rim, dura, skull tables, marrow, scalp fat)
are laid out by distance from the brain surface; a fixed random field varies their thickness. Vessels (cortical
veins, the superior sagittal sinus, choroid plexus) are synthesised once from fixed seeds, so every subject has
the same vascular tree; they enhance on T1 post-contrast and are dark on SWI.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

logger = logging.getLogger(__name__)

#: Channels of the sampled anatomy, in the order of the packed array.
CHANNELS = ("gm", "wm", "brain", "dout", "vessel")
_DOUT_UNIT_MM = 0.1  # dout is stored as uint8 tenths of a millimetre, so it saturates at 25.5 mm (air)
_UNIT = np.arange(256, dtype=np.float32) * (1.0 / 255.0)  # stored byte -> probability
_DOUT_MM = np.arange(256, dtype=np.float32) * _DOUT_UNIT_MM  # stored byte -> millimetres
_VESSEL_SEED = 1909  # fixed: the vascular tree is part of the template, not of a subject


@dataclass(frozen=True)
class Template:
    """MNI152 tissue maps on the template grid (RAS mm); used to place lesions and to build `Anatomy`.

    Attributes:
        gm: Grey-matter probability ``[X, Y, Z]``.
        wm: White-matter probability.
        brain: Brain mask (0/1), CSF spaces included.
        origin: MNI coordinates of voxel (0, 0, 0).
        resolution: Voxel size in mm.
        xyz: MNI coordinates of every voxel ``[3, X, Y, Z]`` (for placement conditions).
        surface: The outer 2-voxel shell of the brain mask.
    """

    gm: NDArray[np.float32]
    wm: NDArray[np.float32]
    brain: NDArray[np.float32]
    origin: tuple[float, float, float]
    resolution: float
    xyz: NDArray[np.float32]
    surface: NDArray[np.bool_]

    def to_mni(self, index: NDArray[np.int64]) -> NDArray[np.float64]:
        """Voxel indices ``[N, 3]`` to MNI millimetres."""
        return np.asarray(self.origin) + index * self.resolution

    def to_index(self, mni: NDArray[np.float64]) -> NDArray[np.int64]:
        """MNI millimetres ``[..., 3]`` to the nearest voxel indices (may lie outside the grid)."""
        return np.rint((mni - np.asarray(self.origin)) / self.resolution).astype(np.int64)


@functools.lru_cache(maxsize=2)
def load_template(resolution_mm: int) -> Template:
    """Load the MNI152 2009 T1 tissue maps shipped with nilearn (offline)."""
    from nilearn import datasets  # heavy import: only when a corpus is generated

    gm_img = datasets.load_mni152_gm_template(resolution=resolution_mm)
    gm = np.asarray(gm_img.get_fdata(), dtype=np.float32)
    wm = np.asarray(datasets.load_mni152_wm_template(resolution=resolution_mm).get_fdata(), dtype=np.float32)
    brain = np.asarray(datasets.load_mni152_brain_mask(resolution=resolution_mm).get_fdata() > 0.5, np.float32)
    affine = gm_img.affine
    origin = (float(affine[0, 3]), float(affine[1, 3]), float(affine[2, 3]))
    resolution = float(affine[0, 0])
    xyz = np.asarray(origin, np.float32)[:, None, None, None] + np.indices(gm.shape, dtype=np.float32) * resolution
    surface = (brain > 0.5) & ~ndimage.binary_erosion(brain > 0.5, iterations=2)
    return Template(gm, wm, brain, origin, resolution, xyz, surface)


def _smooth_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> NDArray[np.float32]:
    """Gaussian-filtered white noise scaled to unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return (field / field.std()).astype(np.float32)


def _vessels(t: Template, csf: NDArray[np.float32], dout: NDArray[np.float32]) -> NDArray[np.float32]:
    """Vessel map in [0, 1]: cortical veins, superior sagittal sinus and choroid plexus."""
    rng = np.random.default_rng(_VESSEL_SEED)
    depth = ndimage.distance_transform_edt(t.brain > 0.5, sampling=t.resolution).astype(np.float32)
    # The intersection of two noise isosurfaces is a set of curves: tubes that wander like veins.
    n1, n2 = (_smooth_noise(t.gm.shape, 5.0 / t.resolution, rng) for _ in range(2))
    cortical = np.exp(-(n1**2 + n2**2) / (2 * 0.16**2))
    sulcal = np.clip(csf * 2.5 + (depth == 0), 0, 1) * (depth < 30.0) * (dout < 2.0)
    m1, m2 = (_smooth_noise(t.gm.shape, 3.0 / t.resolution, rng) for _ in range(2))
    medullary = 0.7 * np.exp(-(m1**2 + m2**2) / (2 * 0.12**2)) * np.clip((t.wm - 0.5) * 2.0, 0, 1)
    veins = np.maximum(cortical * sulcal, medullary)
    x, y, z = t.xyz
    sinus = np.exp(-(x**2) / (2 * 2.5**2)) * ((dout > 0.5) & (dout < 5.0)) * (z > -5.0) * (y > -105.0)
    choroid = np.zeros_like(veins)
    for cx in (-27.0, 27.0):
        r2 = (x - cx) ** 2 + (y + 40.0) ** 2 + (z - 14.0) ** 2
        choroid += np.exp(-r2 / (2 * 6.0**2)) * np.clip(csf * 1.5 - 0.3, 0, 1)
    return np.clip(np.maximum(np.maximum(veins, sinus), choroid), 0.0, 1.0).astype(np.float32)


class Anatomy:
    """The template's tissue channels packed for fast nearest-neighbour sampling at arbitrary points.

    Built once per process (a few seconds at 1 mm); every subject is a different `Pose` and warp of it.
    """

    def __init__(self, template: Template) -> None:
        brain = ndimage.gaussian_filter(template.brain, 0.6 / template.resolution)
        csf = np.clip(brain - template.gm - template.wm, 0.0, 1.0)
        dout = ndimage.distance_transform_edt(template.brain < 0.5, sampling=template.resolution)
        # Layer thickness varies over the head (a thick occiput, thin temporal squama).
        thickness = 1.0 + 0.15 * _smooth_noise(template.gm.shape, 12.0 / template.resolution, np.random.default_rng(7))
        dout = (dout / thickness).astype(np.float32)
        vessel = _vessels(template, csf, dout)
        maps = (template.gm, template.wm, brain, dout / (_DOUT_UNIT_MM * 255.0), vessel)
        packed = np.stack([np.clip(np.rint(m * 255.0), 0, 255) for m in maps], axis=-1).astype(np.uint8)
        self.shape = template.gm.shape
        self.origin = np.asarray(template.origin)
        self.resolution = template.resolution
        self._flat = np.concatenate([packed.reshape(-1, len(CHANNELS)), [[0, 0, 0, 255, 0]]]).astype(np.uint8)
        logger.debug("anatomy packed: %s voxels at %.0f mm", packed.shape[:3], template.resolution)

    def sample(self, mni: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
        """Sample every channel at template points ``[..., 3]``; points outside the template are air.

        Returns:
            Channel name -> values with the points' leading shape: probabilities in [0, 1] for ``gm``, ``wm``,
            ``brain`` and ``vessel``, millimetres for ``dout`` (distance outside the brain, 25.5 = far).
        """
        scaled = (mni - self.origin.astype(np.float32)) * np.float32(1.0 / self.resolution) + np.float32(0.5)
        nx, ny, nz = self.shape
        i, j, k = (scaled[..., a] for a in range(3))
        inside = (i >= 0) & (i < nx) & (j >= 0) & (j < ny) & (k >= 0) & (k < nz)
        with np.errstate(invalid="ignore"):  # NaN or far-off points: any index, replaced by the air row below
            ii, jj, kk = (a.astype(np.int32) for a in (i, j, k))
        # int32 (a template has far fewer than 2**31 voxels; an overflow outside it is replaced by the air row)
        flat = (ii * np.int32(ny) + jj) * np.int32(nz) + kk  # nearest voxel
        flat[~inside] = len(self._flat) - 1  # the air row
        values = np.take(self._flat, flat, axis=0)  # [..., C]
        # per-value tables: the same float32 products as converting each channel and scaling it, in one gather
        out = {name: _UNIT[values[..., c]] for c, name in enumerate(CHANNELS)}
        out["dout"] = _DOUT_MM[values[..., CHANNELS.index("dout")]]
        return out


@functools.lru_cache(maxsize=2)
def load_anatomy(resolution_mm: int) -> Anatomy:
    """The process-wide `Anatomy` at a template resolution (built on first use, then cached)."""
    return Anatomy(load_template(resolution_mm))
