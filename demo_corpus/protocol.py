"""The series a study holds: kinds, planes, geometry and encoding, drawn independently of the study's findings.

Drawing the protocol without looking at the label matters: an earlier prototype that let the label choose the
series found that the set of series kinds alone predicted the class.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from demo_corpus.config import DemoCorpusConfig
from demo_corpus.geometry import Grid, Pose, as_vec3, plan_grid
from demo_corpus.identity import Site
from demo_corpus.naming import MRParams, describe, mr_params


@dataclass(frozen=True)
class SeriesPlan:
    """Everything needed to render and write one series (pixel values come later, in `render.py`).

    Attributes:
        number: SeriesNumber.
        kind: True kind (`vocabulary.SERIES_KINDS`).
        entry: Protocol entry (``t1_3d``, ``t2``, ``dwi_b0``, ``swi_mip`` ...): flavour within the kind.
        plane: ``axial``, ``sagittal``, ``coronal``, ``mixed`` (localizer) or empty (no pixels, screenshots).
        description: SeriesDescription as the site wrote it.
        sequence: Row of the signal tables (``t1``, ``dwi_b0``, ``adc``, ``loc`` ...); empty for SC and SR.
        grids: The stack of slices (several for a 3-plane localizer).
        b_values: Diffusion b-values in the series (DWI only).
        multiframe: Written as one Enhanced MR Image Storage file.
        transfer_syntax: ``deflated``, ``explicit`` or ``rle``.
        params: MR acquisition tags (None for SC and SR).
        contrast_agent: Acquired after gadolinium.
        derived: ADC map or minimum-intensity projection (DERIVED image type).
        seed: Seeds the noise of this series.
        noise: Noise level relative to white matter.
        scale: Stored units per unit of signal.
        rescale_slope: RescaleSlope (stored values are real values divided by it).
        masked: The scanner zeroes the air around the head (many reconstructions do).
        defect: ``short_series`` for a deliberately truncated acquisition, else empty.
        uid: SeriesInstanceUID.
        paths: File paths relative to the corpus root, in instance order.
    """

    number: int
    kind: str
    entry: str
    plane: str
    description: str
    sequence: str
    grids: tuple[Grid, ...]
    b_values: tuple[int, ...]
    multiframe: bool
    transfer_syntax: str
    params: MRParams | None
    contrast_agent: bool
    derived: bool
    seed: int
    noise: float
    scale: float
    rescale_slope: float
    masked: bool = False
    defect: str = ""
    uid: str = ""
    paths: tuple[str, ...] = ()

    @property
    def n_files(self) -> int:
        """Files the series is written as."""
        if self.kind in ("secondary_capture", "sr") or self.multiframe:
            return 1
        return sum(g.n_slices for g in self.grids) * max(1, len(self.b_values))


_KIND = {
    "t1_3d": "t1",
    "t1_2d": "t1",
    "t2": "t2",
    "flair": "flair",
    "flair_3d": "flair",
    "dwi": "dwi",
    "dwi_b0": "dwi",
    "adc": "adc",
    "t1c_3d": "t1c",
    "t1c_2d": "t1c",
    "swi": "swi",
    "swi_mip": "swi",
}
_SEQUENCE = {"t1": "t1", "t2": "t2", "flair": "flair", "dwi": "dwi_b0", "adc": "adc", "t1c": "t1c", "swi": "swi"}
_NOISE = {"t1": 0.018, "t2": 0.022, "flair": 0.025, "dwi": 0.035, "adc": 0.035, "t1c": 0.018, "swi": 0.025}
_MATRIX_2D = (96, 112, 128, 144)
_MATRIX = {"dwi": (96, 112, 128), "adc": (96, 112, 128), "swi": (112, 128), "3d": (112, 128)}
_MULTIFRAME_BIAS = {"Philips": 1.4, "SIEMENS": 1.1, "GE MEDICAL SYSTEMS": 0.7}


def _choice(rng: np.random.Generator, options: tuple[str, ...], p: tuple[float, ...]) -> str:
    return str(options[int(rng.choice(len(options), p=np.asarray(p) / sum(p)))])


def _entries(rng: np.random.Generator) -> list[tuple[str, str]]:
    """Protocol entries ``(entry, plane)`` in acquisition order, before the 2-10 series limits."""
    out: list[tuple[str, str]] = []
    if rng.random() < 0.8:
        out.append(
            ("t1_3d", "sagittal")
            if rng.random() < 0.45
            else ("t1_2d", _choice(rng, ("axial", "coronal"), (0.85, 0.15)))
        )
    if rng.random() < 0.8:
        out.append(("t2", _choice(rng, ("axial", "coronal"), (0.8, 0.2))))
    if rng.random() < 0.85:
        out.append(
            ("flair_3d", "sagittal")
            if rng.random() < 0.13
            else ("flair", _choice(rng, ("axial", "coronal"), (0.86, 0.14)))
        )
    if rng.random() < 0.8:
        if rng.random() < 0.25:
            out.append(("dwi_b0", "axial"))
        out.append(("dwi", "axial"))
        if rng.random() < 0.92:
            out.append(("adc", "axial"))
    if rng.random() < 0.3:
        out.append(("swi", "axial"))
        if rng.random() < 0.4:
            out.append(("swi_mip", "axial"))
    if rng.random() < 0.55:
        out.append(
            ("t1c_3d", "sagittal")
            if rng.random() < 0.35
            else ("t1c_2d", _choice(rng, ("axial", "coronal"), (0.8, 0.2)))
        )
    if rng.random() < 0.07 and out:
        out.append(out[int(rng.integers(len(out)))])  # a repeated acquisition (motion)
    while len(out) < 2:  # a study needs two image series at least: add the commonest
        out.append(("t2", "axial") if ("t2", "axial") not in out else ("flair", "axial"))
    junk = [("localizer", "mixed")] if rng.random() < 0.85 else []
    out = junk + out
    if rng.random() < 0.2:
        out.append(("secondary_capture", ""))
    if rng.random() < 0.15:
        out.append(("sr", ""))
    for droppable in ("sr", "secondary_capture", "swi_mip", "localizer"):
        if len(out) > 10 and any(e == droppable for e, _ in out):
            out.remove(next(x for x in out if x[0] == droppable))
    return out[:10]


def _stack(rng: np.random.Generator, entry: str, plane: str, pose: Pose, cfg: DemoCorpusConfig) -> Grid:
    kind = _KIND[entry]
    three_d = entry.endswith("3d")
    matrices = _MATRIX["3d"] if three_d else _MATRIX.get(kind, _MATRIX_2D)
    matrix = max(16, 2 * round(float(rng.choice(matrices)) * cfg.matrix_scale / 2))
    # Thicker than clinical 3D and SWI protocols (1-2 mm) to keep the corpus small; 2D stacks are realistic.
    if three_d:
        thickness, gap = float(rng.choice([3.0, 3.5])), 0.0
    elif kind == "swi":
        thickness, gap = float(rng.choice([3.0, 4.0])), 0.0
    else:
        thickness, gap = float(rng.choice([4.0, 5.0, 5.0, 6.0, 6.0])), float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]))
    thickness, gap = thickness * cfg.slice_spacing_scale, gap * cfg.slice_spacing_scale
    coverage = float(rng.uniform(0.7, 0.8)) if kind == "swi" else float(rng.uniform(0.8, 0.92))
    oblique = float(rng.uniform(-12.0, 12.0)) if plane != "sagittal" and rng.random() < 0.3 else 0.0
    return plan_grid(rng, pose, plane, matrix, thickness, gap, coverage, oblique)


def _localizer(rng: np.random.Generator, pose: Pose, cfg: DemoCorpusConfig) -> tuple[Grid, ...]:
    per_plane = int(rng.choice([1, 1, 3]))
    matrix = max(16, 2 * round(128 * cfg.matrix_scale / 2))
    grids = []
    for plane in ("sagittal", "coronal", "axial"):
        grid = plan_grid(rng, pose, plane, matrix, 8.0, 0.0, 1.0)
        centre = grid.n_slices // 2
        first = np.asarray(grid.origin) + (centre - per_plane // 2) * np.asarray(grid.slice_step)
        step = np.asarray(grid.slice_step) * (12.0 / grid.spacing)  # 12 mm apart around the centre
        grids.append(replace(grid, origin=as_vec3(first), slice_step=as_vec3(step), n_slices=per_plane))
    return tuple(grids)


def plan_protocol(rng: np.random.Generator, site: Site, pose: Pose, cfg: DemoCorpusConfig) -> tuple[SeriesPlan, ...]:
    """Draw the series of one study. The draw never sees the study's findings.

    Args:
        rng: The study's protocol generator (a stream separate from the findings' one).
        site: Scanner vendor and field strength set the naming and parameters.
        pose: The subject's pose, on which stacks are centred.
        cfg: Corpus configuration (matrix and slice-spacing scales, multi-frame share).
    """
    plans: list[SeriesPlan] = []
    shared: dict[str, Grid] = {}
    mf_share = min(1.0, cfg.multiframe_share * _MULTIFRAME_BIAS[site.vendor])
    number = 1
    for entry, plane in _entries(rng):
        kind = _KIND.get(entry, entry)
        seed = int(rng.integers(2**31))
        if kind in ("secondary_capture", "sr"):
            junk_number = (9000 if kind == "sr" else 90) + number  # scanners number these apart from the images
            plans.append(
                SeriesPlan(
                    junk_number,
                    kind,
                    entry,
                    "",
                    describe(rng, site.vendor, entry),
                    "",
                    (),
                    (),
                    False,
                    "rle" if kind == "secondary_capture" else "explicit",
                    None,
                    False,
                    False,
                    seed,
                    0.0,
                    1.0,
                    1.0,
                )
            )
            continue
        if kind == "localizer":
            grids = _localizer(rng, pose, cfg)
            params = mr_params(rng, "localizer", site.vendor, site.field_strength)
            plans.append(
                SeriesPlan(
                    number,
                    kind,
                    entry,
                    plane,
                    describe(rng, site.vendor, entry),
                    "loc",
                    grids,
                    (),
                    False,
                    _choice(rng, ("deflated", "explicit", "rle"), (0.8, 0.1, 0.1)),
                    params,
                    False,
                    False,
                    seed,
                    0.03,
                    float(rng.uniform(80, 150)),
                    1.0,
                    masked=bool(rng.random() < 0.75),
                )
            )
            number += 1
            continue
        group = {"dwi_b0": "dwi", "adc": "dwi", "swi_mip": "swi"}.get(entry, entry)
        grid = (
            shared[group]
            if group in shared and entry in ("dwi", "adc", "swi_mip")
            else _stack(rng, entry, plane, pose, cfg)
        )
        shared[group] = grid
        b_values: tuple[int, ...] = {"dwi": (1000,), "dwi_b0": (0,)}.get(entry, ())
        if entry == "dwi" and not any(p.entry == "dwi_b0" for p in plans):
            b_values = (0, 1000)
        multiframe = bool(rng.random() < (min(1.0, 1.6 * mf_share) if entry.endswith("3d") else mf_share))
        philips = site.vendor == "Philips"
        slope = round(float(rng.uniform(1.2, 3.5)), 6) if philips and kind != "adc" else 1.0
        plans.append(
            SeriesPlan(
                number=number,
                kind=kind,
                entry=entry,
                plane=plane,
                description=describe(rng, site.vendor, entry, plane),
                sequence=_SEQUENCE[kind],
                grids=(grid,),
                b_values=b_values,
                multiframe=multiframe,
                transfer_syntax=_choice(
                    rng, ("deflated", "explicit", "rle"), (0.95, 0.0 if multiframe else 0.03, 0.04)
                ),
                params=mr_params(rng, entry, site.vendor, site.field_strength),
                contrast_agent=kind == "t1c",
                derived=entry in ("adc", "swi_mip"),
                seed=seed,
                noise=_NOISE[kind] * float(rng.uniform(0.8, 1.25)),
                scale=1000.0 if kind == "adc" else float(rng.uniform(50.0, 100.0)),
                rescale_slope=slope,
                masked=bool(rng.random() < 0.85),
            )
        )
        number += 1
    return tuple(plans)
