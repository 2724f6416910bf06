"""RSNA Intracranial Hemorrhage Detection (RSNA/ASNR 2019 Kaggle challenge), as Kaggle distributes it.

Expected layout (`data_root`)::

    rsna-intracranial-hemorrhage-detection/
    ├── stage_2_train.csv              ID,Label   with ID = ID_<sop>_<subtype>, one row per slice and subtype
    └── stage_2_train/
        ├── ID_000012eaf.dcm           one axial slice per file (file name = SOPInstanceUID)
        └── ...

Slices are grouped into studies by their StudyInstanceUID header (RSNA's public ids, ``ID_<10 hex>``, the ids in
HLIP's data/rsna/rsna.csv) and into series by SeriesInstanceUID; a study's label for each subtype is the maximum
over its slices. Classes: any, epidural, intraparenchymal, intraventricular, subarachnoid, subdural (HLIP evaluates
the five without epidural: `classes=HLIP_CLASSES`). `subset_csv` restricts the studies to a list (a CSV with a
`study` column, e.g. HLIP's data/rsna/rsna.csv). Building the slice -> study index reads every slice header once;
give `index_cache` (a parquet path outside the raw data) to keep it between runs.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

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

SUBTYPES = ("any", "epidural", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")
HLIP_CLASSES = ("any", "intraparenchymal", "intraventricular", "subarachnoid", "subdural")


class RSNAICHBenchmark(TableBenchmark):
    """RSNA ICH head CT, multilabel, study label = max over slices.

    Args:
        data_root: The Kaggle download (see the module docstring).
        contract: The evaluated model's study contract (preprocessing and scan choice); default the library's.
        images_dir: Folder of the slices, relative to `data_root`.
        labels_csv: The slice labels; default `data_root/stage_2_train.csv`.
        subset_csv: Optional CSV with a `study` column of StudyInstanceUIDs to keep.
        index_cache: Optional parquet file for the slice -> study/series index (read if present, else written).
        classes: Subtypes to evaluate (default all six).
        series: Series classification settings (ingest's by default).
    """

    name: ClassVar[str] = "rsna_ich"
    task: ClassVar[Task] = "multilabel"
    prompts: ClassVar[str] = "rsna_ich"
    ALL_CLASSES: ClassVar[tuple[str, ...]] = SUBTYPES

    def __init__(
        self,
        data_root: str | Path,
        contract: StudyContract | None = None,
        images_dir: str = "stage_2_train",
        labels_csv: str | Path | None = None,
        subset_csv: str | Path | None = None,
        index_cache: str | Path | None = None,
        classes: Sequence[str] | None = None,
        series: SeriesConfig | None = None,
    ) -> None:
        self._init_table(classes, contract)
        self.data_root = require_path(Path(data_root), "RSNA ICH download", folder=True)
        self.images = require_path(self.data_root / images_dir, "RSNA ICH slices", folder=True)
        self.preprocess = self.contract.preprocess
        self.series = series
        labels_path = Path(labels_csv) if labels_csv else self.data_root / "stage_2_train.csv"
        slices = self._slice_labels(labels_path)
        index = self._index(slices.index, Path(index_cache) if index_cache else None)
        joined = slices.join(index, how="inner")
        for sop in sorted(set(slices.index) - set(index.index)):
            self._exclude(f"ID_{sop}", "missing_slice_file")
        studies = joined.groupby("study")
        keep = {str(k) for k in studies.groups}
        if subset_csv:
            wanted = set(read_csv(Path(subset_csv), "RSNA study subset", ["study"], dtype=str)["study"])
            for sid in sorted(wanted - keep):
                self._exclude(sid, "not_in_download")
            keep &= wanted
        study_max = studies[list(SUBTYPES)].max()
        rows = {sid: [int(v) for v in study_max.loc[sid].to_numpy()] for sid in sorted(keep)}
        self._files = {sid: sorted(f"ID_{sop}.dcm" for sop in group.index) for sid, group in studies if sid in keep}
        self._set_labels(rows, SUBTYPES)

    @staticmethod
    def _slice_labels(path: Path) -> pd.DataFrame:
        table = read_csv(path, "RSNA ICH labels", ["ID", "Label"], dtype={"ID": str})
        parts = table["ID"].str.rsplit("_", n=1, expand=True)
        if parts.shape[1] != 2 or parts[0].isna().any() or not parts[0].str.startswith("ID_").all():
            raise BenchmarkDataError(f"{path}: ID values must look like ID_<sop>_<subtype>")
        table = table.assign(sop=parts[0].str.slice(3), subtype=parts[1])
        unknown = sorted(set(table["subtype"]) - set(SUBTYPES))
        if unknown:
            raise BenchmarkDataError(f"{path}: unknown subtype(s) {unknown}; expected {list(SUBTYPES)}")
        wide = table.pivot_table(index="sop", columns="subtype", values="Label", aggfunc="max")
        missing = [s for s in SUBTYPES if s not in wide.columns]
        if missing:
            raise BenchmarkDataError(f"{path}: no rows for subtype(s) {missing}")
        return wide[list(SUBTYPES)].fillna(0).astype(int)

    def _index(self, sops: pd.Index, cache: Path | None) -> pd.DataFrame:
        if cache is not None and cache.is_file():
            return pd.read_parquet(cache).set_index("sop")
        import pydicom

        rows = []
        for sop in sops:
            path = self.images / f"ID_{sop}.dcm"
            if not path.is_file():
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # RSNA's UIDs ("ID_...") are not valid UI values
                ds = pydicom.dcmread(
                    path, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SeriesInstanceUID"]
                )
                rows.append({"sop": sop, "study": str(ds.StudyInstanceUID), "series": str(ds.SeriesInstanceUID)})
        index = pd.DataFrame(rows, columns=["sop", "study", "series"])
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            index.to_parquet(cache, index=False)
        return index.set_index("sop")

    def load(self, study_id: str) -> np.ndarray:
        """The study's series through the ingest pipeline: float32 [N, D, H, W] in [0, 1]."""
        self._check(study_id)
        result = prepare_dicom_study(self.images, self._files[study_id], self.preprocess, self.series)
        return self._cap(
            result.scans,
            where=f"RSNA study {study_id} ({'; '.join(result.skipped[:5])})",
            kinds=result.kinds,
            planes=result.planes,
        )
