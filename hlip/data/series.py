"""Series grouping and classification, with a recorded reason for every decision.

Files are grouped by Study/Series Instance UID from their headers (never by folder). Each series is then either
junk (with a quarantine reason: localizer, secondary capture, structured or dose report, screenshot, non-image,
unsupported modality, too short) or a usable series with a kind and a plane. MR kinds come from tags first
(ImageType, b-values, sequence name, TR/TE/TI, contrast agent) and from the description text only when the tags
are silent or weak; CT series get a kernel class. Reasons quote tag values and the name of the description pattern
that matched, never the description itself (a free-text header value).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from hlip.data.dicom import Instance, as_float, as_strings
from hlip.data.quarantine import Reason


class Kind(StrEnum):
    """Kinds of usable series."""

    T1 = "t1"
    T2 = "t2"
    FLAIR = "flair"
    DWI = "dwi"
    ADC = "adc"
    SWI = "swi"
    T1C = "t1c"
    OTHER = "other"
    CT = "ct"


class Plane(StrEnum):
    """Acquisition plane, from the slice normal."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"
    OBLIQUE = "oblique"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SeriesConfig:
    """Classification settings (`ingest.series` in params.yaml).

    Attributes:
        modalities: Modalities turned into scans; others are quarantined as unsupported.
        min_slices: Fewer slices than this is not a volume.
        localizer_orientations: A series with at least this many distinct slice orientations is a localizer.
        keep_other: Keep MR series whose kind is undetermined (kind "other") instead of quarantining them.
        t1_max_tr: Longest TR (ms) of a T1-weighted spin/gradient echo.
        t1_max_te: Longest TE (ms) of a T1-weighted sequence.
        t2_min_tr: Shortest TR (ms) of a T2-weighted sequence.
        t2_min_te: Shortest TE (ms) of a T2-weighted sequence.
        flair_min_ti: Shortest TI (ms) of a fluid-attenuated inversion recovery.
        t1_ir_ti: TI range (ms) of T1-weighted inversion-recovery (MPRAGE-like) sequences.
        t2star_max_tr: Longest TR (ms) of a T2*-weighted (susceptibility) gradient echo.
        t2star_min_te: Shortest TE (ms) of a T2*-weighted gradient echo; short TR with a long TE is not T1.
    """

    modalities: tuple[str, ...] = ("MR", "CT")
    min_slices: int = 10
    localizer_orientations: int = 3
    keep_other: bool = True
    t1_max_tr: float = 1200.0
    t1_max_te: float = 30.0
    t2_min_tr: float = 1500.0
    t2_min_te: float = 60.0
    flair_min_ti: float = 1400.0
    t1_ir_ti: tuple[float, float] = (300.0, 1400.0)
    t2star_max_tr: float = 150.0
    t2star_min_te: float = 15.0


@dataclass(frozen=True)
class SeriesDecision:
    """What to do with one series.

    Attributes:
        junk: The quarantine reason when the series is not used, else None.
        kind: The series kind (empty for junk).
        plane: The acquisition plane.
        reason: Why, in words (tag values and pattern names only).
        ct_kernel: CT kernel class (soft, bone, lung, unknown), empty for MR.
    """

    junk: Reason | None
    kind: str
    plane: str
    reason: str
    ct_kernel: str = ""

    @property
    def used(self) -> bool:
        """Whether the series goes on to volume building."""
        return self.junk is None


SC_CLASSES = {f"1.2.840.10008.5.1.4.1.1.7{s}" for s in ("", ".1", ".2", ".3", ".4")}
SR_PREFIX = "1.2.840.10008.5.1.4.1.1.88."
DOSE_SR = {"1.2.840.10008.5.1.4.1.1.88.67", "1.2.840.10008.5.1.4.1.1.88.68", "1.2.840.10008.5.1.4.1.1.88.74"}
NON_IMAGE_MODALITIES = {"SR", "PR", "KO", "RTPLAN", "RTSTRUCT", "RTRECORD", "ECG", "DOC", "REG", "AU", "HD"}
COLOR = re.compile(r"^(RGB|YBR|PALETTE)")

LOCALIZER_TEXT = re.compile(r"locali[sz]er|\bscout|survey|topogram|3[ -]?plane|tri[ -]?pilot|\bpilot|\bloc\b", re.I)
DOSE_TEXT = re.compile(r"\bdose\b|dose report|patient protocol", re.I)
SCREEN_TEXT = re.compile(r"screen ?(save|shot|capture)|snapshot", re.I)
DESCRIPTION_PATTERNS: tuple[tuple[Kind, str, re.Pattern[str]], ...] = (
    (Kind.ADC, "adc", re.compile(r"\badc\b|apparent diff", re.I)),
    (Kind.SWI, "swi", re.compile(r"\bswi|swan|susc|ven_?o?bold|\bswip|minip|\bsws\b", re.I)),
    (Kind.DWI, "dwi", re.compile(r"\bdwi|diffusion|\btrace|\bb ?1000|\bdw\b|ep2d_diff|resolve|\bdti\b", re.I)),
    (Kind.T1, "t1 flair", re.compile(r"t1[\s_-]*flair", re.I)),  # T1-weighted IR: a T1, despite its name
    (Kind.FLAIR, "flair", re.compile(r"flair|dark ?fluid|\bt2 ?fl|\bfl ?t2", re.I)),
    (Kind.T1, "t1", re.compile(r"\bt1|mprage|mp-rage|spgr|bravo|\btfe|vibe|mp2rage|\bmpr\b|\bse ?t1", re.I)),
    (Kind.T2, "t2", re.compile(r"\bt2|\btse\b|\bfse\b|propeller|blade|\bpd\b", re.I)),
)
CONTRAST_TEXT = re.compile(r"post|\+ ?c\b|\bc ?\+|\bgad|\bgd\b|contrast|\+gd|\bce\b", re.I)
KERNELS = (
    ("lung", re.compile(r"LUNG|\bL\d|B[7-9]0|I70|FC5\d|FC8[0-6]", re.I)),
    ("bone", re.compile(r"BONE|SHARP|EDGE|H[6-9]\d|B[5-6]\d|J[6-9]\d|FC3\d|\bYD|\bYB", re.I)),
    ("soft", re.compile(r"SOFT|STAND|STND|BRAIN|HEAD|SMOOTH|H[1-5]\d|B[1-4]\d|J[1-5]\d|FC[0-2]\d|\bUB", re.I)),
)


def group_series(instances: Iterable[Instance]) -> dict[str, list[Instance]]:
    """Group instances by SeriesInstanceUID (sorted by path for a deterministic order)."""
    groups: dict[str, list[Instance]] = defaultdict(list)
    for inst in instances:
        groups[inst.series_uid].append(inst)
    return {uid: sorted(members, key=lambda i: i.path) for uid, members in sorted(groups.items())}


def classify_series(instances: Sequence[Instance], config: SeriesConfig) -> SeriesDecision:
    """Decide whether a series is used, and its kind and plane.

    Args:
        instances: All instances of one series (at least one).
        config: Classification settings.

    Returns:
        The decision with its reason.
    """
    first = instances[0]
    plane, n_orient = series_plane(instances)
    junk = _junk_reason(instances, plane, n_orient, config)
    if junk is not None:
        return SeriesDecision(junk[0], "", plane, junk[1])
    if first.modality == "CT":
        kernel, why = ct_kernel(first)
        return SeriesDecision(None, Kind.CT, plane, f"modality CT; {why}; plane {plane}", kernel)
    kind, why = mr_kind(instances, config)
    if kind == Kind.OTHER and not config.keep_other:
        return SeriesDecision(Reason.UNSUPPORTED_MODALITY, "", plane, f"MR sequence undetermined ({why})")
    return SeriesDecision(None, kind, plane, f"modality MR; {why}; plane {plane}")


def _junk_reason(
    instances: Sequence[Instance], plane: str, n_orient: int, config: SeriesConfig
) -> tuple[Reason, str] | None:
    first = instances[0]
    image_type = {t for inst in instances[:3] for t in inst.image_type}
    text = description(first)
    n_frames = sum(len(i.frames) for i in instances)
    if first.sop_class in DOSE_SR or (first.modality == "SR" and DOSE_TEXT.search(text)):
        return Reason.DOSE_REPORT, f"radiation dose report (SOP class {first.sop_class})"
    if first.sop_class.startswith(SR_PREFIX) or first.modality == "SR":
        return Reason.STRUCTURED_REPORT, f"structured report document (SOP class {first.sop_class})"
    if first.modality in NON_IMAGE_MODALITIES or first.rows == 0 or first.columns == 0:
        return Reason.NON_IMAGE, f"not an image (modality {first.modality or 'none'}, no rows/columns)"
    if DOSE_TEXT.search(text) and (first.sop_class in SC_CLASSES or "SECONDARY" in image_type):
        return Reason.DOSE_REPORT, "dose report screen (description pattern 'dose', secondary image)"
    if "SCREEN SAVE" in image_type or SCREEN_TEXT.search(text):
        return Reason.DERIVED_SCREENSHOT, "derived screenshot (ImageType SCREEN SAVE or description pattern 'screen')"
    if first.sop_class in SC_CLASSES or first.header.get("ConversionType"):
        return Reason.SECONDARY_CAPTURE, f"secondary capture (SOP class {first.sop_class})"
    if first.samples != 1 or COLOR.match(first.photometric):
        return Reason.DERIVED_SCREENSHOT, f"colour image ({first.photometric}, {first.samples} samples): a rendering"
    if first.modality not in config.modalities:
        return Reason.UNSUPPORTED_MODALITY, f"modality {first.modality or 'none'} not in {list(config.modalities)}"
    if "LOCALIZER" in image_type:
        return Reason.LOCALIZER, "localizer (ImageType LOCALIZER)"
    if n_orient >= config.localizer_orientations:
        return Reason.LOCALIZER, f"localizer ({n_orient} slice orientations in one series)"
    if LOCALIZER_TEXT.search(text):
        return Reason.LOCALIZER, "localizer (description pattern 'localizer/scout/survey')"
    if n_frames < config.min_slices:
        return Reason.TOO_SHORT, f"{n_frames} slices < min_slices {config.min_slices}: not a volume"
    return None


def description(inst: Instance) -> str:
    """SeriesDescription and ProtocolName, for pattern matching only (never written out)."""
    h = inst.header
    return f"{h.get('SeriesDescription', '') or ''} {h.get('ProtocolName', '') or ''}".strip()


def series_plane(instances: Sequence[Instance]) -> tuple[str, int]:
    """The plane of the most common orientation, and how many distinct orientations the series holds."""
    counts: dict[tuple[int, ...], int] = defaultdict(int)
    for inst in instances:
        for frame in inst.frames:
            if frame.orientation is not None:
                # the cross product of row and column cosines in plain floats (np.cross's own products, without
                # its per-call cost on every frame of the series); 1/20 bins: the same plane despite jitter
                x0, x1, x2, y0, y1, y2 = frame.orientation
                normal = (x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0)
                counts[tuple(round(v * 20) for v in normal)] += 1
    if not counts:
        return Plane.UNKNOWN, 0
    top = max(counts, key=lambda k: counts[k])
    return plane_of([float(v) for v in top]), len(counts)


def plane_of(normal: Sequence[float]) -> Plane:
    """Axial, coronal or sagittal by the dominant component of the slice normal (oblique past 30 degrees)."""
    n = np.abs(np.asarray(normal, dtype=float))
    if not n.any():
        return Plane.UNKNOWN
    n = n / np.linalg.norm(n)
    axis = int(np.argmax(n))
    if n[axis] < np.cos(np.deg2rad(30)):
        return Plane.OBLIQUE
    return (Plane.SAGITTAL, Plane.CORONAL, Plane.AXIAL)[axis]


def mr_timing(inst: Instance) -> tuple[float | None, float | None, float | None]:
    """(TR, TE, TI) in ms, from classic attributes or enhanced functional groups."""
    h = inst.header
    tr, te, ti = as_float(h.get("RepetitionTime")), as_float(h.get("EchoTime")), as_float(h.get("InversionTime"))
    shared = h.get("SharedFunctionalGroupsSequence")
    groups = [shared[0]] if shared else []
    per_frame = h.get("PerFrameFunctionalGroupsSequence")
    if per_frame:
        groups.append(per_frame[0])
    for g in groups:
        for seq, attr in (("MRTimingAndRelatedParametersSequence", "RepetitionTime"),):
            if tr is None and g.get(seq):
                tr = as_float(g.get(seq)[0].get(attr))
        if te is None and g.get("MREchoSequence"):
            te = as_float(g.get("MREchoSequence")[0].get("EffectiveEchoTime"))
        if ti is None and g.get("MRModifierSequence"):
            ti = as_float(g.get("MRModifierSequence")[0].get("InversionTimes"))
    return tr, te, ti


def has_contrast_tag(inst: Instance) -> bool:
    """Whether the header records a contrast agent (classic or enhanced attributes)."""
    h = inst.header
    if str(h.get("ContrastBolusAgent", "") or "").strip():
        return True
    for item in h.get("ContrastBolusAgentSequence") or []:
        if item.get("CodeValue") or item.get("CodeMeaning"):
            return True
    shared = h.get("SharedFunctionalGroupsSequence")
    usage = shared[0].get("ContrastBolusUsageSequence") if shared else None
    return any(str(u.get("ContrastBolusAgentAdministered", "")).upper() == "YES" for u in usage or [])


def mr_kind(instances: Sequence[Instance], config: SeriesConfig) -> tuple[Kind, str]:
    """The MR sequence kind from tags first, description second, with the reason."""
    first = instances[0]
    kind, why, decisive = _kind_from_tags(instances, config)
    text = description(first)
    text_kind, pattern = next(((k, name) for k, name, rx in DESCRIPTION_PATTERNS if rx.search(text)), (None, ""))
    if kind is None and text_kind is not None:
        kind, why = text_kind, f"tags silent ({why}); description pattern '{pattern}'"
    elif kind is not None and not decisive and text_kind in (Kind.FLAIR, Kind.DWI, Kind.ADC, Kind.SWI):
        kind, why = text_kind, f"{why} is weak; description pattern '{pattern}' is more specific"
    if kind is None:
        return Kind.OTHER, f"no decisive tags ({why}) and no description pattern"
    if kind == Kind.T1:
        if has_contrast_tag(first):
            return Kind.T1C, f"{why}; contrast agent recorded in ContrastBolusAgent"
        if CONTRAST_TEXT.search(text):
            return Kind.T1C, f"{why}; description pattern 'post-contrast'"
    return kind, why


# Enhanced MR AcquisitionContrast values that name a kind (PROTON_DENSITY, T2_STAR, MIXED, ... do not).
ACQUISITION_CONTRAST = {"T1": Kind.T1, "T2": Kind.T2, "FLUID_ATTENUATED": Kind.FLAIR, "DIFFUSION": Kind.DWI}


def _kind_from_tags(instances: Sequence[Instance], cfg: SeriesConfig) -> tuple[Kind | None, str, bool]:
    first = instances[0]
    image_type = set(first.image_type)
    seq_name = " ".join(as_strings(first.header.get("SequenceName"))).lower()
    b_values = sorted({f.b_value for i in instances for f in i.frames if f.b_value is not None})
    if "ADC" in image_type or "ADC_UNSPECIFIED" in image_type:
        return Kind.ADC, "ImageType ADC", True
    if "SWI" in image_type or "MNIP" in image_type or "swi" in seq_name:
        return Kind.SWI, "ImageType/SequenceName SWI", True
    if any(b > 0 for b in b_values) or {"TRACEW", "DIFFUSION"} & image_type or re.search(r"ep_b\d", seq_name):
        return Kind.DWI, f"diffusion tags (b-values {[int(b) for b in b_values]}, ImageType/SequenceName)", True
    contrast = str(first.header.get("AcquisitionContrast", "") or "").strip().upper()
    if contrast in ACQUISITION_CONTRAST:  # Type 1 in the Enhanced MR Image module: the scanner's own statement
        return ACQUISITION_CONTRAST[contrast], f"AcquisitionContrast {contrast}", True
    tr, te, ti = mr_timing(first)
    timing = f"TR={_ms(tr)} TE={_ms(te)} TI={_ms(ti)}"
    if ti is not None and ti >= cfg.flair_min_ti:
        return Kind.FLAIR, f"{timing}: long-TI inversion recovery", True
    if ti is not None and cfg.t1_ir_ti[0] <= ti < cfg.t1_ir_ti[1] and (te is None or te <= cfg.t1_max_te):
        return Kind.T1, f"{timing}: T1-weighted inversion recovery", True
    if ti is not None and 0 < ti < cfg.t1_ir_ti[0]:
        return None, f"{timing}: short-TI inversion recovery (STIR)", False
    if te is not None and tr is not None:
        if tr <= cfg.t2star_max_tr and te >= cfg.t2star_min_te:
            return Kind.SWI, f"{timing}: short TR, long TE (T2*-weighted gradient echo)", False
        if te >= cfg.t2_min_te and tr >= cfg.t2_min_tr:
            return Kind.T2, f"{timing}: long TR, long TE", False
        if te <= cfg.t1_max_te and tr <= cfg.t1_max_tr:
            return Kind.T1, f"{timing}: short TR, short TE", False
    return None, timing, False


def _ms(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


def ct_kernel(inst: Instance) -> tuple[str, str]:
    """CT kernel class from ConvolutionKernel, or from the stored window when the kernel is unknown."""
    kernel = " ".join(as_strings(inst.header.get("ConvolutionKernel")))
    for name, rx in KERNELS:
        if kernel and rx.search(kernel):
            return name, f"kernel class {name} (ConvolutionKernel)"
    center = as_float(inst.header.get("WindowCenter"))
    width = as_float(inst.header.get("WindowWidth"))
    if center is not None and width is not None:
        name = "bone" if center >= 300 else ("lung" if center <= -300 else "soft")
        return name, f"kernel class {name} (from stored window L{center:g}/W{width:g})"
    return "unknown", "kernel class unknown (no kernel or window)"
