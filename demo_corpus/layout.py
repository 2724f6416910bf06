"""Folder and file names of a PACS export: the tree ingestion has to walk without trusting any of it.

Studies are exported in batches; each batch uses one naming style, as different tools (a PACS export, a CD
import, a research workstation) do: ``DICOM/PA000001/ST000001/SE000001/IM000001`` files without extension,
UID-named folders, patient-named folders (protected health information in the path), or flat folders mixing
several studies. Now and then a study is split over two batches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

STYLES = ("pacs", "uid", "named", "flat")
_BATCH_NAMES = (
    "export_{y}_batch{k:02d}",
    "PACS_PULL_{k:03d}",
    "cd_import_{k}",
    "DICOM EXPORT {y}-{k:02d}",
    "research_dump_{k:02d}",
)


@dataclass
class Folder:
    """A folder of the export and its file-naming state."""

    path: str
    style: str
    series_number: int = 0
    flavour: int = 0
    next_index: int = 1

    def new_name(self) -> str:
        """The next unused file name in this folder, in its style."""
        i = self.next_index
        self.next_index += 1
        if self.style == "pacs":
            return f"{self.path}/IM{i:06d}"
        if self.style == "uid":
            return f"{self.path}/1-{i:03d}.dcm"
        if self.style == "named":
            return f"{self.path}/IM-{self.series_number:04d}-{i:04d}.dcm"
        return f"{self.path}/{i:08d}.dcm" if self.flavour == 0 else f"{self.path}/IMG{i:05d}"


@dataclass(frozen=True)
class SeriesKey:
    """What the layout needs to know of a series."""

    study: int
    number: int
    uid: str
    description: str
    n_files: int


@dataclass(frozen=True)
class StudyKey:
    """What the layout needs to know of a study."""

    index: int
    uid: str
    patient_id: str
    patient_name: str  # FAMILY^GIVEN
    date: str
    series: tuple[SeriesKey, ...]


def _counter(state: dict[tuple[str, ...], int], scope: tuple[str, ...], key: tuple[str, ...]) -> int:
    """A 1-based number for ``key``, the next free one within ``scope`` when it is new."""
    if key not in state:
        state[scope] = state.get(scope, 0) + 1
        state[key] = state[scope]
    return state[key]


def _clean(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_+-]+", "_", text).strip("_") or "unnamed"


@dataclass
class ExportLayout:
    """Assigns every file of a part a path under ``<part>/dicom`` and keeps the folders for later extra files."""

    root: str
    rng: np.random.Generator
    folders: dict[str, Folder] = field(default_factory=dict)

    def _folder(self, path: str, style: str, series_number: int = 0, flavour: int = 0) -> Folder:
        if path not in self.folders:
            self.folders[path] = Folder(path, style, series_number, flavour)
        return self.folders[path]

    def _batches(self, n_studies: int) -> list[tuple[str, str, list[int]]]:
        order = list(range(n_studies))
        batches: list[tuple[str, str, list[int]]] = []
        k, start = 1, 0
        while start < n_studies:
            size = int(self.rng.integers(8, 40))
            year = int(self.rng.integers(2017, 2025))
            template = _BATCH_NAMES[int(self.rng.integers(len(_BATCH_NAMES)))]
            style = STYLES[int(self.rng.choice(len(STYLES), p=[0.35, 0.2, 0.2, 0.25]))]
            batches.append((f"{self.root}/{template.format(y=year, k=k)}", style, order[start : start + size]))
            start += size
            k += 1
        return batches

    def _series_folder(
        self, batch: str, style: str, study: StudyKey, s: SeriesKey, state: dict[tuple[str, ...], int]
    ) -> Folder:
        if style == "pacs":
            patient = _counter(state, ("patient", batch), ("patient", batch, study.patient_id))
            st = _counter(state, ("study", batch, study.patient_id), ("study", batch, study.uid))
            se = _counter(state, ("series", batch, study.uid), ("series", batch, study.uid, str(s.number)))
            return self._folder(f"{batch}/DICOM/PA{patient:06d}/ST{st:06d}/SE{se:06d}", style)
        if style == "uid":
            return self._folder(f"{batch}/{study.uid}/{s.uid}", style)
        if style == "named":
            family, _, given = study.patient_name.partition("^")
            top = f"{batch}/{family}_{given}_{study.patient_id}/{study.date} MR BRAIN"
            return self._folder(f"{top}/{s.number}_{_clean(s.description)}", style, s.number)
        key = ("flat", batch, study.uid)
        if key not in state:
            if state.get(("flat-left", batch), 0) <= 0:  # open a new folder shared by the next 1-4 studies
                state[("flat-id", batch)] = int(self.rng.integers(16**7, 16**8))
                state[("flat-left", batch)] = int(self.rng.integers(1, 5))
            state[("flat-left", batch)] -= 1
            state[key] = state[("flat-id", batch)]
        return self._folder(f"{batch}/{state[key]:08x}", style, flavour=state[key] % 2)

    def assign(self, studies: list[StudyKey]) -> dict[tuple[int, int], tuple[str, ...]]:
        """File paths of every series, keyed by ``(study index, series number)``, in instance order."""
        batches = self._batches(len(studies))
        state: dict[tuple[str, ...], int] = {}
        out: dict[tuple[int, int], tuple[str, ...]] = {}
        for b, (batch, style, members) in enumerate(batches):
            for i in members:
                study = studies[i]
                split = len(study.series) > 2 and b + 1 < len(batches) and self.rng.random() < 0.05
                half = len(study.series) // 2
                for j, s in enumerate(study.series):
                    target, target_style = (batches[b + 1][:2]) if split and j >= half else (batch, style)
                    folder = self._series_folder(target, target_style, study, s, state)
                    out[(study.index, s.number)] = tuple(folder.new_name() for _ in range(s.n_files))
        return out

    def new_file(self, near: str) -> str:
        """A fresh file name in the folder of an existing path, in that folder's style."""
        return self.folders[near.rsplit("/", 1)[0]].new_name()
