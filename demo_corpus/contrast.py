"""Tissue and lesion signal of each MR sequence: the physics-flavoured look-up tables behind every image.

Values are relative (white matter on T1 is 0.8); ADC is in 10^-3 mm^2/s. The DWI b1000 image is not tabled but
derived as ``b0 * exp(-b * ADC)``, so restricted diffusion (low ADC) is bright at b1000 and T2 shine-through
(high b0, normal ADC) is bright too: telling them apart needs the ADC map, as in real reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from demo_corpus.lesion import tissue_weight

#: Sequences the tables cover (``dwi_b0`` is the T2-weighted b=0 image of a diffusion series).
SEQUENCES = ("t1", "t1c", "t2", "flair", "dwi_b0", "adc", "swi", "loc")

#: (grey matter, white matter, CSF) signal of each sequence.
TISSUE: dict[str, tuple[float, float, float]] = {
    "t1": (0.52, 0.80, 0.12),  # WM > GM > CSF
    "t1c": (0.52, 0.80, 0.12),
    "t2": (0.62, 0.45, 1.00),  # CSF > GM > WM
    "flair": (0.62, 0.48, 0.06),  # CSF dark, GM > WM
    "dwi_b0": (0.62, 0.50, 1.00),  # like T2
    "adc": (0.85, 0.72, 3.00),  # CSF bright (free water)
    "swi": (0.50, 0.62, 0.75),
    "loc": (0.45, 0.55, 0.35),
}

#: Layers outside the brain, by distance from its surface in mm: CSF rim, dura, inner table, diploe, outer table,
#: galea, scalp fat, skin, air. `EXTRA` holds each sequence's signal at these knots.
EXTRA_KNOTS = (0.0, 1.2, 1.6, 2.4, 2.8, 3.8, 4.6, 6.2, 7.0, 8.2, 9.0, 9.6, 13.6, 14.4, 15.4)
_LAYERS = (
    "csf",
    "csf",
    "dura",
    "dura",
    "bone",
    "bone",
    "marrow",
    "marrow",
    "bone",
    "bone",
    "galea",
    "fat",
    "fat",
    "skin",
    "air",
)
_LAYER_SIGNAL: dict[str, dict[str, float]] = {
    "t1": {"dura": 0.30, "bone": 0.04, "marrow": 0.62, "galea": 0.35, "fat": 0.95, "skin": 0.45},
    "t2": {"dura": 0.20, "bone": 0.03, "marrow": 0.50, "galea": 0.30, "fat": 0.70, "skin": 0.40},
    "flair": {"dura": 0.22, "bone": 0.03, "marrow": 0.40, "galea": 0.30, "fat": 0.60, "skin": 0.40},
    "dwi_b0": {"dura": 0.15, "bone": 0.02, "marrow": 0.08, "galea": 0.20, "fat": 0.05, "skin": 0.25},  # fat-sat
    "adc": {"dura": 1.00, "bone": 0.20, "marrow": 0.40, "galea": 1.20, "fat": 0.30, "skin": 1.00},
    "swi": {"dura": 0.30, "bone": 0.05, "marrow": 0.35, "galea": 0.35, "fat": 0.55, "skin": 0.40},
    "loc": {"dura": 0.25, "bone": 0.04, "marrow": 0.45, "galea": 0.30, "fat": 0.80, "skin": 0.40},
}
_LAYER_SIGNAL["t1c"] = {**_LAYER_SIGNAL["t1"], "dura": 0.75}  # the dura enhances
EXTRA: dict[str, tuple[float, ...]] = {
    seq: tuple(
        TISSUE[seq][2] if layer == "csf" else 0.0 if layer == "air" else _LAYER_SIGNAL[seq][layer] for layer in _LAYERS
    )
    for seq in SEQUENCES
}

#: Lesion compartments: the signal each takes on each sequence (None: the tissue shows through unchanged).
_N = None
LESION: dict[str, dict[str, float | None]] = {
    #             t1    t1c   t2    flair dwi_b0 adc  swi   loc
    "stroke": dict(zip(SEQUENCES, (0.50, 0.50, 0.78, 0.82, 0.85, 0.36, _N, 0.45), strict=True)),
    "glioma": dict(zip(SEQUENCES, (0.45, 0.46, 0.95, 1.00, 0.90, 1.40, 0.55, 0.50), strict=True)),
    "glioma_enh": dict(zip(SEQUENCES, (_N, 0.80, _N, _N, _N, _N, _N, _N), strict=True)),
    "meningioma": dict(zip(SEQUENCES, (0.54, 1.45, 0.66, 0.70, 0.66, 0.85, 0.45, 0.50), strict=True)),
    "dural_tail": dict(zip(SEQUENCES, (_N, 1.10, _N, _N, _N, _N, _N, _N), strict=True)),
    "met_ring": dict(zip(SEQUENCES, (0.52, 1.40, 0.60, 0.72, 0.62, 0.90, 0.42, 0.50), strict=True)),
    "met_core": dict(zip(SEQUENCES, (0.35, 0.33, 0.95, 0.80, 0.95, 1.80, 0.55, 0.40), strict=True)),
    "edema": dict(zip(SEQUENCES, (0.58, 0.58, 0.88, 0.95, 0.85, 1.45, _N, 0.50), strict=True)),
    "shine": dict(zip(SEQUENCES, (0.40, 0.40, 1.05, 0.88, 1.30, 1.05, _N, 0.45), strict=True)),
    "t1hyper": dict(zip(SEQUENCES, (1.20, 1.20, 0.45, 0.55, 0.45, 0.75, 0.30, 0.80), strict=True)),
    "wmh": dict(zip(SEQUENCES, (0.62, 0.62, 0.88, 1.00, 0.75, 1.00, _N, 0.50), strict=True)),
    "microbleed": dict(zip(SEQUENCES, (_N, _N, 0.30, _N, 0.35, _N, 0.04, _N), strict=True)),
}

#: Share of the underlying anatomy's contrast that shows through a compartment: infarcts and edema follow the
#: gyri they sit in; masses and blood are homogeneous.
TEXTURE = {"stroke": 0.5, "glioma": 0.35, "edema": 0.5, "wmh": 0.3, "shine": 0.3}

B_VALUE = 1000.0  # s/mm^2


def tissue_signal(seq: str, ch: dict[str, NDArray[np.float32]]) -> NDArray[np.float32]:
    """Noise-free signal of the normal anatomy: brain tissue mixed by partial volume, then the outer layers."""
    g, w, c = TISSUE[seq]
    gm, wm = ch["gm"], ch["wm"]
    csf = np.clip(ch["brain"] - gm - wm, 0.0, 1.0)
    outside = np.clip(1.0 - np.maximum(ch["brain"], gm + wm), 0.0, 1.0)
    extra = np.interp(ch["dout"], EXTRA_KNOTS, EXTRA[seq]).astype(np.float32)
    signal = gm * g + wm * w + csf * c + outside * extra
    vessel = ch["vessel"]
    if seq == "t1c":
        signal = signal + 0.75 * vessel  # gadolinium in veins, sinuses and choroid plexus
    elif seq == "swi":
        signal = signal * (1.0 - 0.85 * vessel)  # deoxygenated venous blood is dark
    elif seq in ("t1", "t2", "flair", "dwi_b0"):
        signal = signal * (1.0 - 0.3 * vessel)  # flow voids
    return signal.astype(np.float32)


@dataclass(frozen=True)
class LesionMask:
    """A blob's soft mask over a run of slices of a stack.

    Attributes:
        compartment: Signal-table row.
        weighting: Tissue weighting (see `lesion.tissue_weight`).
        slices: The slices of the stack the mask covers.
        mask: Values ``[slices, R, C]`` in [0, 1].
    """

    compartment: str
    weighting: str
    slices: slice
    mask: NDArray[np.float32]


def apply_lesions(
    seq: str,
    signal: NDArray[np.float32],
    ch: dict[str, NDArray[np.float32]],
    masks: Sequence[LesionMask],
) -> NDArray[np.float32]:
    """Blend each lesion compartment over the signal ``[S, R, C]``, in order.

    Args:
        seq: Sequence name.
        signal: Normal-anatomy signal.
        ch: Sampled anatomy at the same points (for the tissue weighting of each compartment).
        masks: Lesion masks on runs of slices of the same stack.
    """
    out = signal.copy()
    for lesion in masks:
        value = LESION[lesion.compartment][seq]
        if value is None or not lesion.mask.any():
            continue
        part = {k: v[lesion.slices] for k, v in ch.items()}
        m = lesion.mask * tissue_weight(lesion.weighting, part)
        current = out[lesion.slices]
        # gyral texture from the grey/white mix only: CSF partial volume must not leak through
        g, w, _ = TISSUE[seq]
        tissue = (part["gm"] * g + part["wm"] * w) / np.maximum(part["gm"] + part["wm"], 1e-3)
        texture = TEXTURE.get(lesion.compartment, 0.0) * (tissue - w)
        out[lesion.slices] = current * (1.0 - m) + m * (value + texture)
    return out


def dwi_b1000(b0: NDArray[np.float32], adc: NDArray[np.float32]) -> NDArray[np.float32]:
    """Diffusion-weighted signal at b = 1000 from the b0 signal and the ADC (10^-3 mm^2/s)."""
    return (b0 * np.exp(-B_VALUE * 1e-3 * adc)).astype(np.float32)
