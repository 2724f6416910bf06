"""Lesion geometry: soft, irregular blobs and the mass effect they exert, evaluated at arbitrary points.

A finding (see `finding.py`) is a set of `Blob`s, each of one *compartment* (a row of the signal table in
`contrast.py`: ``stroke``, ``met_ring``, ``edema`` ...), plus optional `MassEffect`s that displace the anatomy.
Everything is in subject (MNI) millimetres, so every series of a study sees the same lesions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from demo_corpus.geometry import Vec3

#: How a blob's mask is weighted by the local tissue (see `tissue_weight`).
WEIGHTINGS = ("tissue", "wm", "glioma", "intracranial", "dura")


@dataclass(frozen=True)
class Blob:
    """One soft ellipsoid with an irregular border.

    Attributes:
        compartment: Signal-table row this blob is drawn with.
        centre: Centre in subject millimetres.
        radii: Semi-axes in millimetres.
        irregularity: Relative amplitude of the border's bumps (0 = smooth ellipsoid).
        shape_seed: Seeds the bumps, so a follow-up study keeps the shape.
        edge_mm: Width of the soft border.
        weighting: Which tissue the lesion lives in (one of `WEIGHTINGS`).
        shell_mm: Above 0, only a shell of this thickness inside the border (a ring); ``core`` gives the inside.
        core: Draw the inside of the shell instead of the shell.
    """

    compartment: str
    centre: Vec3
    radii: Vec3
    irregularity: float
    shape_seed: int
    edge_mm: float
    weighting: str = "tissue"
    shell_mm: float = 0.0
    core: bool = False

    @property
    def reach(self) -> float:
        """Largest distance from the centre where the mask can be non-zero."""
        return max(self.radii) * (1.0 + self.irregularity) + self.edge_mm

    def scaled(self, factor: float) -> Blob:
        """The same blob grown or shrunk (for follow-up studies)."""
        radii = (self.radii[0] * factor, self.radii[1] * factor, self.radii[2] * factor)
        return replace(self, radii=radii)


@dataclass(frozen=True)
class MassEffect:
    """Radial displacement of the anatomy away from a centre: up to about ``0.6 * sigma * strength`` mm."""

    centre: Vec3
    sigma: float
    strength: float  # below 1 keeps the warp invertible


def _smoothstep(x: NDArray[np.float32]) -> NDArray[np.float32]:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _bumps(seed: int, direction: NDArray[np.float32]) -> NDArray[np.float32]:
    """A smooth function of the unit direction in [-1, 1]: the blob's border relief."""
    rng = np.random.default_rng(seed)
    axes = rng.normal(size=(5, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    freq = rng.uniform(1.5, 4.0, size=5)
    phase = rng.uniform(0, 2 * np.pi, size=5)
    weight = rng.uniform(0.5, 1.0, size=5)
    weight /= weight.sum()
    proj = direction @ axes.T.astype(np.float32)  # [N, 5]
    return (np.cos(proj * freq + phase) * weight).sum(axis=-1).astype(np.float32)


def blob_mask(blob: Blob, points: NDArray[np.float32]) -> NDArray[np.float32]:
    """Soft membership in [0, 1] of points ``[..., 3]`` (only those within `Blob.reach` are evaluated)."""
    flat = points.reshape(-1, 3)
    out = np.zeros(len(flat), np.float32)
    offset = flat - np.asarray(blob.centre, np.float32)
    near = np.flatnonzero(np.einsum("ij,ij->i", offset, offset) < blob.reach**2)
    if near.size == 0:
        return out.reshape(points.shape[:-1])
    d = offset[near].astype(np.float32)
    dist = np.linalg.norm(d, axis=1) + 1e-6
    rho = np.linalg.norm(d / np.asarray(blob.radii, np.float32), axis=1)
    rho = rho / (1.0 + blob.irregularity * _bumps(blob.shape_seed, d / dist[:, None]))
    mean_r = float(np.mean(blob.radii))
    edge = blob.edge_mm / mean_r
    outer = _smoothstep((1.0 + edge / 2 - rho) / edge)
    if blob.shell_mm > 0:
        inner = _smoothstep((1.0 - blob.shell_mm / mean_r + edge / 2 - rho) / edge)
        outer = inner if blob.core else np.clip(outer - inner, 0.0, 1.0)
    out[near] = outer
    return out.reshape(points.shape[:-1])


def slice_range(blob: Blob, lower: NDArray[np.float32], upper: NDArray[np.float32]) -> slice:
    """The slices of a stack a blob can touch, from each slice's bounding box ``[S, 3]`` (lower, upper corners)."""
    centre = np.asarray(blob.centre)
    hit = np.flatnonzero(np.all((lower - blob.reach < centre) & (upper + blob.reach > centre), axis=1))
    return slice(int(hit[0]), int(hit[-1]) + 1) if hit.size else slice(0, 0)


def tissue_weight(weighting: str, channels: dict[str, NDArray[np.float32]]) -> NDArray[np.float32]:
    """How much of a voxel a lesion may take over, from the sampled anatomy.

    ``tissue``: brain parenchyma (an infarct spares CSF); ``wm``: mostly white matter (vasogenic edema, small
    vessel disease); ``glioma``: white matter first, then cortex; ``intracranial``: anything inside the inner
    skull table (an extra-axial mass); ``dura``: the dural layer only (a dural tail).
    """
    gm, wm, dout = channels["gm"], channels["wm"], channels["dout"]
    if weighting == "tissue":
        return np.clip(gm + wm, 0.0, 1.0)
    if weighting == "wm":
        return np.clip(wm + 0.35 * gm, 0.0, 1.0)
    if weighting == "glioma":
        return np.clip(wm + 0.5 * gm + 0.1, 0.0, 1.0)
    if weighting == "intracranial":
        return np.clip((3.0 - dout) / 1.2, 0.0, 1.0)
    if weighting == "dura":
        return np.clip(1.0 - np.abs(dout - 2.0) / 1.2, 0.0, 1.0)
    raise ValueError(f"unknown weighting {weighting!r}; expected one of {WEIGHTINGS}")


def displace(points: NDArray[np.float32], effects: tuple[MassEffect, ...]) -> NDArray[np.float32]:
    """Where in the undisplaced template each subject point comes from (the inverse warp of the mass effects)."""
    out = points.copy()
    flat = out.reshape(-1, 3)
    for effect in effects:
        centre = np.asarray(effect.centre, flat.dtype)
        offset = flat - centre
        r2 = np.einsum("ij,ij->i", offset, offset)
        near = np.flatnonzero(r2 < (3.5 * effect.sigma) ** 2)  # beyond, the shift is < 0.3% of r
        shrink = 1.0 - effect.strength * np.exp(-r2[near] / (2.0 * effect.sigma**2))
        flat[near] = centre + offset[near] * shrink[:, None].astype(flat.dtype)
    return out
