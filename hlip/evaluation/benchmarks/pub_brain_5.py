"""Pub-Brain-5 (HLIP's five-class brain MRI benchmark), assembled from five public datasets as HLIP does.

HLIP (Zch0414/hlip data/README.md, data/pub_brain_5/*/process.py) builds it from Open-BHB (healthy), the ICPSR 38464
acute stroke set (stroke), BraTS 2023 GLI/MEN/MET (glioma, meningioma, metastasis), NYUMets and UCSF-BMSR
(metastasis): one folder per study holding one NIfTI per sequence, plus a uid/label table (data/pub_brain_5/
pub_brain_5.csv: `study` = the study folder, one-hot columns Normal, Stroke, Glioma, Meningioma, Metastasis).

Expected layout (`data_root` = the folder the table's study paths point into)::

    pub_brain_5/
    ├── pub_brain_5.csv                         study,Normal,Stroke,Glioma,Meningioma,Metastasis
    ├── open_bhb/<study>/*.nii.gz
    ├── stroke/<study>/*.nii.gz
    ├── brats23/test/adult_glioma/<study>/BraTS-GLI-...-t1c.nii.gz, -t1n, -t2w, -t2f
    ├── nyu_mets/NYU_Mets_<patient>_<exam>/*.nii.gz
    └── ucsf_mets/<study>/*.nii.gz

`study` values may be absolute as in HLIP's table (``/data/pub_brain_5/nyu_mets/NYU_Mets_...``): the prefix
`strip_prefix` is removed, the rest is the study folder under `data_root` and the study id. Every ``.nii``/``.nii.gz``
in a study folder is one scan (file names containing ``seg`` or ``mask`` are labels, skipped as HLIP's BraTS
processing does), in name order; MRI is preprocessed by the project's pipeline (percentile clip, orientation,
spacing, crop/pad). Classes: normal, stroke, glioma, meningioma, metastasis (HLIP: Normal prompts as "No significant
abnormalities"); multiclass.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from hlip.data.contract import StudyContract
from hlip.evaluation.benchmarks.base import Task
from hlip.evaluation.benchmarks.common import (
    BenchmarkDataError,
    TableBenchmark,
    prepare,
    read_csv,
    read_nifti,
    require_path,
    stack_scans,
)

CLASSES = ("normal", "stroke", "glioma", "meningioma", "metastasis")
COLUMNS = ("Normal", "Stroke", "Glioma", "Meningioma", "Metastasis")
HLIP_PREFIX = "/data/pub_brain_5/"


def scan_files(folder: Path) -> list[Path]:
    """The sequences of a study folder: NIfTI files that are not segmentations or masks, by name."""
    files = [p for p in folder.iterdir() if p.is_file() and p.name.endswith((".nii", ".nii.gz"))]
    return sorted(p for p in files if "seg" not in p.name.lower() and "mask" not in p.name.lower())


class PubBrain5Benchmark(TableBenchmark):
    """Pub-Brain-5 brain MRI, multiclass.

    Args:
        data_root: The assembled folder (see the module docstring).
        contract: The evaluated model's study contract (preprocessing and scan choice); default the library's.
        labels_csv: The uid/label table; default `data_root/pub_brain_5.csv`.
        strip_prefix: Removed from the start of `study` values (HLIP's table uses absolute paths).
        classes: Must stay all five (multiclass); accepted for a uniform signature.
    """

    name: ClassVar[str] = "pub_brain_5"
    task: ClassVar[Task] = "multiclass"
    prompts: ClassVar[str] = "pub_brain_5"
    ALL_CLASSES: ClassVar[tuple[str, ...]] = CLASSES

    def __init__(
        self,
        data_root: str | Path,
        contract: StudyContract | None = None,
        labels_csv: str | Path | None = None,
        strip_prefix: str = HLIP_PREFIX,
        classes: Sequence[str] | None = None,
    ) -> None:
        if classes is not None and tuple(classes) != CLASSES:
            raise ValueError(f"pub_brain_5 is multiclass: classes must be {list(CLASSES)}")
        self._init_table(None, contract)
        self.data_root = require_path(Path(data_root), "Pub-Brain-5 folder", folder=True)
        self.preprocess = self.contract.preprocess
        path = Path(labels_csv) if labels_csv else self.data_root / "pub_brain_5.csv"
        table = read_csv(path, "Pub-Brain-5 labels", ["study", *COLUMNS], dtype={"study": str})
        rows: dict[str, list[int]] = {}
        self._folders: dict[str, Path] = {}
        for row in table.itertuples(index=False):
            study = str(row[0])
            sid = study[len(strip_prefix) :] if strip_prefix and study.startswith(strip_prefix) else study
            sid = sid.strip("/")
            values = [int(getattr(row, c)) for c in COLUMNS]
            if sum(values) != 1:
                raise BenchmarkDataError(f"{path}: study {study!r} has {sum(values)} classes set, expected exactly 1")
            folder = self.data_root / sid
            if not folder.is_dir():
                self._exclude(sid, "missing_folder")
            elif not scan_files(folder):
                self._exclude(sid, "no_nifti")
            else:
                rows[sid] = values
                self._folders[sid] = folder
        self._set_labels(rows, CLASSES)

    def load(self, study_id: str) -> np.ndarray:
        """float32 [N, D, H, W] in [0, 1], one scan per sequence file."""
        self._check(study_id)
        files = scan_files(self._folders[study_id])
        kinds = [sequence_kind(f) for f in files]
        where = f"Pub-Brain-5 study folder {self._folders[study_id]}"
        try:  # choose before reading: only the scans the contract keeps are preprocessed
            chosen = self.contract.select(kinds, ["axial"] * len(files), [f.name for f in files])
        except ValueError as exc:
            raise BenchmarkDataError(f"{where}: {exc}") from exc
        scans = [scan for i in chosen for scan in prepare(read_nifti(files[i]), "MR", self.preprocess)]
        return stack_scans(scans)


def sequence_kind(path: Path) -> str:
    """The scan kind of a sequence file from its name (``t1c.nii.gz`` -> ``t1c``), as ingest names kinds; the
    lower-case stem when it names none."""
    stem = path.name.split(".")[0].lower().replace("-", "").replace("_", "")
    aliases = {"t1ce": "t1c", "t1gd": "t1c", "t1post": "t1c", "t1contrast": "t1c", "t2flair": "flair"}
    return aliases.get(stem, stem)
