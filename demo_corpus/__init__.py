"""The demo corpus: a deterministic, uncurated PACS-style export of brain MRI studies with reports.

The embedded default data of the pipeline. `generate_corpus` writes, under one folder::

    train/dicom/...                     nested export folders of DICOM files (junk and bad files included)
    train/reports.csv                   the RIS export: accession_number, patient_id, report_date, report_text
    benchmark/dicom/...                 held-out studies of other patients, the five classes balanced
    benchmark/reports.csv
    ground_truth/train_labels.csv       primary class and one 0/1 column per rendered finding
    ground_truth/benchmark_labels.csv   normal | stroke | glioma | meningioma | metastasis
    ground_truth/bad_files.csv          every deliberately bad file and its defect kind
    ground_truth/series.csv             every series with its true kind, plane and file count
    demo_corpus.json                    manifest: config and counts

Only evaluation may read ``ground_truth/``. Anatomy comes from the MNI152 template that nilearn ships; findings
are drawn where a radiologist would see them, some needing two series to tell from a mimic.
"""

from demo_corpus.config import DemoCorpusConfig
from demo_corpus.corpus import CorpusSummary, generate_corpus
from demo_corpus.preview import render_preview
from demo_corpus.vocabulary import CLASSES, DEFECT_KINDS, FINDINGS, SERIES_KINDS

__all__ = [
    "CLASSES",
    "DEFECT_KINDS",
    "FINDINGS",
    "SERIES_KINDS",
    "CorpusSummary",
    "DemoCorpusConfig",
    "generate_corpus",
    "render_preview",
]
