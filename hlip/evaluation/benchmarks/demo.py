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
by `excluded()`. Scans are already preprocessed by ingest: `load` only scales uint8 to [0, 1].
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from hlip.data.deid import HashKey
from hlip.data.preprocess import PreprocessConfig
from hlip.evaluation.benchmarks.base import Benchmark, Task
from hlip.evaluation.benchmarks.common import (
    BenchmarkDataError,
    label_frame,
    read_csv,
    read_parquet,
    require_path,
    stack_scans,
)

DEFAULT_DATA_ROOT = Path("outputs/ingest/benchmark")
DEFAULT_LABELS = Path("data/ground_truth/benchmark_labels.csv")
SCAN_ORDER = ("kind", "plane", "scan_key")


class DemoBenchmark(Benchmark):
    """Five-class brain MRI benchmark of the demo corpus.

    Args:
        data_root: The ingest part folder (see the module docstring).
        labels_csv: Reference labels (study_instance_uid, label).
        max_scans: At most this many scans per study, the first in (kind, plane, scan_key) order.
        key: The de-identification key ingest used; default `HashKey.from_env("HLIP_DEID_KEY")`.
        hash_length: Hex characters of the study key (ingest `deid.hash_length`).
        preprocess: The scan spec the caller expects; when given, `load` checks the stored scans have its size.
    """

    name: ClassVar[str] = "demo"
    task: ClassVar[Task] = "multiclass"
    prompts: ClassVar[str] = "brain_mri_demo"
    CLASSES: ClassVar[tuple[str, ...]] = ("normal", "stroke", "glioma", "meningioma", "metastasis")

    def __init__(
        self,
        data_root: str | Path = DEFAULT_DATA_ROOT,
        labels_csv: str | Path = DEFAULT_LABELS,
        max_scans: int = 8,
        key: HashKey | None = None,
        hash_length: int = 20,
        preprocess: PreprocessConfig | None = None,
    ) -> None:
        if max_scans < 1:
            raise ValueError(f"max_scans must be >= 1, not {max_scans}")
        self.data_root = require_path(Path(data_root), "demo benchmark ingest part", folder=True)
        self.max_scans = max_scans
        self.preprocess = preprocess
        key = key or HashKey.from_env("HLIP_DEID_KEY")
        studies = read_parquet(self.data_root / "studies.parquet", "demo studies", ["study_key", "status"])
        scans = read_parquet(self.data_root / "scans.parquet", "demo scans", ["study_key", *SCAN_ORDER, "path"])
        reference = read_csv(Path(labels_csv), "demo reference labels", ["study_instance_uid", "label"], dtype=str)
        unknown = sorted(set(reference["label"]) - set(self.CLASSES))
        if unknown:
            raise BenchmarkDataError(f"{labels_csv}: unknown label(s) {unknown}; expected one of {self.CLASSES}")
        label_of = {
            key.hash("study", uid, hash_length): label
            for uid, label in zip(reference["study_instance_uid"], reference["label"], strict=True)
        }
        self._scans = {k: g.sort_values(list(SCAN_ORDER)) for k, g in scans.groupby("study_key", sort=True)}
        excluded: list[tuple[str, str]] = []
        rows: dict[str, list[int]] = {}
        for study_key, status in zip(studies["study_key"].astype(str), studies["status"], strict=True):
            if study_key not in label_of:
                excluded.append((study_key, "no_reference_label"))
            elif status != "ok":
                excluded.append((study_key, f"status_{status}"))
            elif study_key not in self._scans:
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
        """The scans `load` returns for a study, in order (at most `max_scans`)."""
        if study_id not in self._labels.index:
            raise KeyError(f"study {study_id!r} is not in the demo benchmark")
        return self._scans[study_id].head(self.max_scans)

    def load(self, study_id: str) -> np.ndarray:
        """float32 [N, D, H, W] in [0, 1], N = min(scans of the study, max_scans)."""
        arrays = []
        for rel in self.scan_table(study_id)["path"]:
            path = require_path(self.data_root / str(rel), f"scan volume of study {study_id}")
            array = np.load(path)
            if array.dtype != np.uint8 or array.ndim != 3:
                raise BenchmarkDataError(f"{path}: expected a uint8 3D volume, got {array.dtype} {array.shape}")
            if self.preprocess is not None and tuple(array.shape) != tuple(self.preprocess.size):
                raise BenchmarkDataError(f"{path}: shape {array.shape} differs from the spec {self.preprocess.size}")
            arrays.append(array)
        return stack_scans(arrays)

    def _read_reports(self) -> pd.Series | None:
        path = self.data_root / "reports.parquet"
        if not path.is_file():
            return None
        table = read_parquet(path, "demo reports", ["study_key", "text"])
        table = table[table["study_key"].isin(self._labels.index)]
        texts = table.groupby("study_key", sort=True)["text"].agg(lambda t: "\n\n".join(str(x) for x in t))
        texts.index.name = "study_id"
        return texts.rename("report")
