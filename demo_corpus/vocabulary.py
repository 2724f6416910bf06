"""Names shared by every part of the demo corpus: classes, findings, series kinds, planes and defects.

These strings are the contract with ingestion and evaluation: they appear verbatim in the ground-truth CSV files.
"""

from __future__ import annotations

from typing import Final

#: The five study classes of the held-out benchmark (Pub-Brain-5 style). ``normal`` is the absence of the others.
CLASSES: Final = ("normal", "stroke", "glioma", "meningioma", "metastasis")

#: Findings a study can carry: the four class findings, then mimics and incidentals. One 0/1 column each in
#: ``ground_truth/train_labels.csv``.
PRIMARY_FINDINGS: Final = ("stroke", "glioma", "meningioma", "metastasis")
SECONDARY_FINDINGS: Final = (
    "white_matter_hyperintensity",  # FLAIR/T2 bright foci (small-vessel disease), incidental
    "microbleeds",  # SWI dark dots, incidental
    "t2_shine_through",  # DWI bright but ADC not dark: a stroke mimic
    "t1_hyperintensity",  # bright on T1 and T1 post-contrast alike: an enhancement mimic
)
FINDINGS: Final = PRIMARY_FINDINGS + SECONDARY_FINDINGS

#: True kinds of the generated series (``ground_truth/series.csv``). The first seven are images a curator keeps.
IMAGING_KINDS: Final = ("t1", "t2", "flair", "dwi", "adc", "t1c", "swi")
JUNK_KINDS: Final = ("localizer", "secondary_capture", "sr")
SERIES_KINDS: Final = IMAGING_KINDS + JUNK_KINDS

PLANES: Final = ("axial", "sagittal", "coronal")

#: Kinds of deliberately bad files (``ground_truth/bad_files.csv``).
DEFECT_KINDS: Final = (
    "truncated",  # a DICOM file cut short
    "not_dicom",  # .DS_Store, Thumbs.db, a PDF or a text log in the export tree
    "empty",  # zero bytes
    "no_pixel_data",  # an image SOP instance whose PixelData is missing
    "inconsistent_series",  # one slice of a series with another matrix or orientation
    "duplicate",  # an exact byte copy of a good file under another name
    "short_series",  # a series of one or two slices, too short to be a volume
)

PARTS: Final = ("train", "benchmark")

VENDORS: Final = ("SIEMENS", "GE MEDICAL SYSTEMS", "Philips")
