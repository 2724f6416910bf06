"""CQ500 (qure.ai head CT, 491 studies read by three radiologists), as its owners distribute it.

Expected layout (`data_root`; the zip archives qct01..qct12 may be extracted flat or each into its own folder)::

    cq500/
    ├── reads.csv                         name, Category, R1:ICH, ..., R3:MidlineShift
    ├── CQ500CT0 CQ500CT0/
    │   └── Unknown Study/
    │       ├── CT 4cm/CT000000.dcm ...    one folder per series
    │       └── CT PLAIN THIN/*.dcm
    └── qct02/CQ500CT1 CQ500CT1/Unknown Study/CT .../*.dcm

`reads.csv` names studies ``CQ500-CT-<N>`` and holds each reader's 0/1 read of 14 findings as ``R<k>:<finding>``;
a finding is present when at least two of the three readers marked it (majority vote, as HLIP and most CQ500
papers do). The classes are the 11 findings HLIP evaluates (Zch0414/hlip src/hlip/zeroshot_metadata_cq500.py
HEADERS): ICH, IPH, IVH, SDH, EDH, SAH, BleedLocation-Left, BleedLocation-Right, Fracture, MassEffect,
MidlineShift; ChronicBleed, CalvarialFracture and OtherFracture can be chosen with `classes`. Study ids follow
HLIP's data/cq500/cq500.csv: ``CQ500CT000``. Every series of a study goes through the ingest pipeline (series
classification drops localizers; each CT window of the scan spec is its own scan).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from hlip.data.contract import StudyContract
from hlip.data.series import SeriesConfig
from hlip.evaluation.benchmarks.base import Task
from hlip.evaluation.benchmarks.common import (
    BenchmarkDataError,
    TableBenchmark,
    read_csv,
    require_path,
)
from hlip.evaluation.benchmarks.dicom_study import prepare_dicom_study

FINDINGS = (
    "ICH",
    "IPH",
    "IVH",
    "SDH",
    "EDH",
    "SAH",
    "BleedLocation-Left",
    "BleedLocation-Right",
    "ChronicBleed",
    "Fracture",
    "CalvarialFracture",
    "OtherFracture",
    "MassEffect",
    "MidlineShift",
)
HLIP_CLASSES = (
    "ICH",
    "IPH",
    "IVH",
    "SDH",
    "EDH",
    "SAH",
    "BleedLocation-Left",
    "BleedLocation-Right",
    "Fracture",
    "MassEffect",
    "MidlineShift",
)
READERS = ("R1", "R2", "R3")
STUDY_FOLDER = re.compile(r"^CQ500-?CT-?(\d+)(?: CQ500-?CT-?\d+)?$", re.I)
READ_NAME = re.compile(r"^CQ500-?CT-?(\d+)$", re.I)


def study_id(number: int) -> str:
    """HLIP's id of CQ500 study `number` (``CQ500CT007``)."""
    return f"CQ500CT{number:03d}"


class CQ500Benchmark(TableBenchmark):
    """CQ500 head CT, multilabel, reader majority vote.

    Args:
        data_root: The extracted download (see the module docstring).
        contract: The evaluated model's study contract (preprocessing and scan choice); default the library's.
        reads_csv: The reads table; default `data_root/reads.csv`.
        classes: Findings to evaluate (default HLIP's 11).
        min_votes: Readers that must mark a finding (2 of 3 = majority).
        series: Series classification settings (ingest's by default).
    """

    name: ClassVar[str] = "cq500"
    task: ClassVar[Task] = "multilabel"
    prompts: ClassVar[str] = "cq500"
    ALL_CLASSES: ClassVar[tuple[str, ...]] = FINDINGS
    DEFAULT_CLASSES: ClassVar[tuple[str, ...] | None] = HLIP_CLASSES

    def __init__(
        self,
        data_root: str | Path,
        contract: StudyContract | None = None,
        reads_csv: str | Path | None = None,
        classes: Sequence[str] | None = None,
        min_votes: int = 2,
        series: SeriesConfig | None = None,
    ) -> None:
        self._init_table(classes, contract)
        self.data_root = require_path(Path(data_root), "CQ500 download", folder=True)
        self.preprocess = self.contract.preprocess
        self.series = series
        reads_path = Path(reads_csv) if reads_csv else self.data_root / "reads.csv"
        columns = [f"{r}:{f}" for r in READERS for f in FINDINGS]
        reads = read_csv(reads_path, "CQ500 reads", ["name", *columns])
        self._folders = self._find_study_folders()
        rows: dict[str, list[int]] = {}
        for _, row in reads.iterrows():
            match = READ_NAME.match(str(row["name"]).strip())
            if not match:
                raise BenchmarkDataError(f"{reads_path}: study name {row['name']!r} is not like 'CQ500-CT-12'")
            sid = study_id(int(match.group(1)))
            votes = np.array([[int(row[f"{r}:{f}"]) for f in FINDINGS] for r in READERS])
            if sid not in self._folders:
                self._exclude(sid, "no_dicom_folder")
                continue
            rows[sid] = [int(v) for v in (votes.sum(axis=0) >= min_votes)]
        for sid in sorted(set(self._folders) - set(rows) - {s for s, _ in self._excluded_rows}):
            self._exclude(sid, "no_reads")
        self._set_labels(rows, FINDINGS)

    def _find_study_folders(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for candidate in sorted([*self.data_root.glob("*"), *self.data_root.glob("*/*")]):
            match = STUDY_FOLDER.match(candidate.name)
            if match and candidate.is_dir():
                found.setdefault(study_id(int(match.group(1))), candidate)
        return found

    def load(self, study_id: str) -> np.ndarray:
        """All series of the study through the ingest pipeline: float32 [N, D, H, W] in [0, 1]."""
        self._check(study_id)
        folder = self._folders[study_id]
        paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        result = prepare_dicom_study(folder, paths, self.preprocess, self.series)
        return self._cap(
            result.scans,
            where=f"CQ500 study folder {folder} ({'; '.join(result.skipped[:5])})",
            kinds=result.kinds,
            planes=result.planes,
        )
