"""Junk objects a curator drops: a secondary-capture screenshot with burned-in text, and a text SR document."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import BasicTextSRStorage, SecondaryCaptureImageStorage

from demo_corpus.identity import SITES
from demo_corpus.plan import StudyPlan, uid
from demo_corpus.protocol import SeriesPlan


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def screenshot_pixels(study: StudyPlan, thumbnail: NDArray[np.uint16] | None) -> NDArray[np.uint8]:
    """An RGB report-page screenshot ``[240, 320, 3]``: patient identity and exam lines burned in, plus a thumbnail."""
    from PIL import Image, ImageDraw, ImageFont  # imported here: only writers need it

    image = Image.new("RGB", (320, 240), (12, 12, 28))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=11)
    p = study.patient
    lines = [
        f"{SITES[study.site].institution}",
        f"Name: {p.family}, {p.given}",
        f"ID: {p.patient_id}   DOB: {p.birth_date}",
        f"Acc: {study.accession}   {study.date}",
        "MR BRAIN - EXAM SUMMARY",
        f"Series: {len(study.series)}",
    ]
    for i, line in enumerate(lines):
        draw.text((8, 8 + 16 * i), line, fill=(230, 230, 120) if i < 4 else (200, 200, 200), font=font)
    if thumbnail is not None:
        scaled = thumbnail.astype(np.float32)
        scaled = np.clip(scaled / max(1.0, float(np.percentile(scaled, 99.5))), 0.0, 1.0) * 255.0
        thumb = Image.fromarray(scaled.astype(np.uint8)).resize((112, 112), Image.Resampling.BILINEAR)
        image.paste(thumb.convert("RGB"), (200, 120))
    return np.asarray(image, dtype=np.uint8).copy()


def secondary_capture(base: Dataset, series: SeriesPlan, rows: int, cols: int) -> Dataset:
    """A Secondary Capture Image Storage instance (RGB, burned-in annotation)."""
    ds = Dataset()
    ds.update(base)
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, uid(0, series.uid, 1)
    ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    ds.ConversionType, ds.InstanceNumber, ds.BurnedInAnnotation = "WSD", 1, "YES"
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    return ds


def text_report(base: Dataset, study: StudyPlan, series: SeriesPlan, rng: np.random.Generator) -> Dataset:
    """A Basic Text SR exam summary (no pixels), naming the patient now and then."""
    ds = Dataset()
    ds.update(base)
    ds.SOPClassUID, ds.SOPInstanceUID = BasicTextSRStorage, uid(0, series.uid, 1)
    ds.InstanceNumber, ds.ContentDate, ds.ContentTime = 1, study.date, study.time
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.ConceptNameCodeSequence = Sequence([_code("18748-4", "LN", "Diagnostic Imaging Report")])
    ds.ReferencedPerformedProcedureStepSequence = Sequence([])
    ds.PerformedProcedureCodeSequence = Sequence([])
    texts = [
        f"Exam summary, {len(study.series)} series acquired.",
        f"Whole-body SAR {rng.uniform(0.4, 2.8):.2f} W/kg; peak dB/dt {rng.uniform(20, 80):.0f} T/s.",
    ]
    if rng.random() < 0.5:
        texts.append(f"Patient {study.patient.display_name} ({study.patient.patient_id}) tolerated the exam well.")
    content = []
    for text in texts:
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
        item.ConceptNameCodeSequence = Sequence([_code("121106", "DCM", "Comment")])
        item.TextValue = text
        content.append(item)
    ds.ContentSequence = Sequence(content)
    return ds
