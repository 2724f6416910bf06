"""Volume building: from the frames of one series to ordered, checked, rescaled 3D arrays.

A series is first split into stacks: frames that differ in b-value or echo are different images of the same
anatomy (DWI b0 and b1000 often share one series), and frames of another matrix or orientation are either a
second stack (when there are enough of them) or stray slices (quarantined one by one, the rest is kept). Each
stack is ordered by position along the slice normal (never by InstanceNumber, which scanners number in any
order) and checked for duplicate positions, gaps and irregular steps. Pixels are read only for stacks that pass,
with RescaleSlope/Intercept applied per frame.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hlip.data.dicom import FrameInfo, Instance, spacing_values
from hlip.data.quarantine import Reason, RejectedError


def spacing_of(affine: np.ndarray) -> np.ndarray:
    """Voxel size along each index axis of a 4x4 affine (its column norms), in mm."""
    return np.sqrt(np.sum(np.asarray(affine, dtype=float)[:3, :3] ** 2, axis=0))


@dataclass(frozen=True)
class VolumeConfig:
    """Stack checks (`ingest.volume` in params.yaml).

    Attributes:
        gap_tolerance: A step between neighbouring slices longer than this times the median step is a gap.
        irregular_tolerance: A step shorter than this times the median step (but not a duplicate) is irregular.
        duplicate_mm: Slices closer than this along the normal sit at the same position.
        orientation_decimals: Orientation cosines are compared after rounding to this many decimals.
    """

    gap_tolerance: float = 1.5
    irregular_tolerance: float = 0.5
    duplicate_mm: float = 0.01
    orientation_decimals: int = 3


@dataclass(frozen=True)
class LimitsConfig:
    """Physical plausibility limits (`ingest.limits` in params.yaml); a file beyond them is quarantined.

    Attributes:
        max_abs_slope: Largest |RescaleSlope|; a zero or non-finite slope is always rejected (never taken as 1).
        max_abs_intercept: Largest |RescaleIntercept|.
        max_spacing_mm: Largest PixelSpacing or SliceThickness; zero, negative or non-finite ones are rejected.
    """

    max_abs_slope: float = 1.0e4
    max_abs_intercept: float = 1.0e5
    max_spacing_mm: float = 100.0

    def __post_init__(self) -> None:
        if min(self.max_abs_slope, self.max_abs_intercept, self.max_spacing_mm) <= 0:
            raise ValueError("ingest.limits values must be positive")


def check_plausible(instance: Instance, limits: LimitsConfig) -> None:
    """Reject a file whose rescale or spacing values cannot describe a real image.

    Raises:
        RejectedError: `implausible_rescale` (slope zero, non-finite or too large; intercept non-finite or too
            large) or `implausible_spacing` (PixelSpacing/SliceThickness not positive, non-finite or too large).
    """
    for f in instance.frames:
        slope_ok = math.isfinite(f.slope) and f.slope != 0 and abs(f.slope) <= limits.max_abs_slope
        if not (slope_ok and math.isfinite(f.intercept) and abs(f.intercept) <= limits.max_abs_intercept):
            message = f"RescaleSlope {f.slope:g} / RescaleIntercept {f.intercept:g} outside the limits"
            raise RejectedError(Reason.IMPLAUSIBLE_RESCALE, message)
    for keyword, value in spacing_values(instance.header):
        if not (math.isfinite(value) and 0 < value <= limits.max_spacing_mm):
            message = f"{keyword} {value:g} mm outside (0, {limits.max_spacing_mm:g}]"
            raise RejectedError(Reason.IMPLAUSIBLE_SPACING, message)


@dataclass(frozen=True)
class SliceRef:
    """One frame of one file, as a slice of a stack."""

    path: str
    info: FrameInfo
    rows: int
    columns: int


@dataclass
class Stack:
    """Frames that form one volume.

    Attributes:
        label: Tells the stacks of one series apart ("" when the series is one stack; "b1000", "echo2", "part2").
        slices: Its slices, in position order after `order_stack`.
    """

    label: str
    slices: list[SliceRef] = field(default_factory=list)

    @property
    def paths(self) -> list[str]:
        """The distinct files it reads."""
        return sorted({s.path for s in self.slices})


@dataclass(frozen=True)
class Stray:
    """Slices split off a series and rejected, with the reason."""

    slices: list[SliceRef]
    reason: Reason
    message: str


@dataclass(frozen=True)
class Volume:
    """A rescaled volume.

    Attributes:
        array: Values after rescale, shape [slices, rows, columns], float32.
        affine: 4x4 matrix from voxel index (column i, row j, slice k) to patient LPS coordinates in mm.
        b_value: The stack's b-value, if any.
    """

    array: np.ndarray
    affine: np.ndarray
    b_value: float | None = None

    @property
    def spacing(self) -> tuple[float, float, float]:
        """(slice step, row spacing, column spacing) in mm."""
        i, j, k = spacing_of(self.affine)  # columns: i (column step), j (row step), k (slice)
        return float(k), float(j), float(i)


def split_series(
    instances: Sequence[Instance], min_slices: int, config: VolumeConfig
) -> tuple[list[Stack], list[Stray]]:
    """Split a series into stacks and stray slices.

    Args:
        instances: The series' instances.
        min_slices: A geometry group smaller than this, beside a larger one, is stray slices.
        config: Check settings.

    Returns:
        The stacks (each to be ordered and checked) and the rejected stray slices.
    """
    by_signal: dict[tuple[float | None, int | None], list[SliceRef]] = defaultdict(list)
    for inst in instances:
        for info in inst.frames:
            key = (None if info.b_value is None else round(info.b_value), info.echo)
            by_signal[key].append(SliceRef(inst.path, info, inst.rows, inst.columns))
    stacks: list[Stack] = []
    strays: list[Stray] = []
    signals = sorted(by_signal, key=lambda k: (k[0] if k[0] is not None else -1, k[1] or 0))
    multi_b, multi_echo = len({k[0] for k in signals}) > 1, len({k[1] for k in signals}) > 1
    for b, echo in signals:
        label = (f"b{b}" if multi_b else "") + (f"echo{echo}" if multi_echo else "")
        groups = _geometry_groups(by_signal[(b, echo)], config)
        ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), str(kv[0])))
        for rank, (geometry, members) in enumerate(ranked):
            if rank > 0 and len(members) < min_slices:
                what = "no position/orientation" if geometry is None else "another matrix or orientation"
                strays.append(Stray(members, Reason.INCONSISTENT_SLICE, f"slice with {what} than its series"))
                continue
            stacks.append(Stack(label + (f"part{rank + 1}" if rank else ""), members))
    return stacks, strays


def _geometry_groups(slices: list[SliceRef], config: VolumeConfig) -> dict[object, list[SliceRef]]:
    groups: dict[object, list[SliceRef]] = defaultdict(list)
    for s in slices:
        info = s.info
        if info.position is None or info.orientation is None or info.spacing is None:
            groups[None].append(s)
            continue
        orient = tuple(np.round(info.orientation, config.orientation_decimals) + 0.0)
        groups[(orient, s.rows, s.columns, tuple(np.round(info.spacing, 3)))].append(s)
    return groups


def order_stack(stack: Stack, min_slices: int, config: VolumeConfig) -> Stack:
    """Order slices along the normal and check the stack.

    Raises:
        RejectedError: Missing geometry, too few slices, duplicate positions, a gap or irregular steps.
    """
    if any(s.info.position is None or s.info.orientation is None for s in stack.slices):
        raise RejectedError(Reason.MISSING_GEOMETRY, "no ImagePositionPatient/ImageOrientationPatient")
    if len(stack.slices) < min_slices:
        raise RejectedError(Reason.TOO_SHORT, f"{len(stack.slices)} slices < min_slices {min_slices}")
    normal = _normal(stack.slices[0].info)
    depth = np.array([np.dot(normal, s.info.position) for s in stack.slices])  # type: ignore[arg-type]
    order = np.argsort(depth, kind="stable")
    steps = np.diff(depth[order])
    median = float(np.median(steps)) if len(steps) else 0.0  # one slice: no step to compare
    if np.any(steps < config.duplicate_mm):
        n = int(np.sum(steps < config.duplicate_mm))
        raise RejectedError(Reason.DUPLICATE_POSITION, f"{n} slice(s) share a position with another slice")
    if np.any(steps > config.gap_tolerance * median):
        worst = float(steps.max())
        raise RejectedError(Reason.SLICE_GAP, f"gap of {worst:.2f} mm where the step is {median:.2f} mm")
    if np.any(steps < config.irregular_tolerance * median):
        raise RejectedError(Reason.IRREGULAR_SPACING, f"steps from {steps.min():.2f} to {steps.max():.2f} mm")
    return Stack(stack.label, [stack.slices[i] for i in order])


def _normal(info: FrameInfo) -> np.ndarray:
    o = np.asarray(info.orientation, dtype=float)
    n = np.cross(o[:3], o[3:])
    return n / (np.linalg.norm(n) or 1.0)


def build_volume(stack: Stack, pixels: Mapping[str, np.ndarray]) -> Volume:
    """Assemble an ordered stack into a rescaled volume.

    Args:
        stack: An ordered, checked stack.
        pixels: Decoded pixels per path, shape [frames, rows, columns].

    Returns:
        The volume, values as float32 after each frame's rescale slope and intercept.
    """
    planes = []
    for s in stack.slices:
        frame = pixels[s.path][s.info.frame or 0].astype(np.float32)
        planes.append(frame * np.float32(s.info.slope) + np.float32(s.info.intercept))
    array = np.stack(planes)  # [k, j, i] = [slices, rows, columns]
    first, last = stack.slices[0].info, stack.slices[-1].info
    o = np.asarray(first.orientation, dtype=float)
    row_dir, col_dir = o[:3], o[3:]  # row_dir: along a row (column index i grows); col_dir: down a column (j)
    row_spacing, col_spacing = first.spacing  # type: ignore[misc]  # PixelSpacing = (between rows, between columns)
    n = len(stack.slices)
    p0, p1 = np.asarray(first.position, dtype=float), np.asarray(last.position, dtype=float)
    slice_vec = (p1 - p0) / (n - 1) if n > 1 else _normal(first)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * col_spacing
    affine[:3, 1] = col_dir * row_spacing
    affine[:3, 2] = slice_vec
    affine[:3, 3] = p0
    return Volume(array, affine, first.b_value)
