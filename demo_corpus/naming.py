"""Vendor-style series descriptions and sequence parameters, with the mess real exports have.

The descriptions are what a curator reads to pick series; they are deliberately inconsistent across vendors and
sites, sometimes misspelt, abbreviated or empty, so that a series classifier must also use the DICOM tags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Description pools, by vendor and by protocol entry (kind plus acquisition flavour).
DESCRIPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "SIEMENS": {
        "t1_3d": ("t1_mprage_sag_p2_iso", "t1_mprage_sag", "T1 MPRAGE SAG", "t1_mpr_sag_p2_1mm"),
        "t1_2d": ("t1_se_tra", "t1_tse_tra", "t1_fl2d_tra", "t1_se_cor"),
        "t2": ("t2_tse_tra", "t2_tse_tra_p2", "t2_blade_tra", "t2_tse_cor"),
        "flair": ("t2_tirm_tra_dark-fluid", "t2_flair_tra", "t2_tirm_cor_dark-fluid_p2", "t2_flair_tra_fs"),
        "flair_3d": ("t2_spc_da-fl_sag_p2_iso", "t2_space_dark-fluid_sag"),
        "dwi": ("ep2d_diff_3scan_trace_p2", "ep2d_diff_3scan_trace_p2_TRACEW", "ep2d_diff_tra_b1000", "DWI"),
        "dwi_b0": ("ep2d_diff_3scan_trace_p2_b0", "ep2d_diff_tra_b0"),
        "adc": ("ep2d_diff_3scan_trace_p2_ADC", "ep2d_diff_tra_ADC", "ADC"),
        "t1c_3d": ("t1_mprage_sag_p2_iso_POST", "T1 MPRAGE POST GAD", "t1_mprage_sag_KM"),
        "t1c_2d": ("t1_se_tra_KM", "t1_tse_tra_+C", "t1_fl2d_tra_post", "t1_se_cor_KM"),
        "swi": ("SWI_Images", "Mag_Images", "swi_tra"),
        "swi_mip": ("mIP_Images(SW)", "MIP_SWI"),
        "localizer": ("localizer", "AAHead_Scout_64ch-head-coil", "localizer_3plane"),
    },
    "GE MEDICAL SYSTEMS": {
        "t1_3d": ("SAG T1 3D BRAVO", "Sag T1 BRAVO", "3D T1 SAG"),
        "t1_2d": ("AX T1 SE", "Ax T1 FLAIR", "AX T1", "COR T1 SE"),
        "t2": ("AX T2 FSE", "Ax T2 FRFSE", "AX T2 PROPELLER", "COR T2 PROPELLER"),
        "flair": ("Ax FLAIR", "AX T2 FLAIR", "COR FLAIR", "Ax T2 FLAIR FS"),
        "flair_3d": ("Sag CUBE FLAIR", "SAG 3D FLAIR"),
        "dwi": ("AX DWI", "Ax DWI 1000b", "AX DIFFUSION", "DWI Asset"),
        "dwi_b0": ("AX DWI B0", "Ax DWI b0"),
        "adc": ("Apparent Diffusion Coefficient (mm2/s)", "ADC", "AX DWI ADC"),
        "t1c_3d": ("SAG T1 3D BRAVO +C", "Sag BRAVO POST", "3D T1 +C"),
        "t1c_2d": ("AX T1 POST GAD", "Ax T1 SE +C", "POST AX T1", "COR T1 +C"),
        "swi": ("AX SWAN", "SWAN", "Ax SWAN"),
        "swi_mip": ("Ax SWAN mIP", "SWAN MinIP"),
        "localizer": ("3-pl T2* FGRE S", "3 Plane Loc", "LOC"),
    },
    "Philips": {
        "t1_3d": ("sT1W_3D_TFE", "T1W_3D_TFE SAG", "3D_T1W_TFE"),
        "t1_2d": ("T1W_SE_TRA", "T1W_TSE", "T1W_SE_COR"),
        "t2": ("T2W_TSE_TRA", "T2W_TSE", "T2W_TSE_COR"),
        "flair": ("T2W_FLAIR", "FLAIR_TRA", "T2W_FLAIR_COR"),
        "flair_3d": ("3D_Brain_VIEW_FLAIR_SHC", "3D FLAIR SAG"),
        "dwi": ("DWI_TRA", "DWI b1000", "sDWI_SSh"),
        "dwi_b0": ("DWI_TRA_b0", "DWI b0"),
        "adc": ("dADC", "DWI_TRA_ADC", "ADC_TRA"),
        "t1c_3d": ("sT1W_3D_TFE_GD", "T1W_3D_TFE +C", "3D_T1W_GD"),
        "t1c_2d": ("T1W_SE_TRA_GD", "T1 post", "T1W_SE_GD_COR"),
        "swi": ("SWIp", "VEN_BOLD", "SWIp_TRA"),
        "swi_mip": ("SWIp_mIP", "mIP VEN_BOLD"),
        "localizer": ("Survey", "SURVEY MST", "SmartBrain survey"),
    },
}

JUNK_DESCRIPTIONS = {
    "secondary_capture": ("Screen Save", "SCREENSHOT", "Exam Summary", "PACS capture", "Report page", ""),
    "sr": ("Exam Summary Report", "Basic Text SR", "Protocol summary", "SAR report", "Dose Info"),
}


@dataclass(frozen=True)
class MRParams:
    """The MR acquisition tags of a series."""

    scanning_sequence: str
    sequence_variant: str
    scan_options: str
    acquisition_type: str  # 2D or 3D
    repetition_time: float
    echo_time: float
    inversion_time: float | None
    flip_angle: float
    sequence_name: str
    echo_train_length: int


_PARAMS: dict[
    str,
    tuple[
        str,
        str,
        str,
        str,
        tuple[float, float],
        tuple[float, float],
        tuple[float, float] | None,
        float,
        dict[str, str],
        int,
    ],
] = {
    "t1_3d": (
        "GR\\IR",
        "SK\\SP\\MP",
        "IR",
        "3D",
        (1800, 2300),
        (2.3, 3.5),
        (900, 1100),
        9.0,
        {"SIEMENS": "*tfl3d1_16ns", "GE MEDICAL SYSTEMS": "efgre3d", "Philips": "T1TFE"},
        1,
    ),
    "t1_2d": (
        "SE",
        "SK",
        "",
        "2D",
        (420, 650),
        (8, 15),
        None,
        90.0,
        {"SIEMENS": "*se2d1", "GE MEDICAL SYSTEMS": "SE", "Philips": "SE"},
        1,
    ),
    "t2": (
        "SE",
        "SK\\SP",
        "SAT1",
        "2D",
        (3500, 6500),
        (85, 110),
        None,
        150.0,
        {"SIEMENS": "*tse2d1_15", "GE MEDICAL SYSTEMS": "FSE", "Philips": "TSE"},
        15,
    ),
    "flair": (
        "SE\\IR",
        "SK\\SP\\MP",
        "IR",
        "2D",
        (8000, 11000),
        (85, 140),
        (2200, 2800),
        150.0,
        {"SIEMENS": "*tir2d1_16", "GE MEDICAL SYSTEMS": "FLAIR", "Philips": "IR"},
        16,
    ),
    "flair_3d": (
        "SE\\IR",
        "SK\\SP\\MP",
        "IR",
        "3D",
        (4800, 6000),
        (330, 400),
        (1600, 1900),
        120.0,
        {"SIEMENS": "*spcir_278", "GE MEDICAL SYSTEMS": "Cube", "Philips": "VISTA"},
        200,
    ),
    "dwi": (
        "EP",
        "SK\\SP",
        "FS",
        "2D",
        (3500, 8000),
        (60, 95),
        None,
        90.0,
        {"SIEMENS": "*ep_b0_1000t", "GE MEDICAL SYSTEMS": "epi", "Philips": "DwiSE"},
        1,
    ),
    "swi": (
        "GR",
        "SP",
        "",
        "3D",
        (27, 49),
        (20, 40),
        None,
        15.0,
        {"SIEMENS": "*swi3d1r", "GE MEDICAL SYSTEMS": "swan", "Philips": "FFE"},
        1,
    ),
    "localizer": (
        "GR",
        "SP",
        "",
        "2D",
        (7, 9),
        (3, 4),
        None,
        20.0,
        {"SIEMENS": "*fl2d1", "GE MEDICAL SYSTEMS": "fgre", "Philips": "FFE"},
        1,
    ),
}


def mr_params(rng: np.random.Generator, entry: str, vendor: str, field_strength: float) -> MRParams:
    """Sequence tags for a protocol entry (``t1c_*`` reuse the pre-contrast T1 parameters)."""
    key = {"t1c_3d": "t1_3d", "t1c_2d": "t1_2d", "dwi_b0": "dwi", "adc": "dwi", "swi_mip": "swi"}.get(entry, entry)
    scan, variant, options, acq, tr, te, ti, flip, names, etl = _PARAMS[key]
    repetition = float(rng.uniform(*tr))
    if key == "t1_3d" and vendor != "SIEMENS":
        repetition = float(rng.uniform(7.0, 9.5))  # BRAVO and TFE have a short TR; TI is the prep delay
    if key == "swi" and field_strength < 2:
        repetition *= 1.4
    return MRParams(
        scanning_sequence=scan,
        sequence_variant=variant,
        scan_options=options,
        acquisition_type=acq,
        repetition_time=round(repetition, 2),
        echo_time=round(float(rng.uniform(*te)), 2),
        inversion_time=round(float(rng.uniform(*ti)), 1) if ti else None,
        flip_angle=flip,
        sequence_name=names[vendor],
        echo_train_length=etl,
    )


def _typo(rng: np.random.Generator, text: str) -> str:
    if len(text) < 4:
        return text
    i = int(rng.integers(0, len(text) - 1))
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


def messy_description(rng: np.random.Generator, text: str) -> str:
    """A description as sites really type it: now and then empty, misspelt, re-cased or suffixed."""
    u = rng.random()
    if u < 0.04:
        return ""
    if u < 0.09:
        text = _typo(rng, text)
    elif u < 0.15:
        text = text.lower() if rng.random() < 0.5 else text.upper()
    elif u < 0.20:
        text = text + str(rng.choice([" REPEAT", "_2", " (MOCO)", "_ND", " RPT", "  "]))
    elif u < 0.23:
        text = text.replace("_", " ").replace("  ", " ")
    return text


_PLANE_TOKENS = {"axial": ("tra", "ax"), "coronal": ("cor",), "sagittal": ("sag",)}


def _plane_of(text: str) -> str | None:
    words = text.lower().replace("_", " ").split()
    for plane, tokens in _PLANE_TOKENS.items():
        if any(w.startswith(tokens) for w in words):
            return plane
    return None


def describe(rng: np.random.Generator, vendor: str, entry: str, plane: str = "") -> str:
    """A messy vendor-style SeriesDescription for a protocol entry or junk kind, naming the right plane if any."""
    pool = JUNK_DESCRIPTIONS.get(entry) or DESCRIPTIONS[vendor][entry]
    fitting = [d for d in pool if _plane_of(d) in (plane, None)] or list(pool)
    return messy_description(rng, str(rng.choice(fitting)))
