"""Deliberately bad files in the export tree, so that ingestion's error paths run on the default data.

Planning picks where each bad file goes and what it derives from; the bytes are made when the study that hosts
it is written (`writer.py`), since truncations and duplicates copy that study's files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from demo_corpus.layout import ExportLayout
from demo_corpus.vocabulary import DEFECT_KINDS, IMAGING_KINDS

#: Relative frequency of each defect kind (every kind appears at least once per part).
_WEIGHTS = {
    "truncated": 0.16,
    "not_dicom": 0.2,
    "empty": 0.1,
    "no_pixel_data": 0.12,
    "inconsistent_series": 0.12,
    "duplicate": 0.22,
    "short_series": 0.08,
}
_JUNK_NAMES = (".DS_Store", "Thumbs.db", "desktop.ini", "export_log.txt", "REPORT.PDF", "index.html", "VERSION")


@dataclass(frozen=True)
class DefectPlan:
    """One bad file.

    Attributes:
        kind: One of `vocabulary.DEFECT_KINDS`.
        path: Where it goes, relative to the corpus root.
        study: Index of the study whose writer makes it.
        series_number: The series it pretends to belong to (``no_pixel_data``, ``inconsistent_series``).
        source: The good file it copies or cuts (``duplicate``, ``truncated``).
        fraction: Share of the source's bytes a truncated file keeps.
        flavour: ``matrix`` or ``orientation`` for an inconsistent slice; the junk file's name for ``not_dicom``.
    """

    kind: str
    path: str
    study: int
    series_number: int = 0
    source: str = ""
    fraction: float = 0.0
    flavour: str = ""


@dataclass(frozen=True)
class FileRef:
    """A good file a defect can derive from."""

    study: int
    series_number: int
    kind: str
    multiframe: bool
    path: str


def defect_counts(rng: np.random.Generator, n_files: int, share: float) -> dict[str, int]:
    """How many bad files of each kind a part gets: about ``share`` of its files, each kind at least once."""
    total = max(len(DEFECT_KINDS), round(share * n_files))
    extra = total - len(DEFECT_KINDS)
    p = np.array([_WEIGHTS[k] for k in DEFECT_KINDS])
    counts = rng.multinomial(extra, p / p.sum()) if extra > 0 else np.zeros(len(DEFECT_KINDS), int)
    return {k: 1 + int(c) for k, c in zip(DEFECT_KINDS, counts, strict=True)}


def plan_defects(
    rng: np.random.Generator,
    files: Sequence[FileRef],
    layout: ExportLayout,
    counts: dict[str, int],
) -> list[DefectPlan]:
    """Place the bad files (all kinds but ``short_series``, which is planned as a series of its own).

    Args:
        rng: The part's defect generator.
        files: Every good file of the part, in a deterministic order.
        layout: The part's layout, for fresh names in existing folders.
        counts: Bad files per kind, from `defect_counts`.
    """
    slices = [f for f in files if f.kind in IMAGING_KINDS and not f.multiframe]
    taken: set[str] = set()
    out: list[DefectPlan] = []

    def pick(pool: Sequence[FileRef]) -> FileRef:
        return pool[int(rng.integers(len(pool)))]

    for kind in DEFECT_KINDS:
        for _ in range(counts.get(kind, 0) if kind != "short_series" else 0):
            src = pick(slices if kind in ("truncated", "no_pixel_data", "inconsistent_series") else files)
            if kind == "not_dicom":
                folder = src.path.rsplit("/", 1)[0]
                names = [n for n in _JUNK_NAMES if f"{folder}/{n}" not in taken]
                name = str(rng.choice(names)) if names else f"._{src.path.rsplit('/', 1)[1]}"  # AppleDouble
                path = f"{folder}/{name}"
                flavour = name
            elif kind == "duplicate" and rng.random() < 0.4:
                path, flavour = layout.new_file(pick(files).path), ""  # a copy in another folder
            else:
                path = layout.new_file(src.path)
                flavour = str(rng.choice(["matrix", "orientation"])) if kind == "inconsistent_series" else ""
            taken.add(path)
            out.append(
                DefectPlan(
                    kind, path, src.study, src.series_number, src.path, round(float(rng.uniform(0.2, 0.9)), 3), flavour
                )
            )
    return out


def junk_bytes(name: str, rng: np.random.Generator) -> bytes:
    """Content of a non-DICOM file an export tree picks up."""
    if name == ".DS_Store" or name.startswith("._"):
        return b"\x00\x00\x00\x01Bud1" + rng.integers(0, 256, 2043, dtype=np.uint8).tobytes()
    if name == "Thumbs.db":
        return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + rng.integers(0, 256, 1528, dtype=np.uint8).tobytes()
    if name.endswith(".PDF"):
        return (
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
        )
    if name == "index.html":
        return b"<html><body><h1>Patient CD</h1><p>Insert disc and run viewer.exe</p></body></html>\n"
    if name == "desktop.ini":
        return b"[.ShellClassInfo]\r\nIconResource=C:\\Windows\\System32\\imageres.dll,-3\r\n"
    return f"export started\nfiles: {rng.integers(100, 5000)}\nstatus: OK\n".encode()
