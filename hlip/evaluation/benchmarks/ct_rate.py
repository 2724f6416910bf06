"""CT-RATE validation split (chest CT + reports, ibrahimhamamci/CT-RATE on Hugging Face), as its owners distribute it.

Expected layout (`data_root` = the dataset's `dataset/` folder)::

    dataset/
    ├── valid/                                   (or valid_fixed/: `volumes_dir`)
    │   └── valid_1/valid_1_a/valid_1_a_1.nii.gz <patient>/<study>/<reconstruction>
    ├── metadata/validation_metadata.csv         VolumeName, RescaleSlope, RescaleIntercept, XYSpacing, ZSpacing
    ├── radiology_text_reports/validation_reports.csv   VolumeName, Findings_EN, Impressions_EN
    └── multi_abnormality_labels/valid_predicted_labels.csv  VolumeName + 18 finding columns

The volumes hold raw stored values: `RescaleSlope`/`RescaleIntercept` from the metadata make them HU, and the voxel
size comes from `XYSpacing` ("[0.75, 0.75]") and `ZSpacing`, not from the NIfTI header (as CT-CLIP's
preprocess_ctrate_valid.py and HLIP's data/ct_rate/process.py do); the header's axis directions are kept. Chest CT
is windowed as HLIP does (HU [-1150, 350] -> [0, 1], one scan; `windows` overrides it), then resampled and cropped
to the scan spec. One study = one reconstruction (``valid_1_a_1``: `group="volume"`, what CT-CLIP, fVLM and HLIP
report); `group="study"` makes the reconstructions of ``valid_1_a`` the scans of one study (labels: max).
Default classes: the 16 HLIP/fVLM evaluate (Zch0414/hlip src/hlip/zeroshot_metadata_ctrate.py: all but Medical
material and Lymphadenopathy); `classes=ALL_FINDINGS` gives CT-CLIP's 18.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from hlip.data.contract import StudyContract
from hlip.data.volume import Volume
from hlip.evaluation.benchmarks.base import Task
from hlip.evaluation.benchmarks.common import (
    CHEST_CT_WINDOWS,
    BenchmarkDataError,
    TableBenchmark,
    prepare,
    read_csv,
    read_nifti,
    require_path,
    with_windows,
)

ALL_FINDINGS = (
    "Medical material",
    "Arterial wall calcification",
    "Cardiomegaly",
    "Pericardial effusion",
    "Coronary artery wall calcification",
    "Hiatal hernia",
    "Lymphadenopathy",
    "Emphysema",
    "Atelectasis",
    "Lung nodule",
    "Lung opacity",
    "Pulmonary fibrotic sequela",
    "Pleural effusion",
    "Mosaic attenuation pattern",
    "Peribronchial thickening",
    "Consolidation",
    "Bronchiectasis",
    "Interlobular septal thickening",
)
HLIP_CLASSES = (
    "Emphysema",
    "Atelectasis",
    "Lung nodule",
    "Lung opacity",
    "Pulmonary fibrotic sequela",
    "Pleural effusion",
    "Mosaic attenuation pattern",
    "Peribronchial thickening",
    "Consolidation",
    "Bronchiectasis",
    "Interlobular septal thickening",
    "Cardiomegaly",
    "Pericardial effusion",
    "Coronary artery wall calcification",
    "Hiatal hernia",
    "Arterial wall calcification",
)
META_COLUMNS = ("VolumeName", "RescaleSlope", "RescaleIntercept", "XYSpacing", "ZSpacing")
NUMBER = re.compile(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?")


def volume_stem(name: str) -> str:
    """``valid_1_a_1.nii.gz`` -> ``valid_1_a_1``."""
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name.rsplit(".", 1)[0]


def volume_path(root: Path, name: str) -> Path:
    """Where CT-RATE keeps a volume: ``<root>/valid_1/valid_1_a/valid_1_a_1.nii.gz``."""
    stem = volume_stem(name)
    return root / stem.rsplit("_", 2)[0] / stem.rsplit("_", 1)[0] / f"{stem}.nii.gz"


class CTRateBenchmark(TableBenchmark):
    """CT-RATE validation chest CT, multilabel.

    Args:
        data_root: The `dataset/` folder (see the module docstring).
        contract: The evaluated model's study contract; its CT windows are replaced by `windows`.
        split: "valid" (the file names and default table names follow it).
        volumes_dir: Folder of the volumes under `data_root` (default `split`; "valid_fixed" for the re-headed copy).
        metadata_csv, reports_csv, labels_csv: Table paths; defaults as in the layout above.
        group: "volume" (one reconstruction per study) or "study" (reconstructions of a study are its scans).
        classes: Findings to evaluate (default HLIP's 16).
        windows: CT windows {name: (level, width)}; default HLIP's chest window.
    """

    name: ClassVar[str] = "ct_rate"
    task: ClassVar[Task] = "multilabel"
    prompts: ClassVar[str] = "ct_rate"
    ALL_CLASSES: ClassVar[tuple[str, ...]] = ALL_FINDINGS
    DEFAULT_CLASSES: ClassVar[tuple[str, ...] | None] = HLIP_CLASSES

    def __init__(
        self,
        data_root: str | Path,
        contract: StudyContract | None = None,
        split: str = "valid",
        volumes_dir: str | None = None,
        metadata_csv: str | Path | None = None,
        reports_csv: str | Path | None = None,
        labels_csv: str | Path | None = None,
        group: Literal["volume", "study"] = "volume",
        classes: Sequence[str] | None = None,
        windows: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        if group not in ("volume", "study"):
            raise ValueError(f"group must be 'volume' or 'study', not {group!r}")
        self._init_table(classes, contract)
        root = require_path(Path(data_root), "CT-RATE dataset folder", folder=True)
        self.volumes = require_path(root / (volumes_dir or split), "CT-RATE volumes", folder=True)
        self.preprocess = with_windows(self.contract.preprocess, windows or CHEST_CT_WINDOWS)
        tables = {"valid": "validation"}.get(split, split)
        meta_path = Path(metadata_csv) if metadata_csv else root / "metadata" / f"{tables}_metadata.csv"
        labels_path = (
            Path(labels_csv) if labels_csv else root / "multi_abnormality_labels" / f"{split}_predicted_labels.csv"
        )
        reports_path = Path(reports_csv) if reports_csv else root / "radiology_text_reports" / f"{tables}_reports.csv"
        meta = {
            str(r["VolumeName"]): r for r in read_csv(meta_path, "CT-RATE metadata", META_COLUMNS).to_dict("records")
        }
        labels = read_csv(labels_path, "CT-RATE labels", ["VolumeName", *ALL_FINDINGS]).set_index("VolumeName")
        self._meta: dict[str, dict[str, Any]] = {}
        self._members: dict[str, list[str]] = {}
        per_study: dict[str, list[np.ndarray]] = {}
        for name, row in labels.iterrows():
            name = str(name)
            stem = volume_stem(name)
            sid = stem if group == "volume" else stem.rsplit("_", 1)[0]
            if name not in meta:
                self._exclude(stem, "no_metadata")
            elif not volume_path(self.volumes, name).is_file():
                self._exclude(stem, "missing_volume")
            else:
                self._meta[name] = {str(k): v for k, v in meta[name].items()}
                self._members.setdefault(sid, []).append(name)
                per_study.setdefault(sid, []).append(row[list(ALL_FINDINGS)].to_numpy(dtype=float))
        rows = {sid: [int(v) for v in np.max(values, axis=0) > 0.5] for sid, values in per_study.items()}
        self._set_labels(rows, ALL_FINDINGS)
        self._reports = self._read_reports(reports_path) if reports_path.is_file() else None

    def _read_reports(self, path: Path) -> pd.Series:
        table = read_csv(path, "CT-RATE reports", ["VolumeName", "Findings_EN", "Impressions_EN"]).fillna("")
        text = {
            str(r.VolumeName): f"Findings: {r.Findings_EN}\nImpression: {r.Impressions_EN}".strip()
            for r in table.itertuples(index=False)
        }
        reports = {sid: text[names[0]] for sid, names in self._members.items() if names[0] in text}
        series = pd.Series(reports, name="report", dtype=str).sort_index()
        series.index.name = "study_id"
        return series

    def read_volume(self, name: str) -> Volume:
        """One reconstruction in HU with the metadata's voxel size (affine directions from the header)."""
        meta = self._meta[name]
        path = volume_path(self.volumes, name)
        volume = read_nifti(path, float(meta["RescaleSlope"]), float(meta["RescaleIntercept"]))
        xy = [float(v) for v in NUMBER.findall(str(meta["XYSpacing"]))]
        if len(xy) not in (1, 2):
            raise BenchmarkDataError(f"CT-RATE metadata of {name}: XYSpacing {meta['XYSpacing']!r} is not [x, y]")
        spacing = np.array([xy[0], xy[-1], float(meta["ZSpacing"])])
        directions = volume.affine[:3, :3] / np.maximum(np.linalg.norm(volume.affine[:3, :3], axis=0), 1e-12)
        affine = volume.affine.copy()
        affine[:3, :3] = directions * spacing
        return Volume(volume.array, affine)

    def load(self, study_id: str) -> np.ndarray:
        """float32 [N, D, H, W] in [0, 1]: one scan per window and reconstruction."""
        self._check(study_id)
        scans = []
        for name in sorted(self._members[study_id]):
            scans += prepare(self.read_volume(name), "CT", self.preprocess, plane="axial")
        return self._cap(scans, f"CT-RATE study {study_id}")
