"""Free-text radiology reports consistent with a study's rendered findings, worded as radiologists vary it.

Every rendered finding is mentioned (now and then with hedging, which the ground truth records as uncertain);
absent findings are sometimes negated ("no acute infarct") and never asserted. Wording depends on the series
the study holds: a reader without DWI cannot say "restricted diffusion". Reports sometimes carry the patient's
name, MRN, dates, a phone number and the referring physician, for de-identification to remove.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from demo_corpus.finding import Finding
from demo_corpus.identity import Patient, phone, readable_physician

_HEDGES = ("Possible", "Cannot exclude", "Questionable", "Findings may represent")


@dataclass(frozen=True)
class ReportContext:
    """What the reading radiologist knows besides the images."""

    patient: Patient
    kinds: frozenset[str]  # series kinds the study holds
    study_date: str  # YYYYMMDD
    referring: str  # DICOM person name
    radiologist: str
    accession: str
    prior_date: str | None  # YYYYMMDD of the compared study, for follow-ups


def _date(d: str, style: int) -> str:
    return f"{d[4:6]}/{d[6:]}/{d[:4]}" if style else f"{d[:4]}-{d[4:6]}-{d[6:]}"


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return str(options[int(rng.integers(len(options)))])


def _where(f: Finding) -> str:
    return f"{f.side} {f.region}" if f.side in ("left", "right") else f.region


def _stroke(rng: np.random.Generator, f: Finding, k: frozenset[str], hedge: bool) -> tuple[str, str]:
    terr = f"{f.side} {f.territory} territory"
    if "dwi" in k and "adc" in k and not hedge:
        body = _pick(
            rng,
            (
                f"There is an area of restricted diffusion in the {terr}, involving the {f.region} cortex and "
                "subjacent white matter, with corresponding low ADC values.",
                f"Cortical and subcortical DWI hyperintensity with ADC hypointensity in the {f.side} {f.region} "
                f"measuring approximately {f.size_cm} cm.",
                f"Acute infarct in the {f.side} {f.region} ({f.territory} territory) demonstrating diffusion "
                "restriction. Mild FLAIR signal change.",
            ),
        )
        impression = _pick(
            rng,
            (
                f"Acute {terr} infarct.",
                f"Findings consistent with acute ischemic stroke in the {f.side} {f.region}.",
                f"Acute infarction, {terr}.",
            ),
        )
    elif "dwi" in k and not hedge:
        body = (
            f"DWI hyperintensity in the {f.side} {f.region} in the {f.territory} distribution; the ADC map was not "
            "sent to PACS."
        )
        impression = f"Acute infarct in the {terr}."
    else:
        body = (
            f"Ill-defined T2/FLAIR hyperintensity of the cortex and subcortical white matter in the {terr} with "
            "gyral swelling."
        )
        impression = f"{_pick(rng, _HEDGES)} acute to subacute infarct in the {terr}."
    return body, impression


def _glioma(rng: np.random.Generator, f: Finding, k: frozenset[str], hedge: bool) -> tuple[str, str]:
    size = f"{f.size_cm} x {round(f.size_cm * 0.8, 1)} cm"
    enh = " No significant enhancement." if "t1c" in k else ""
    tissue = "white matter" if f.region.endswith("lobe") else "region"
    body = _pick(
        rng,
        (
            f"Infiltrative T2/FLAIR hyperintense lesion centered in the {_where(f)} {tissue} measuring {size}, "
            f"with mass effect on the adjacent ventricle and sulcal effacement.{enh}",
            f"Poorly marginated expansile signal abnormality in the {_where(f)}, hypointense on T1 and hyperintense "
            f"on T2/FLAIR, measuring about {size}. Effacement of the regional sulci.{enh}",
        ),
    )
    if hedge:
        return body, f"{_pick(rng, _HEDGES)} infiltrative glioma of the {_where(f)}; recommend follow-up."
    return body, _pick(
        rng,
        (
            f"Infiltrative {_where(f)} mass, most consistent with a diffuse glioma.",
            f"Non-enhancing infiltrative mass of the {_where(f)}, favor low-grade glial neoplasm.",
            f"{_where(f).capitalize()} glioma with mild mass effect.",
        ),
    )


def _meningioma(rng: np.random.Generator, f: Finding, k: frozenset[str], hedge: bool) -> tuple[str, str]:
    where = f"{f.side} {f.region}" if f.region != "falx" else f"falx, {f.side} side"
    enh = " with avid homogeneous enhancement and a dural tail" if "t1c" in k else ""
    body = _pick(
        rng,
        (
            f"Extra-axial dural-based mass along the {where} measuring {f.size_cm} cm, isointense to gray "
            f"matter{enh}. Mild mass effect on the underlying parenchyma.",
            f"There is a {f.size_cm} cm well-circumscribed extra-axial lesion arising from the {where}{enh}, with a "
            "CSF cleft and mild local mass effect.",
        ),
    )
    if hedge or "t1c" not in k:
        return (
            body,
            f"Extra-axial mass along the {where}, {_pick(rng, ('possibly', 'questionably'))} a meningioma; "
            "post-contrast imaging recommended.",
        )
    return body, _pick(
        rng,
        (
            f"{f.size_cm} cm {where} meningioma.",
            f"Extra-axial enhancing mass, most compatible with meningioma ({where}).",
        ),
    )


def _metastasis(rng: np.random.Generator, f: Finding, k: frozenset[str], hedge: bool) -> tuple[str, str]:
    if "t1c" in k and not hedge:
        body = _pick(
            rng,
            (
                f"Multiple ({f.count}) ring-enhancing lesions at the gray-white matter junction, the largest in the "
                f"{f.side} {f.region} measuring {f.size_cm} cm, with surrounding vasogenic edema.",
                f"{f.count} enhancing lesions are present at the gray-white junction ({f.side} {f.region} largest, "
                f"{f.size_cm} cm), with central necrosis in the larger ones and perilesional edema.",
            ),
        )
        return body, _pick(
            rng,
            (
                "Multiple enhancing lesions, consistent with metastatic disease.",
                f"Multiple brain metastases ({f.count}).",
                "Findings compatible with intracranial metastases.",
            ),
        )
    body = (
        f"{f.count} foci of FLAIR hyperintensity at the gray-white junction with surrounding vasogenic edema, the "
        f"largest in the {f.side} {f.region}."
    )
    return (
        body,
        f"Multiple lesions with edema, suspicious for metastases. {_pick(rng, _HEDGES)} metastatic disease; "
        "recommend contrast-enhanced MRI.",
    )


def _secondary(rng: np.random.Generator, f: Finding, k: frozenset[str], present: set[str]) -> tuple[str, str]:
    if f.name == "white_matter_hyperintensity":
        return _pick(
            rng,
            (
                "Scattered punctate foci of T2/FLAIR hyperintensity in the periventricular and deep white matter, "
                "nonspecific but most likely chronic microvascular ischemic change.",
                f"Several ({f.count}) small white matter hyperintensities, Fazekas grade 1.",
            ),
        ), "Mild chronic small vessel ischemic change."
    if f.name == "microbleeds":
        return (
            f"{f.count} punctate foci of susceptibility blooming on SWI in the subcortical and deep regions, "
            "consistent with chronic microhemorrhages.",
            "Scattered cerebral microbleeds.",
        )
    if f.name == "t2_shine_through" and "stroke" in present:
        return (
            f"Separate focus of DWI hyperintensity in the {f.side} {f.region} without ADC correlate, consistent "
            "with T2 shine-through.",
            f"Additional T2 shine-through focus in the {f.side} {f.region}.",
        )
    if f.name == "t2_shine_through":
        return (
            f"Focus of DWI hyperintensity in the {f.side} {f.region} without corresponding ADC hypointensity, "
            "consistent with T2 shine-through from a chronic lesion; no restricted diffusion.",
            f"T2 shine-through in the {f.side} {f.region}, not an acute infarct.",
        )
    post = ", unchanged on post-contrast images, without enhancement" if "t1c" in k else ""
    return (
        f"Small focus of intrinsic T1 hyperintensity in the {f.side} {f.region}{post}; may reflect blood products "
        "or proteinaceous content.",
        f"Intrinsic T1 hyperintense focus in the {f.side} {f.region}, nonspecific.",
    )


_PRIMARY = {"stroke": _stroke, "glioma": _glioma, "meningioma": _meningioma, "metastasis": _metastasis}


def _negations(rng: np.random.Generator, present: set[str], k: frozenset[str]) -> list[str]:
    """Pertinent negatives, only for what is truly absent."""
    out = []
    if "stroke" not in present:
        out.append(
            _pick(
                rng,
                (
                    "No restricted diffusion to suggest acute infarct.",
                    "No acute infarct.",
                    "No evidence of acute ischemia.",
                )
                if "dwi" in k
                else ("No acute infarct.",),
            )
        )
    if not present & {"glioma", "meningioma", "metastasis"}:
        out.append(
            _pick(
                rng,
                (
                    "No intracranial mass, mass effect or midline shift.",
                    "No mass lesion.",
                    "There is no mass effect or midline shift.",
                ),
            )
        )
    if "t1c" in k and not present & {"meningioma", "metastasis"}:
        out.append(_pick(rng, ("No abnormal parenchymal or meningeal enhancement.", "No abnormal enhancement.")))
    if "meningioma" not in present:
        out.append("No extra-axial collection.")
    bleeds = present & {"microbleeds", "t1_hyperintensity"}
    out.append(
        _pick(
            rng, ("No acute intracranial hemorrhage.", "Normal flow voids.") + (() if bleeds else ("No hemorrhage.",))
        )
    )
    out.append(
        _pick(
            rng,
            (
                "The ventricles and sulci are normal in size for age.",
                "Mild generalized volume loss.",
                "Ventricles are normal in size and configuration.",
            ),
        )
    )
    keep = [s for s in out if rng.random() < 0.75]
    return keep or out[:1]


def _header(rng: np.random.Generator, ctx: ReportContext, style: int) -> list[str]:
    lines = []
    if rng.random() < 0.3:
        p = ctx.patient
        lines.append(
            f"Patient: {p.family}, {p.given.title()}   MRN: {p.patient_id}   DOB: {_date(p.birth_date, style)}"
        )
    contrast = "WITHOUT AND WITH CONTRAST" if "t1c" in ctx.kinds else "WITHOUT CONTRAST"
    lines.append(f"EXAM: MRI BRAIN {contrast}" if style else f"Examination: MR brain {contrast.lower()}")
    history = _pick(
        rng,
        (
            "Headache.",
            "Dizziness.",
            "Rule out stroke.",
            "Confusion, evaluate.",
            "Seizure.",
            "Known malignancy, staging.",
            "Follow-up.",
            "Left-sided weakness.",
            "Memory loss.",
        ),
    )
    lines.append(f"CLINICAL HISTORY: {history}" if style else f"Indication: {history}")
    if ctx.prior_date:
        lines.append(f"COMPARISON: MRI brain {_date(ctx.prior_date, style)}.")
    elif rng.random() < 0.5:
        lines.append("COMPARISON: None.")
    return lines


def write_report(
    rng: np.random.Generator,
    ctx: ReportContext,
    findings: Sequence[Finding],
    hedge_share: float = 0.12,
) -> tuple[str, tuple[str, ...]]:
    """Write one study's report.

    Args:
        rng: The study's report generator.
        ctx: Patient, series kinds, dates and names.
        findings: The rendered findings; each is mentioned.
        hedge_share: Chance that a primary finding is reported with uncertainty.

    Returns:
        The report text and the findings reported with uncertainty ("possible", "cannot exclude").
    """
    style = int(rng.integers(2))
    present = {f.name for f in findings}
    body: list[str] = []
    impressions: list[str] = []
    uncertain: list[str] = []
    for f in findings:
        if f.name in _PRIMARY:
            hedge = rng.random() < hedge_share
            text, imp = _PRIMARY[f.name](rng, f, ctx.kinds, hedge)
            if any(h.lower() in imp.lower() for h in (*_HEDGES, "possibly", "questionably", "suspicious")):
                uncertain.append(f.name)
        else:
            text, imp = _secondary(rng, f, ctx.kinds, present)
        body.append(text)
        impressions.append(imp)
    body.extend(_negations(rng, present, ctx.kinds))
    if rng.random() < 0.2:
        body.append(
            _pick(
                rng,
                (
                    "Mild mucosal thickening in the left maxillary sinus.",
                    "Small retention cyst in the right maxillary sinus.",
                ),
            )
        )
    if not any(f.name in _PRIMARY for f in findings):
        impressions.insert(
            0,
            _pick(
                rng,
                (
                    "No acute intracranial abnormality.",
                    "Normal MRI of the brain.",
                    "Unremarkable MRI brain.",
                    "No evidence of acute intracranial process.",
                ),
            ),
        )
    if ctx.prior_date and present & set(_PRIMARY):
        impressions.append(
            _pick(
                rng, ("Stable compared with the prior examination.", "Slight interval change compared with the prior.")
            )
        )
    lines = _header(rng, ctx, style)
    lines += ["", "FINDINGS:" if style else "Findings:", " ".join(body), "", "IMPRESSION:" if style else "Impression:"]
    lines += [f"{i + 1}. {s}" for i, s in enumerate(impressions)] if len(impressions) > 1 else impressions
    if present & set(_PRIMARY) and rng.random() < 0.35:
        lines.append(
            f"Findings discussed with {readable_physician(ctx.referring)} at {phone(rng)} on "
            f"{_date(ctx.study_date, style)}."
        )
    if rng.random() < 0.5:
        lines += [
            "",
            f"Electronically signed by {readable_physician(ctx.radiologist)} on {_date(ctx.study_date, style)}",
        ]
    return "\n".join(lines), tuple(uncertain)
