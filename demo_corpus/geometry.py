"""Patient geometry: where the subject's head lies in the scanner, and the voxel grid of each acquisition.

Coordinates follow DICOM: patient LPS millimetres (x to the patient's left, y posterior, z superior). The MNI152
template is RAS, so a subject's `Pose` flips x and y besides rotating, scaling and shifting the head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Vec3 = tuple[float, float, float]
Mat3 = tuple[Vec3, Vec3, Vec3]

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])

#: Head bounding box in MNI millimetres (the template ends at z = -72, under the cerebellum).
HEAD_BOX_MNI: dict[str, tuple[float, float]] = {"x": (-84.0, 84.0), "y": (-120.0, 86.0), "z": (-66.0, 96.0)}
_PLANE_AXIS = {"axial": "z", "sagittal": "x", "coronal": "y"}

#: IOP directions (row direction, column direction) of each plane without obliquity, in LPS.
_PLANE_DIRECTIONS: dict[str, tuple[Vec3, Vec3]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0)),
}


def _rotation(axis: NDArray[np.float64], angle_deg: float) -> NDArray[np.float64]:
    """Rodrigues rotation matrix about a unit axis."""
    a = np.radians(angle_deg)
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(a) * kx + (1.0 - np.cos(a)) * (kx @ kx)


def _as_mat3(m: NDArray[np.float64]) -> Mat3:
    return (
        (float(m[0, 0]), float(m[0, 1]), float(m[0, 2])),
        (float(m[1, 0]), float(m[1, 1]), float(m[1, 2])),
        (float(m[2, 0]), float(m[2, 1]), float(m[2, 2])),
    )


def as_vec3(v: NDArray[np.floating] | Sequence[float]) -> Vec3:
    """Three numbers as a plain-float tuple (hashable, picklable, exact in reprs)."""
    return (float(v[0]), float(v[1]), float(v[2]))


@dataclass(frozen=True)
class Pose:
    """Affine map from template (MNI, RAS mm) to patient coordinates (LPS mm): ``lps = matrix @ mni + offset``."""

    matrix: Mat3
    offset: Vec3

    def to_patient(self, mni: NDArray[np.float64]) -> NDArray[np.float64]:
        """Map ``[..., 3]`` template points to patient coordinates."""
        return mni @ np.asarray(self.matrix).T + np.asarray(self.offset)

    def to_template(self, lps: NDArray[np.float64]) -> NDArray[np.float64]:
        """Map ``[..., 3]`` patient points back to template coordinates."""
        inverse = np.linalg.inv(np.asarray(self.matrix))
        return (lps - np.asarray(self.offset)) @ inverse.T


def sample_pose(rng: np.random.Generator) -> Pose:
    """A subject pose: a rotation of a few degrees, ±5% scale per axis, and a table shift of some millimetres."""
    rotation = np.eye(3)
    for axis in np.eye(3):
        rotation = _rotation(axis, float(np.clip(rng.normal(0.0, 2.5), -7.0, 7.0))) @ rotation
    scale = np.diag(rng.uniform(0.95, 1.05, size=3))
    matrix = rotation @ scale @ _RAS_TO_LPS
    offset = np.array([rng.uniform(-8, 8), rng.uniform(-12, 12), rng.uniform(-20, 20)])
    return Pose(matrix=_as_mat3(matrix), offset=as_vec3(offset))


@dataclass(frozen=True)
class Grid:
    """Voxel grid of one stack of parallel slices, as DICOM describes it.

    Attributes:
        row_dir: Direction of increasing column index (first triplet of ImageOrientationPatient).
        col_dir: Direction of increasing row index (second triplet).
        origin: ImagePositionPatient of the first slice (centre of its first pixel).
        slice_step: Vector from one slice's position to the next (± normal x spacing).
        rows: Rows of each image.
        cols: Columns of each image.
        n_slices: Number of slices.
        pixel_spacing: (between rows, between columns) in mm, the DICOM PixelSpacing order.
        thickness: Nominal SliceThickness in mm.
    """

    row_dir: Vec3
    col_dir: Vec3
    origin: Vec3
    slice_step: Vec3
    rows: int
    cols: int
    n_slices: int
    pixel_spacing: tuple[float, float]
    thickness: float

    @property
    def normal(self) -> NDArray[np.float64]:
        """Slice normal, row_dir x col_dir."""
        return np.cross(np.asarray(self.row_dir), np.asarray(self.col_dir))

    @property
    def spacing(self) -> float:
        """Distance between successive slice centres."""
        return float(np.linalg.norm(self.slice_step))

    def orientation(self) -> list[float]:
        """ImageOrientationPatient, rounded as scanners write it."""
        return [round(v, 6) for v in (*self.row_dir, *self.col_dir)]

    def positions(self) -> NDArray[np.float64]:
        """ImagePositionPatient of every slice, ``[S, 3]``."""
        steps = np.arange(self.n_slices, dtype=np.float64)[:, None]
        return np.asarray(self.origin) + steps * np.asarray(self.slice_step)

    def points(self, pose: Pose | None = None) -> NDArray[np.float32]:
        """Coordinates of every voxel centre ``[S, R, C, 3]``: patient LPS, or template space given a pose."""
        origin, step = np.asarray(self.origin), np.asarray(self.slice_step)
        down = np.asarray(self.col_dir) * self.pixel_spacing[0]
        across = np.asarray(self.row_dir) * self.pixel_spacing[1]
        if pose is not None:  # the map is affine: transform the origin and the three steps, not every point
            inverse = np.linalg.inv(np.asarray(pose.matrix))
            origin = inverse @ (origin - np.asarray(pose.offset))
            step, down, across = inverse @ step, inverse @ down, inverse @ across
        s = np.arange(self.n_slices, dtype=np.float32)[:, None, None, None] * step.astype(np.float32)
        r = np.arange(self.rows, dtype=np.float32)[None, :, None, None] * down.astype(np.float32)
        c = np.arange(self.cols, dtype=np.float32)[None, None, :, None] * across.astype(np.float32)
        return (origin.astype(np.float32) + s) + (r + c)  # [S, R, C, 3]


def plan_grid(
    rng: np.random.Generator,
    pose: Pose,
    plane: str,
    matrix: int,
    thickness: float,
    gap: float,
    coverage_scale: float = 1.0,
    oblique_deg: float = 0.0,
) -> Grid:
    """Place a stack of slices over the subject's head, as a radiographer does on the localizer.

    Args:
        rng: Draws the field of view, the phase-direction share, the slice order and small offsets.
        pose: The subject's pose; the stack is centred on the head.
        plane: ``axial``, ``sagittal`` or ``coronal``.
        matrix: Rows of each image (columns follow from the rectangular field of view).
        thickness: Slice thickness in mm.
        gap: Gap between slices in mm (spacing = thickness + gap).
        coverage_scale: Multiplies the head extent along the normal (below 1 cuts the vertex or cerebellum).
        oblique_deg: Tilt of the stack about its row direction (AC-PC alignment), in degrees.
    """
    row, col = (np.asarray(v) for v in _PLANE_DIRECTIONS[plane])
    if oblique_deg:
        tilt = _rotation(row, oblique_deg) @ _rotation(col, float(rng.uniform(-2.0, 2.0)))
        row, col = np.round(tilt @ row, 6), np.round(tilt @ col, 6)
    normal = np.cross(row, col)
    box = HEAD_BOX_MNI
    centre_mni = np.array([np.mean(box["x"]), np.mean(box["y"]), np.mean(box["z"])])
    centre = pose.to_patient(centre_mni) + rng.uniform(-4.0, 4.0, size=3)
    lo, hi = box[_PLANE_AXIS[plane]]
    spacing = thickness + gap
    n_slices = max(3, round((hi - lo) * coverage_scale / spacing))
    fov = float(rng.uniform(220.0, 250.0)) if plane == "axial" else float(rng.uniform(230.0, 256.0))
    phase_share = float(rng.choice([0.75, 0.8, 0.875, 1.0])) if plane == "axial" else 1.0
    rows = matrix
    cols = max(8, 2 * round(matrix * phase_share / 2))
    pixel = round(fov / rows, 4)
    order = 1.0 if rng.random() < 0.75 else -1.0  # some scanners acquire top-down
    step = order * spacing * normal
    origin = centre - (n_slices - 1) / 2 * step - (rows - 1) / 2 * pixel * col - (cols - 1) / 2 * pixel * row
    return Grid(
        row_dir=as_vec3(row),
        col_dir=as_vec3(col),
        origin=as_vec3(np.round(origin, 4)),
        slice_step=as_vec3(step),
        rows=rows,
        cols=cols,
        n_slices=n_slices,
        pixel_spacing=(pixel, pixel),
        thickness=thickness,
    )
