"""Radiology reports from a RIS export: RFC-4180 CSV with accession_number, patient_id, report_date, report_text.

Reports join studies by the DICOM AccessionNumber, compared as keyed hashes so that raw accession numbers never
leave memory. Text is scrubbed in the study's worker, where the study's own identifiers are known.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from dataclasses import dataclass

from hlip.data.deid import HashKey

REQUIRED_COLUMNS = ("accession_number", "report_text")


@dataclass(frozen=True)
class ReportRow:
    """One row of the RIS export (raw: in memory only).

    Attributes:
        row: 0-based row number in the CSV.
        accession: AccessionNumber.
        patient_id: Patient ID as the RIS knows it ("" when the column is absent).
        text: The report text.
    """

    row: int
    accession: str
    patient_id: str
    text: str

    def digest(self) -> str:
        """Content digest, part of the study fingerprint (an edited report re-ingests its study)."""
        return hashlib.sha256(f"{self.accession}\x00{self.patient_id}\x00{self.text}".encode()).hexdigest()[:16]

    def key(self, key: HashKey, length: int = 20) -> str:
        """The report's key."""
        return key.hash("report", f"{self.accession}\x00{self.row}", length)


def parse_reports(data: bytes) -> list[ReportRow]:
    """Parse the CSV (UTF-8, with or without BOM; quoted multi-line fields).

    Raises:
        ValueError: When a required column is missing.
    """
    text = data.decode("utf-8-sig", errors="replace")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in fields]
    if missing:
        raise ValueError(f"reports CSV lacks column(s) {missing}; has {fields}")
    rows = []
    for i, raw in enumerate(reader):
        rec = {str(k).strip().lower(): (v or "") for k, v in raw.items() if k is not None}
        rows.append(
            ReportRow(i, rec["accession_number"].strip(), rec.get("patient_id", "").strip(), rec["report_text"])
        )
    return rows


def index_reports(rows: list[ReportRow], key: HashKey, length: int = 20) -> dict[str, list[ReportRow]]:
    """Reports by keyed accession hash (rows without an accession are left out: the caller quarantines them)."""
    index: dict[str, list[ReportRow]] = defaultdict(list)
    for row in rows:
        if row.accession:
            index[key.hash("accession", row.accession, length)].append(row)
    return dict(index)
