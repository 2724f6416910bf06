"""Scrubbing identifiers out of free-text radiology reports.

Two passes. First the identifiers the study's own headers (and the RIS row) hold are removed wherever they occur:
patient and staff names (each name part too), patient and record IDs, accession numbers, institution and address
parts, birth dates. Then patterns catch what no header names: dates in the usual written forms, phone numbers,
e-mail addresses, labelled record numbers, long digit runs and "Dr. Someone" signatures.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from hlip.data.dicom import keyword_tags

NAME_TAGS = (
    "PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "ReferringPhysicianName",
    "PerformingPhysicianName", "OperatorsName", "NameOfPhysiciansReadingStudy", "PhysiciansOfRecord",
    "RequestingPhysician", "ResponsiblePerson",
)  # fmt: skip
ID_TAGS = ("PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "MedicalRecordLocator", "AdmissionID")
PLACE_TAGS = (
    "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName", "PatientAddress",
    "ReferringPhysicianAddress", "PatientTelephoneNumbers", "ReferringPhysicianTelephoneNumbers",
)  # fmt: skip
DATE_TAGS = ("PatientBirthDate",)
_NAME, _ID, _PLACE, _DATE = (tuple(keyword_tags(t).values()) for t in (NAME_TAGS, ID_TAGS, PLACE_TAGS, DATE_TAGS))
MIN_TERM = 3  # shorter fragments ("Jo", "12") would shred ordinary words and measurements

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("[EMAIL]", re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")),
    ("[DATE]", re.compile(r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b")),
    ("[DATE]", re.compile(r"\b\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})\b")),
    ("[DATE]", re.compile(rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}\b", re.IGNORECASE)),
    ("[DATE]", re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+\d{{4}}\b", re.IGNORECASE)),
    ("[DATE]", re.compile(rf"\b{_MONTH}\s+\d{{4}}\b", re.IGNORECASE)),
    ("[PHONE]", re.compile(r"(?<!\w)(?:\+?\d{1,3}[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}\b")),
    (
        "[ID]",
        re.compile(
            r"\b(?:MRN|MR\s*#|medical\s+record(?:\s+(?:number|no\.?))?|record\s*(?:number|no\.?|#)|"
            r"acc(?:ession)?\s*(?:number|no\.?|#)?|patient\s*id|pid)\s*[:#]?\s*[A-Z0-9][A-Z0-9-]{2,}",
            re.IGNORECASE,
        ),
    ),
    ("[ID]", re.compile(r"\b[A-Z]{0,4}\d{6,}\b")),
    ("[NAME]", re.compile(r"\b(?:Dr|Doctor|Prof)\.?\s+[A-Z][A-Za-z'-]+(?:\s+[A-Z][A-Za-z'-]+)?")),
    (
        "[NAME]",
        re.compile(r"(?:signed|dictated|read|reported|transcribed|verified)\s+by\s*:?[^\n]*", re.IGNORECASE),
    ),
)


@dataclass
class Identifiers:
    """The identifying strings of one study, gathered from its headers (held in memory only, never written)."""

    names: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)
    places: set[str] = field(default_factory=set)
    dates: set[str] = field(default_factory=set)

    def update(self, other: Identifiers) -> None:
        """Add another set of identifiers."""
        self.names |= other.names
        self.ids |= other.ids
        self.places |= other.places
        self.dates |= other.dates

    def all_values(self) -> set[str]:
        """Every identifying value (used by tests and leak checks)."""
        return self.names | self.ids | self.places | self.dates


def identifiers_from_dataset(ds: Dataset) -> Identifiers:
    """Collect the identifying values of a header."""
    found = Identifiers()
    elements = ds._dict  # every header of a study is read: one dict lookup per absent tag, not a keyword lookup
    for tags, bucket in ((_NAME, found.names), (_ID, found.ids), (_PLACE, found.places), (_DATE, found.dates)):
        for tag in tags:
            if tag in elements:
                bucket.update(_values(ds[tag]))
    return found


def scrub_report(text: str, identifiers: Identifiers) -> tuple[str, int]:
    """Remove identifiers from a report.

    Args:
        text: The report as written.
        identifiers: The study's identifying values.

    Returns:
        The scrubbed text and the number of replacements made.
    """
    count = 0
    for token, terms in (
        ("[NAME]", _name_terms(identifiers.names)),
        ("[ID]", identifiers.ids),
        ("[ADDRESS]", _place_terms(identifiers.places)),
        ("[DATE]", _date_terms(identifiers.dates)),
    ):
        for term in sorted({t for t in terms if len(t) >= MIN_TERM}, key=len, reverse=True):
            pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(term)}(?![A-Za-z0-9])", re.IGNORECASE)
            text, n = pattern.subn(token, text)
            count += n
    for token, pattern in PATTERNS:
        text, n = pattern.subn(functools.partial(_keep_label, token=token), text)
        count += n
    return text, count


def _keep_label(match: re.Match[str], token: str) -> str:
    matched = match.group(0)
    # "Dr. Smith" -> "Dr. [NAME]", "MRN: 123" -> "MRN: [ID]": the label carries no identity and keeps the text readable
    if token == "[NAME]" and matched[:2].lower() in ("dr", "do", "pr"):
        return matched.split()[0] + " " + token
    if token == "[ID]" and not matched[0].isdigit() and re.search(r"[:#\s]", matched):
        label = re.split(r"[:#\s]+[A-Z0-9][A-Z0-9-]*$", matched, flags=re.IGNORECASE)[0]
        return f"{label}: {token}" if label and label != matched else token
    return token


def _values(elem: Any) -> list[str]:
    if elem is None:
        return []
    value = getattr(elem, "value", elem)
    items = list(value) if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue" else [value]
    return [str(v).strip() for v in items if v is not None and str(v).strip()]


def _name_terms(names: Iterable[str]) -> set[str]:
    terms: set[str] = set()
    for name in names:
        parts = [p for p in re.split(r"[\^,\s=]+", name) if p]
        terms.update(parts)
        terms.add(" ".join(parts))
        if len(parts) >= 2:
            terms.add(f"{parts[1]} {parts[0]}")  # DICOM stores Family^Given; reports write "Given Family"
            terms.add(f"{parts[0]}, {parts[1]}")
    return terms


def _place_terms(places: Iterable[str]) -> set[str]:
    terms: set[str] = set()
    for place in places:
        terms.add(place)
        terms.update(p.strip() for p in re.split(r"[\^,;\n]+", place) if len(p.strip()) >= 4)
    return terms


def _date_terms(dates: Iterable[str]) -> set[str]:
    terms: set[str] = set()
    for date in dates:
        terms.add(date)
        if re.fullmatch(r"\d{8}", date):
            y, m, d = date[:4], date[4:6], date[6:]
            terms.update({f"{y}-{m}-{d}", f"{m}/{d}/{y}", f"{d}/{m}/{y}", f"{d}.{m}.{y}", f"{y}/{m}/{d}"})
    return terms
