"""RAD-ChestCT (Duke chest CT, Draelos et al. 2021), as its owners distribute it (Zenodo).

Expected layout (`data_root`; volumes may sit in sub-folders, they are found by name)::

    rad_chestct/
    ├── imgtest_Abnormality_and_Location_Labels.csv   NoteAcc_DEID + <abnormality>*<location> 0/1 columns
    ├── tst34780.npz                                  key "ct": HU, [slices, rows, columns], 0.8 mm voxels
    └── ...

The label table has one column per (abnormality, location) pair, e.g. ``nodule*right_upper_lobe``. As HLIP does
(Zch0414/hlip data/rad_chestct/notebooks/merge_label.ipynb, then map_label.ipynb), each abnormality is first the
maximum over its locations (84 abnormalities), then mapped to the CT-RATE finding names HLIP/fVLM evaluate.
RAD-ChestCT has one ``calcification`` abnormality where CT-RATE has two (coronary and arterial wall): HLIP copies
it to both and merges the two back into one ``Calcification`` class when scoring
(src/hlip_test/zeroshot_radchestct.py); here it is that single ``Calcification`` class (14 classes, no mosaic
attenuation in RAD-ChestCT). Volumes are stored in HU at 0.8 mm (the spacing HLIP's data/rad_chestct/process.py
uses), axial, rows anterior->posterior and columns right->left as DICOM displays them, slices ordered
inferior->superior (`slices_superior_first=True` flips that); windowed as HLIP does for chest CT (HU [-1150, 350]).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from hlip.data.contract import StudyContract
from hlip.data.volume import Volume
from hlip.evaluation.benchmarks.base import Task
from hlip.evaluation.benchmarks.common import (
    CHEST_CT_WINDOWS,
    BenchmarkDataError,
    TableBenchmark,
    prepare,
    read_csv,
    require_path,
    with_windows,
)

# RAD-ChestCT abnormality -> class name (CT-RATE naming, as HLIP's map_label.ipynb)
ABNORMALITY_TO_CLASS = {
    "emphysema": "Emphysema",
    "atelectasis": "Atelectasis",
    "nodule": "Lung nodule",
    "opacity": "Lung opacity",
    "fibrosis": "Pulmonary fibrotic sequela",
    "pleural_effusion": "Pleural effusion",
    "bronchial_wall_thickening": "Peribronchial thickening",
    "consolidation": "Consolidation",
    "bronchiectasis": "Bronchiectasis",
    "septal_thickening": "Interlobular septal thickening",
    "cardiomegaly": "Cardiomegaly",
    "pericardial_effusion": "Pericardial effusion",
    "hernia": "Hiatal hernia",
    "calcification": "Calcification",
}
CLASSES = tuple(ABNORMALITY_TO_CLASS.values())
ID_COLUMN = "NoteAcc_DEID"


def merge_locations(columns: Sequence[str]) -> dict[str, list[str]]:
    """Group ``abnormality*location`` columns by abnormality (a column without ``*`` is its own group)."""
    groups: dict[str, list[str]] = {}
    for col in columns:
        if col != ID_COLUMN:
            groups.setdefault(col.split("*")[0], []).append(col)
    return groups


class RadChestCTBenchmark(TableBenchmark):
    """RAD-ChestCT chest CT, multilabel.

    Args:
        data_root: The download (see the module docstring).
        contract: The evaluated model's study contract; its CT windows are replaced by `windows`.
        labels_csv: The abnormality x location table; default `data_root/imgtest_Abnormality_and_Location_Labels.csv`.
        spacing: Voxel size (slice, row, column) in mm.
        slices_superior_first: Slices run superior -> inferior instead of inferior -> superior.
        classes: Classes to evaluate (default all 14).
        windows: CT windows {name: (level, width)}; default HLIP's chest window.
    """

    name: ClassVar[str] = "rad_chestct"
    task: ClassVar[Task] = "multilabel"
    prompts: ClassVar[str] = "rad_chestct"
    ALL_CLASSES: ClassVar[tuple[str, ...]] = CLASSES

    def __init__(
        self,
        data_root: str | Path,
        contract: StudyContract | None = None,
        labels_csv: str | Path | None = None,
        spacing: tuple[float, float, float] = (0.8, 0.8, 0.8),
        slices_superior_first: bool = False,
        classes: Sequence[str] | None = None,
        windows: dict[str, tuple[float, float]] | None = None,
    ) -> None:
        self._init_table(classes, contract)
        self.data_root = require_path(Path(data_root), "RAD-ChestCT download", folder=True)
        self.preprocess = with_windows(self.contract.preprocess, windows or CHEST_CT_WINDOWS)
        self.spacing = spacing
        self.slices_superior_first = slices_superior_first
        path = Path(labels_csv) if labels_csv else self.data_root / "imgtest_Abnormality_and_Location_Labels.csv"
        table = read_csv(path, "RAD-ChestCT labels", [ID_COLUMN], dtype={ID_COLUMN: str})
        groups = merge_locations(list(table.columns))
        missing = [a for a in ABNORMALITY_TO_CLASS if a not in groups]
        if missing:
            raise BenchmarkDataError(f"{path}: no '<abnormality>*<location>' columns for {missing}")
        merged = {a: table[cols].fillna(0).to_numpy(dtype=float).max(axis=1) for a, cols in groups.items()}
        self._files = {p.stem: p for p in sorted(self.data_root.rglob("*.npz"))}
        rows: dict[str, list[int]] = {}
        for i, sid in enumerate(str(v) for v in table[ID_COLUMN]):
            if sid not in self._files:
                self._exclude(sid, "missing_volume")
                continue
            rows[sid] = [int(merged[a][i] > 0.5) for a in ABNORMALITY_TO_CLASS]
        self._set_labels(rows, CLASSES)

    def read_volume(self, study_id: str) -> Volume:
        """The volume in HU with its LPS affine (see the module docstring for the axis assumptions)."""
        path = self._files[study_id]
        try:
            with np.load(path, allow_pickle=False) as npz:
                if "ct" not in npz:
                    raise BenchmarkDataError(f"{path}: no 'ct' array (keys: {list(npz.keys())})")
                array = np.asarray(npz["ct"], dtype=np.float32)
        except BenchmarkDataError:
            raise
        except Exception as exc:
            raise BenchmarkDataError(f"{path} cannot be read as NPZ ({type(exc).__name__}: {exc})") from exc
        if array.ndim != 3:
            raise BenchmarkDataError(f"{path}: 'ct' must be 3D [slices, rows, columns], got {array.shape}")
        d, h, w = self.spacing
        # index (i column, j row, k slice) -> LPS mm: columns run to the left (+x), rows to posterior (+y)
        affine = np.diag([w, h, -d if self.slices_superior_first else d, 1.0])
        return Volume(array, affine)

    def load(self, study_id: str) -> np.ndarray:
        """float32 [N, D, H, W] in [0, 1], one scan per window."""
        self._check(study_id)
        scans = prepare(self.read_volume(study_id), "CT", self.preprocess, plane="axial")
        return self._cap(scans, f"RAD-ChestCT volume {self._files[study_id]}")
