"""The demo benchmark: the held-out part of the demo corpus, as the ingest stage wrote it, with its reference labels.

Expected layout (the defaults are relative to the repository root, where the stages run)::

    outputs/ingest/benchmark/            <- data_root: one ingest part folder
    ├── studies.parquet                  study_key, status, ...
    ├── scans.parquet                    study_key, scan_key, kind, plane, path, ...
    ├── reports.parquet                  study_key, text (scrubbed)
    └── volumes/<study_key>/<scan_key>.npy   uint8 [D, H, W] (path column, relative to data_root)
    data/ground_truth/benchmark_labels.csv   <- labels_csv: study_instance_uid, accession_number, label

Labels carry raw StudyInstanceUIDs; they are keyed into the ingest's `study_key` with the same keyed hash ingest
uses (`HashKey.from_env("HLIP_DEID_KEY").hash("study", uid, 20)`), so the raw UIDs never leave this module.
Studies without a reference label, or whose ingest status is not ``ok``, or without scans are left out and listed
by `excluded()`. Scans are already preprocessed by ingest: `load` picks them with the model's study contract (the
same `choose_scans` rule as training and serving) and only scales uint8 to [0, 1]. The part's recorded preprocessing
(`summary.json`) must equal the contract's, else construction fails naming both.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from hlip.data.contract import ContractError, PartContractError, StudyContract
from hlip.data.deid import HashKey
from hlip.evaluation.benchmarks.base import Benchmark, Task
from hlip.evaluation.benchmarks.common import (
    BenchmarkDataError,
    label_frame,
    read_csv,
    read_parquet,
    require_path,
    stack_scans,
)

log = logging.getLogger(__name__)
DEFAULT_DATA_ROOT = Path("outputs/ingest/benchmark")
DEFAULT_LABELS = Path("data/ground_truth/benchmark_labels.csv")
SCAN_COLUMNS = ("kind", "plane", "scan_key")


class DemoBenchmark(Benchmark):
    """Five-class brain MRI benchmark of the demo corpus.

    Args:
        data_root: The ingest part folder (see the module docstring).
        labels_csv: Reference labels (study_instance_uid, label).
        contract: The evaluated model's study contract: which scans, in which order, and the preprocessing the
            part must have been ingested with; default the library's.
        key: The de-identification key ingest used; default `HashKey.from_env("HLIP_DEID_KEY")`.
        hash_length: Hex characters of the study key (ingest `deid.hash_length`).

    Raises:
        ContractError: The part was ingested with other preprocessing than the contract's.
    """

    name: ClassVar[str] = "demo"
    task: ClassVar[Task] = "multiclass"
    prompts: ClassVar[str] = "brain_mri_demo"
    CLASSES: ClassVar[tuple[str, ...]] = ("normal", "stroke", "glioma", "meningioma", "metastasis")

    def __init__(
        self,
        data_root: str | Path = DEFAULT_DATA_ROOT,
        labels_csv: str | Path = DEFAULT_LABELS,
        contract: StudyContract | None = None,
        key: HashKey | None = None,
        hash_length: int = 20,
    ) -> None:
        self.data_root = require_path(Path(data_root), "demo benchmark ingest part", folder=True)
        self.contract = contract or StudyContract()
        self._check_ingested_with(self.contract)
        key = key or HashKey.from_env("HLIP_DEID_KEY")
        studies = read_parquet(self.data_root / "studies.parquet", "demo studies", ["study_key", "status"])
        scans = read_parquet(self.data_root / "scans.parquet", "demo scans", ["study_key", *SCAN_COLUMNS, "path"])
        reference = read_csv(Path(labels_csv), "demo reference labels", ["study_instance_uid", "label"], dtype=str)
        unknown = sorted(set(reference["label"]) - set(self.CLASSES))
        if unknown:
            raise BenchmarkDataError(f"{labels_csv}: unknown label(s) {unknown}; expected one of {self.CLASSES}")
        label_of = {
            key.hash("study", uid, hash_length): label
            for uid, label in zip(reference["study_instance_uid"], reference["label"], strict=True)
        }
        self._scans = {str(k): self._chosen(g) for k, g in scans.groupby("study_key", sort=True)}
        excluded: list[tuple[str, str]] = []
        rows: dict[str, list[int]] = {}
        for study_key, status in zip(studies["study_key"].astype(str), studies["status"], strict=True):
            if study_key not in label_of:
                excluded.append((study_key, "no_reference_label"))
            elif status != "ok":
                excluded.append((study_key, f"status_{status}"))
            elif study_key not in self._scans or self._scans[study_key].empty:
                excluded.append((study_key, "no_scans"))
            else:
                rows[study_key] = [int(label_of[study_key] == c) for c in self.CLASSES]
        ingested = set(studies["study_key"])
        excluded += [(k, "not_ingested") for k in sorted(set(label_of) - ingested)]
        self._labels = label_frame(rows, self.CLASSES)
        self._excluded = pd.DataFrame(excluded, columns=["study_id", "reason"]).sort_values(
            "study_id", ignore_index=True
        )
        self._reports = self._read_reports()

    @property
    def classes(self) -> tuple[str, ...]:
        return self.CLASSES

    def study_ids(self) -> list[str]:
        return list(self._labels.index)

    def labels(self) -> pd.DataFrame:
        return self._labels.copy()

    def excluded(self) -> pd.DataFrame:
        """Studies left out, with the reason (no_reference_label, status_<status>, no_scans, not_ingested)."""
        return self._excluded.copy()

    def reports(self) -> pd.Series | None:
        return self._reports

    def scan_table(self, study_id: str) -> pd.DataFrame:
        """The scans `load` returns for a study, in order (the contract's choice)."""
        if study_id not in self._labels.index:
            raise KeyError(f"study {study_id!r} is not in the demo benchmark")
        return self._scans[study_id]

    def load(self, study_id: str) -> np.ndarray:
        """float32 [N, D, H, W] in [0, 1]: the scans the contract chooses, in its order."""
        arrays = []
        for rel in self.scan_table(study_id)["path"]:
            path = require_path(self.data_root / str(rel), f"scan volume of study {study_id}")
            array = np.load(path)
            if array.dtype != np.uint8 or array.ndim != 3:
                raise BenchmarkDataError(f"{path}: expected a uint8 3D volume, got {array.dtype} {array.shape}")
            if tuple(array.shape) != tuple(self.contract.preprocess.size):
                raise BenchmarkDataError(
                    f"{path}: shape {array.shape} differs from the contract's {self.contract.preprocess.size}"
                )
            arrays.append(array)
        return stack_scans(arrays)

    def _chosen(self, rows: pd.DataFrame) -> pd.DataFrame:
        """A study's scan rows that the contract keeps, in its order (empty when none is of an allowed kind)."""
        try:
            order = self.contract.select(*(list(map(str, rows[c])) for c in SCAN_COLUMNS))
        except ValueError:
            return rows.iloc[0:0]
        return rows.iloc[order]

    def _check_ingested_with(self, contract: StudyContract) -> None:
        summary = self.data_root / "summary.json"
        recorded = json.loads(summary.read_text()).get("preprocess") if summary.is_file() else None
        if recorded is None:
            log.warning("%s records no preprocessing: the contract cannot be checked against it", summary)
            return
        try:
            contract.require_preprocess(recorded, f"the ingested part {self.data_root}")
        except ContractError as err:
            raise PartContractError(str(err)) from err

    def _read_reports(self) -> pd.Series | None:
        path = self.data_root / "reports.parquet"
        if not path.is_file():
            return None
        table = read_parquet(path, "demo reports", ["study_key", "text"])
        table = table[table["study_key"].isin(self._labels.index)]
        texts = table.groupby("study_key", sort=True)["text"].agg(lambda t: "\n\n".join(str(x) for x in t))
        texts.index.name = "study_id"
        return texts.rename("report")
