"""Helpers every adapter shares: checked table reading, NIfTI volumes in the project's convention, preprocessing
with the project's own pipeline, and stacking prepared scans into the `[N, D, H, W]` float array of `load`.

The NIfTI reader (nibabel) is imported inside the function that needs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from hlip.data.contract import StudyContract
from hlip.data.preprocess import LPS_TO_RAS, PreparedScan, PreprocessConfig, preprocess
from hlip.data.volume import Volume
from hlip.evaluation.benchmarks.base import Benchmark

RAS_TO_LPS = LPS_TO_RAS  # diag(-1, -1, 1, 1) is its own inverse


class BenchmarkDataError(ValueError):
    """A benchmark's files do not match the layout its adapter expects (the message names the file and why)."""


class MissingBenchmarkFileError(BenchmarkDataError, FileNotFoundError):
    """An expected file or folder of a benchmark is missing."""


def require_path(path: Path, what: str, *, folder: bool = False) -> Path:
    """Return `path` if it exists (as a folder when `folder`), else raise naming it and what it should hold."""
    ok = path.is_dir() if folder else path.is_file()
    if not ok:
        kind = "folder" if folder else "file"
        raise MissingBenchmarkFileError(f"{what}: expected {kind} {path} does not exist")
    return path


def read_csv(path: Path, what: str, columns: Iterable[str] = (), **kwargs: object) -> pd.DataFrame:
    """Read a CSV and check that it has `columns`.

    Raises:
        MissingBenchmarkFileError: The file does not exist.
        BenchmarkDataError: It cannot be parsed or lacks a column (the message names the file and the columns).
    """
    require_path(path, what)
    try:
        table = pd.read_csv(path, **kwargs)  # type: ignore[call-overload]
    except Exception as exc:
        raise BenchmarkDataError(f"{what}: {path} cannot be read as CSV ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BenchmarkDataError(f"{what}: {path} lacks column(s) {missing}; it has {list(table.columns)[:30]}")
    return table


def read_parquet(path: Path, what: str, columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read a parquet table and check that it has `columns` (errors as `read_csv`)."""
    require_path(path, what)
    table = pd.read_parquet(path)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise BenchmarkDataError(f"{what}: {path} lacks column(s) {missing}; it has {list(table.columns)}")
    return table


def read_nifti(path: Path, slope: float = 1.0, intercept: float = 0.0) -> Volume:
    """A NIfTI file as a `Volume` (array [k, j, i], affine voxel -> LPS mm), values `raw * slope + intercept`.

    nibabel applies the header's own scl_slope/scl_inter; `slope`/`intercept` are applied on top (CT-RATE stores
    raw stored values and gives the rescale in a metadata table).

    Raises:
        MissingBenchmarkFileError: The file does not exist.
        BenchmarkDataError: It is not a readable 3D image.
    """
    import nibabel as nib

    require_path(path, "NIfTI volume")
    try:
        image = nib.load(str(path))
        data = np.asarray(image.dataobj).astype(np.float32)  # type: ignore[attr-defined]
    except Exception as exc:
        raise BenchmarkDataError(f"{path} cannot be read as NIfTI ({type(exc).__name__}: {exc})") from exc
    data = np.squeeze(data)
    if data.ndim != 3:
        raise BenchmarkDataError(f"{path}: expected a 3D volume, got shape {data.shape}")
    if slope != 1.0 or intercept != 0.0:
        data = data * np.float32(slope) + np.float32(intercept)
    affine = RAS_TO_LPS @ np.asarray(image.affine).astype(float)  # type: ignore[attr-defined]
    return Volume(np.ascontiguousarray(data.transpose(2, 1, 0)), affine)


def plane_of_volume(volume: Volume) -> str:
    """Acquisition plane of a volume from its slice axis (the third index axis), as ingest names planes."""
    from hlip.data.series import plane_of

    return str(plane_of([float(v) for v in volume.affine[:3, 2]]))


def prepare(volume: Volume, modality: str, config: PreprocessConfig, plane: str | None = None) -> list[PreparedScan]:
    """Preprocess one volume with the project's pipeline (CT: one scan per configured window)."""
    return preprocess(volume, modality, plane or plane_of_volume(volume), config)


def stack_scans(scans: Sequence[PreparedScan] | Sequence[np.ndarray]) -> np.ndarray:
    """uint8 scans -> float32 `[N, D, H, W]` in [0, 1].

    Raises:
        ValueError: No scans, or scans of different shapes.
    """
    arrays = [s.array if isinstance(s, PreparedScan) else s for s in scans]
    if not arrays:
        raise ValueError("a study needs at least one scan")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"scans of one study must share a shape, got {sorted(shapes)}")
    return (np.stack(arrays).astype(np.float32) / np.float32(255.0)).astype(np.float32)


def label_frame(rows: Mapping[str, Sequence[int]], classes: Sequence[str]) -> pd.DataFrame:
    """A 0/1 int label matrix, index = sorted study ids, columns = `classes`."""
    ids = sorted(str(i) for i in rows)
    matrix = np.asarray([list(rows[i]) for i in ids], dtype=np.int64).reshape(len(ids), len(classes))
    frame = pd.DataFrame(matrix, index=pd.Index(ids, name="study_id"), columns=list(classes))
    return frame


CHEST_CT_WINDOWS = {"chest": (-400.0, 1500.0)}  # HLIP chest CT: HU [-1150, 350] -> [0, 1], one scan per volume


class TableBenchmark(Benchmark):
    """Shared state of the public adapters: a label matrix, the studies left out, optional reports.

    Subclasses fill `self._labels` (via `_set_labels`), `self._excluded` and `self._reports` in `__init__`, and
    implement `load`. `classes` may be narrowed to a subset of `ALL_CLASSES` (e.g. the ones a paper evaluates).
    """

    ALL_CLASSES: ClassVar[tuple[str, ...]]
    DEFAULT_CLASSES: ClassVar[tuple[str, ...] | None] = None

    _labels: pd.DataFrame
    _reports: pd.Series | None = None

    def _init_table(self, classes: Sequence[str] | None, contract: StudyContract | None) -> None:
        chosen = tuple(classes) if classes is not None else (self.DEFAULT_CLASSES or self.ALL_CLASSES)
        unknown = [c for c in chosen if c not in self.ALL_CLASSES]
        if unknown or not chosen:
            raise ValueError(f"{self.name}: unknown class(es) {unknown}; choose from {list(self.ALL_CLASSES)}")
        self._classes = chosen
        self.contract = contract or StudyContract()
        self._excluded_rows: list[tuple[str, str]] = []

    def _exclude(self, study_id: str, reason: str) -> None:
        self._excluded_rows.append((study_id, reason))

    def _set_labels(self, rows: Mapping[str, Sequence[int]], all_classes: Sequence[str]) -> None:
        """`rows` hold values for `all_classes`; keep the chosen classes, in their order."""
        frame = label_frame(rows, all_classes)
        self._labels = frame[list(self._classes)].copy()
        if self.task == "multiclass":
            bad = self._labels.index[self._labels.sum(axis=1) != 1]
            for study_id in bad:
                self._exclude(study_id, "not_exactly_one_class")
            self._labels = self._labels.drop(index=bad)

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    def study_ids(self) -> list[str]:
        return list(self._labels.index)

    def labels(self) -> pd.DataFrame:
        return self._labels.copy()

    def reports(self) -> pd.Series | None:
        return None if self._reports is None else self._reports.copy()

    def excluded(self) -> pd.DataFrame:
        """Studies left out, with the reason."""
        frame = pd.DataFrame(self._excluded_rows, columns=["study_id", "reason"])
        return frame.sort_values("study_id", ignore_index=True)

    def _check(self, study_id: str) -> None:
        if study_id not in self._labels.index:
            raise KeyError(f"study {study_id!r} is not in the {self.name} benchmark")

    def _cap(
        self,
        scans: list[PreparedScan],
        where: str,
        kinds: Sequence[str] | None = None,
        planes: Sequence[str] | None = None,
    ) -> np.ndarray:
        """The scans the model sees, chosen by the study contract (`StudyContract.select`), stacked.

        Args:
            scans: The study's prepared scans, in the adapter's reading order (which breaks ties).
            where: The study, for errors.
            kinds: Scan kind per scan where the adapter knows it (series classification); default: CT window names.
            planes: Acquisition plane per scan; default: unknown ("").
        """
        if not scans:
            raise BenchmarkDataError(f"{where}: no usable scan")
        kinds = list(kinds) if kinds is not None else [s.window for s in scans]
        planes = list(planes) if planes is not None else [""] * len(scans)
        try:
            chosen = self.contract.select(kinds, planes, [f"{i:06d}" for i in range(len(scans))])
        except ValueError as exc:
            raise BenchmarkDataError(f"{where}: {exc}") from exc
        return stack_scans([scans[i] for i in chosen])


def with_windows(config: PreprocessConfig, windows: dict[str, tuple[float, float]] | None) -> PreprocessConfig:
    """`config` with other CT windows (None keeps it)."""
    import dataclasses

    return config if windows is None else dataclasses.replace(config, ct_windows=dict(windows))
