"""Pixel values of a planned series: sample the subject's anatomy on the acquisition grid, draw the findings,
then add the scanner's bias field and Rician noise and quantise to stored integers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from demo_corpus.anatomy import Anatomy
from demo_corpus.contrast import TISSUE, LesionMask, apply_lesions, dwi_b1000, tissue_signal
from demo_corpus.finding import Finding
from demo_corpus.geometry import Grid, Pose
from demo_corpus.lesion import MassEffect, blob_mask, displace, slice_range
from demo_corpus.protocol import SeriesPlan

#: Draw order of compartments: edema under the lesions it surrounds, solid parts on top.
_ORDER = (
    "edema",
    "wmh",
    "glioma",
    "stroke",
    "shine",
    "dural_tail",
    "meningioma",
    "glioma_enh",
    "met_ring",
    "met_core",
    "t1hyper",
    "microbleed",
)
MAX_STORED = 4095  # 12 bits stored


@dataclass(frozen=True)
class Volume:
    """Stored pixel values of one stack of a series (one b-value of a DWI series).

    Attributes:
        grid: Geometry of the stack.
        b_value: Diffusion b-value, or None.
        pixels: Stored values ``[S, R, C]`` (real value = stored x RescaleSlope).
    """

    grid: Grid
    b_value: int | None
    pixels: NDArray[np.uint16]


def _lesion_masks(findings: Sequence[Finding], subject: NDArray[np.float32]) -> list[LesionMask]:
    """Masks of every blob in draw order, each computed on the slices it can touch only."""
    blobs = sorted((b for f in findings for b in f.blobs), key=lambda b: _ORDER.index(b.compartment))
    corners = subject[:, [0, -1]][:, :, [0, -1]]  # [S, 2, 2, 3]: a slice is a parallelogram
    lower, upper = corners.min(axis=(1, 2)), corners.max(axis=(1, 2))  # [S, 3] per-slice bounding boxes
    out = []
    for b in blobs:
        where = slice_range(b, lower, upper)
        if where.stop > where.start:
            out.append(LesionMask(b.compartment, b.weighting, where, blob_mask(b, subject[where])))
    return out


def noise_free_signal(
    anatomy: Anatomy,
    pose: Pose,
    findings: Sequence[Finding],
    grid: Grid,
    sequences: Sequence[str],
) -> dict[str, NDArray[np.float32]]:
    """Noise-free signal of each sequence on a grid ``[S, R, C]``, with the findings drawn in.

    ``dwi_b1000`` may be asked for: it is derived from ``dwi_b0`` and ``adc``.
    """
    subject = grid.points(pose)  # [S, R, C, 3] template space, where the lesions live
    effects: tuple[MassEffect, ...] = tuple(m for f in findings for m in f.mass_effect)
    channels = anatomy.sample(displace(subject, effects))
    masks = _lesion_masks(findings, subject)
    base = [s for s in sequences if s != "dwi_b1000"]
    if "dwi_b1000" in sequences:
        base = list(dict.fromkeys([*base, "dwi_b0", "adc"]))
    out = {seq: apply_lesions(seq, tissue_signal(seq, channels), channels, masks) for seq in base}
    if "dwi_b1000" in sequences:
        out["dwi_b1000"] = dwi_b1000(out["dwi_b0"], out["adc"])
    return out


def _bias(rng: np.random.Generator, grid: Grid) -> NDArray[np.float32]:
    """A smooth multiplicative field (coil sensitivity), within about ±15%."""
    s, r, c = (np.linspace(-1.0, 1.0, n, dtype=np.float32) for n in (grid.n_slices, grid.rows, grid.cols))
    a = rng.normal(0.0, 0.07, size=6).astype(np.float32)
    log_field = (
        a[0] * s[:, None, None]
        + a[1] * r[None, :, None]
        + a[2] * c[None, None, :]
        + a[3] * r[None, :, None] ** 2
        + a[4] * c[None, None, :] ** 2
        + a[5] * s[:, None, None] ** 2
    )
    return np.exp(log_field).astype(np.float32)


def _quantise(values: NDArray[np.float32], series: SeriesPlan) -> NDArray[np.uint16]:
    stored = np.rint(values * (series.scale / series.rescale_slope))
    return np.clip(stored, 0, MAX_STORED).astype(np.uint16)


def _rician(rng: np.random.Generator, signal: NDArray[np.float32], sigma: float, masked: bool) -> NDArray[np.float32]:
    """Magnitude of the signal plus complex Gaussian noise; air zeroed when the scanner masks the background."""
    real = signal + np.float32(sigma) * rng.standard_normal(signal.shape, dtype=np.float32)
    imag = np.float32(sigma) * rng.standard_normal(signal.shape, dtype=np.float32)
    out = np.sqrt(real * real + imag * imag)
    return np.where(signal > 0.02, out, 0.0).astype(np.float32) if masked else out


def _min_projection(volume: NDArray[np.float32], window: int = 4) -> NDArray[np.float32]:
    """Sliding minimum-intensity projection over ``window`` slices (SWI mIP)."""
    out = volume.copy()
    for k in range(1, window):
        out[:-k] = np.minimum(out[:-k], volume[k:])
    return out


def render_series(anatomy: Anatomy, pose: Pose, findings: Sequence[Finding], series: SeriesPlan) -> list[Volume]:
    """Stored pixel volumes of one image series: one per grid, or one per b-value for DWI.

    The noise comes from ``series.seed`` alone, so rendering is independent of any other series.
    """
    rng = np.random.default_rng(series.seed)
    volumes: list[Volume] = []
    for grid in series.grids:
        bias = _bias(rng, grid)
        if series.kind == "dwi":
            signal = noise_free_signal(anatomy, pose, findings, grid, ("dwi_b0", "dwi_b1000"))
            sigma = series.noise * TISSUE["dwi_b0"][1]
            for b in series.b_values:
                values = signal["dwi_b0" if b == 0 else "dwi_b1000"] * bias
                volumes.append(Volume(grid, b, _quantise(_rician(rng, values, sigma, series.masked), series)))
            continue
        if series.kind == "adc":
            signal = noise_free_signal(anatomy, pose, findings, grid, ("dwi_b0", "adc"))
            head = signal["dwi_b0"] > 0.3  # scanners blank the map where the b0 image has little signal
            values = signal["adc"] + np.float32(series.noise * 0.15) * rng.standard_normal(head.shape, dtype=np.float32)
            volumes.append(Volume(grid, None, _quantise(np.where(head, np.clip(values, 0, None), 0.0), series)))
            continue
        values = noise_free_signal(anatomy, pose, findings, grid, (series.sequence,))[series.sequence] * bias
        sigma = series.noise * TISSUE[series.sequence][1]
        values = _rician(rng, values, sigma, series.masked)
        if series.entry == "swi_mip":
            values = _min_projection(values)
        volumes.append(Volume(grid, None, _quantise(values, series)))
    return volumes
