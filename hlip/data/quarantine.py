"""The quarantine: every rejected file, series (or part of one), study or report, with a reason code.

Nothing is dropped silently. Each input file ends in exactly one place: used by a scan, or named by one quarantine
entry at file level, or covered by one entry at series level. Reason codes are stable strings (they are counted in
the summary and compared against ground truth); the message says the details for a human.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Level(StrEnum):
    """What a quarantine entry rejects."""

    FILE = "file"
    SERIES = "series"
    STUDY = "study"
    REPORT = "report"


class Reason(StrEnum):
    """Why something was rejected."""

    # file level: the file cannot be used at all
    EMPTY_FILE = "empty_file"
    NOT_DICOM = "not_dicom"
    TRUNCATED = "truncated"
    UNREADABLE = "unreadable"
    BROKEN_LINK = "broken_link"
    LINK_LOOP = "link_loop"
    NOT_REGULAR_FILE = "not_regular_file"
    INVALID_NAME = "invalid_name"
    IMPLAUSIBLE_HEADER = "implausible_header"
    IMPLAUSIBLE_RESCALE = "implausible_rescale"
    IMPLAUSIBLE_SPACING = "implausible_spacing"
    DICOMDIR = "dicomdir"
    MISSING_UID = "missing_uid"
    DUPLICATE_FILE = "duplicate_file"
    DUPLICATE_INSTANCE = "duplicate_instance"
    MISSING_PIXEL_DATA = "missing_pixel_data"
    UNSUPPORTED_TRANSFER_SYNTAX = "unsupported_transfer_syntax"
    PIXEL_DECODE_ERROR = "pixel_decode_error"
    INCONSISTENT_SLICE = "inconsistent_slice"
    # series level: junk, or a series that cannot make a volume
    LOCALIZER = "localizer"
    SECONDARY_CAPTURE = "secondary_capture"
    STRUCTURED_REPORT = "structured_report"
    DOSE_REPORT = "dose_report"
    DERIVED_SCREENSHOT = "derived_screenshot"
    NON_IMAGE = "non_image"
    UNSUPPORTED_MODALITY = "unsupported_modality"
    TOO_SHORT = "too_short"
    MISSING_GEOMETRY = "missing_geometry"
    SLICE_GAP = "slice_gap"
    DUPLICATE_POSITION = "duplicate_position"
    IRREGULAR_SPACING = "irregular_spacing"
    PREPROCESS_ERROR = "preprocess_error"
    BURNED_IN_ANNOTATION = "burned_in_annotation"
    INTERNAL_ERROR = "internal_error"
    # study level
    NO_USABLE_SCANS = "no_usable_scans"
    IDENTITY_CONFLICT = "identity_conflict"
    # report level
    REPORT_WITHOUT_STUDY = "report_without_study"
    EMPTY_REPORT = "empty_report"
    REPORT_PATIENT_MISMATCH = "report_patient_mismatch"
    MISSING_ACCESSION = "missing_accession"


@dataclass(frozen=True)
class QuarantineEntry:
    """One rejection.

    Attributes:
        level: File, series, study or report.
        subject: The relative source path (file level) or the key of the series part, study or report.
        reason: The reason code.
        message: Details for a human; never holds header free text or identifiers.
        study_key: The study it belongs to, when known.
        series_key: The series it belongs to, when known.
    """

    level: Level
    subject: str
    reason: Reason
    message: str
    study_key: str = ""
    series_key: str = ""

    @property
    def entry_id(self) -> str:
        """A stable id, referenced from the files table."""
        return f"{self.level.value}:{self.subject}:{self.reason.value}"

    def as_row(self) -> dict[str, str]:
        """The row written to `quarantine.parquet`."""
        return {
            "entry_id": self.entry_id,
            "level": self.level.value,
            "subject": self.subject,
            "reason": self.reason.value,
            "message": self.message,
            "study_key": self.study_key,
            "series_key": self.series_key,
        }


class RejectedError(Exception):
    """Raised by readers and checks to reject something with a reason code.

    Args:
        reason: The reason code.
        message: Details for a human.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason
        self.message = message
