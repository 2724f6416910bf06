"""Pictures of a generated corpus, read back from its DICOM files: one PNG per series kind, and contact sheets.

Everything shown is decoded by pydicom from the files on disk (so the pictures also check the encoding); the
ground-truth tables only say where to look, and the corpus plan says which slice crosses a finding.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from demo_corpus.vocabulary import IMAGING_KINDS, PRIMARY_FINDINGS, SERIES_KINDS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Picture:
    """One displayable image: pixels, the aspect of a pixel (height / width), a title; or a text object."""

    pixels: NDArray[Any]
    aspect: float
    title: str
    text: str = ""


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _read_series(corpus: Path, row: dict[str, str], bad: set[str]) -> list[Any]:
    """The readable datasets of one series (its folder may hold other series too)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    out = []
    for path in sorted((corpus / row["folder"]).iterdir()):
        if not path.is_file() or str(path.relative_to(corpus)) in bad:
            continue
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError):
            continue
        if ds.get("SeriesInstanceUID") == row["series_instance_uid"]:
            out.append(ds)
    return out


def _stack(datasets: list[Any]) -> tuple[NDArray[np.float32], NDArray[np.float64], NDArray[np.float64], float]:
    """Slices sorted along the normal (b = 1000 only for DWI): pixels [S, R, C], positions, normal, aspect."""
    frames: list[tuple[NDArray[Any], list[float], float | None]] = []
    iop: list[float] = []
    spacing: list[float] = [1.0, 1.0]
    for ds in datasets:
        if "PerFrameFunctionalGroupsSequence" in ds:
            shared = ds.SharedFunctionalGroupsSequence[0]
            iop = [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
            spacing = [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing]
            pixels = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
            for item, frame in zip(ds.PerFrameFunctionalGroupsSequence, pixels, strict=True):
                b = float(item.MRDiffusionSequence[0].DiffusionBValue) if "MRDiffusionSequence" in item else None
                frames.append((frame, [float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient], b))
        elif "PixelData" in ds and "ImagePositionPatient" in ds:
            iop = [float(v) for v in ds.ImageOrientationPatient]
            spacing = [float(v) for v in ds.PixelSpacing]
            b = float(ds.DiffusionBValue) if "DiffusionBValue" in ds else None
            frames.append((ds.pixel_array, [float(v) for v in ds.ImagePositionPatient], b))
    top_b = max((b for _, _, b in frames if b is not None), default=None)
    frames = [f for f in frames if f[2] == top_b and f[0].shape == frames[0][0].shape]
    normal = np.cross(iop[:3], iop[3:])
    positions = np.array([p for _, p, _ in frames])
    order = np.argsort(positions @ normal, kind="stable")
    pixels = np.stack([frames[i][0] for i in order]).astype(np.float32)
    return pixels, positions[order], normal, spacing[0] / spacing[1]


def _picture(
    corpus: Path, row: dict[str, str], bad: set[str], point: NDArray[np.float64] | None = None
) -> Picture | None:
    """The mid-slice of a series (or the slice nearest ``point``); localizers tile, SR text is drawn as text."""
    datasets = _read_series(corpus, row, bad)
    if not datasets:
        return None
    title = f"{row['kind']}: {row['series_description'] or '(no description)'}"
    ds = datasets[0]
    if row["kind"] == "sr":
        text = "\n".join(str(item.TextValue) for item in ds.ContentSequence)
        return Picture(np.zeros((1, 1)), 1.0, title, text)
    if row["kind"] == "secondary_capture":
        return Picture(ds.pixel_array, 1.0, title)
    if row["kind"] == "localizer":
        tiles = [d.pixel_array for d in sorted(datasets, key=lambda d: int(d.InstanceNumber))]
        tiles = [t / max(1.0, float(np.percentile(t, 99.5))) for t in tiles if t.shape == tiles[0].shape]
        return Picture(np.concatenate(tiles, axis=1), 1.0, title)
    pixels, positions, normal, aspect = _stack(datasets)
    index = len(pixels) // 2 if point is None else int(np.argmin(np.abs((positions - point) @ normal)))
    return Picture(pixels[index], aspect, f"{title} [{index + 1}/{len(pixels)}]")


def _draw(pictures: list[Picture], path: Path, columns: int, suptitle: str = "") -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = (len(pictures) + columns - 1) // columns
    size = 3.2 if columns > 1 else 5.0  # a lone picture gets more pixels
    fig = Figure(figsize=(size * columns, (size + 0.3) * rows), dpi=100, facecolor="black")
    FigureCanvasAgg(fig)
    for i, pic in enumerate(pictures):
        ax = fig.add_subplot(rows, columns, i + 1)
        ax.set_axis_off()
        ax.set_title(pic.title, color="white", fontsize=7, loc="left")
        if pic.pixels.size <= 1:  # a text object
            ax.text(0.0, 0.9, pic.text, color="white", fontsize=7, va="top", wrap=True)
            continue
        if pic.pixels.ndim == 3:
            ax.imshow(pic.pixels, interpolation="nearest")
            continue
        lo, hi = np.percentile(pic.pixels, [1.0, 99.5])  # window from the data
        ax.imshow(
            pic.pixels, cmap="gray", vmin=lo, vmax=max(hi, lo + 1e-6), aspect=pic.aspect, interpolation="bilinear"
        )
    if suptitle:
        fig.suptitle(suptitle, color="white", fontsize=9)
    fig.savefig(path, facecolor="black")
    return path


def _lesion_points(corpus: Path) -> dict[str, NDArray[np.float64]]:
    """Patient-space centre of each study's primary finding, from a re-plan of the corpus's config."""
    from demo_corpus.config import DemoCorpusConfig
    from demo_corpus.corpus import MANIFEST
    from demo_corpus.plan import plan_corpus

    config = DemoCorpusConfig.from_dict(json.loads((corpus / MANIFEST).read_text(encoding="utf-8"))["config"])
    out = {}
    for study in plan_corpus(config).studies:
        primary = [f for f in study.findings if f.name in PRIMARY_FINDINGS]
        if primary:
            blob = next(
                (b for b in primary[0].blobs if b.compartment not in ("edema", "dural_tail")), primary[0].blobs[0]
            )
            out[study.uid] = study.pose.to_patient(np.asarray(blob.centre))
    return out


def render_preview(corpus_dir: Path, out_dir: Path) -> list[Path]:
    """Write ``series_<kind>.png`` (mid-slice of one series of each kind) and ``study_<class>.png`` contact sheets.

    Args:
        corpus_dir: A folder written by `generate_corpus`.
        out_dir: Where the PNGs go (created).

    Returns:
        The PNG paths, per-kind pictures first.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    series = [r for r in _rows(corpus_dir / "ground_truth" / "series.csv") if not r["defect"]]
    bad = {r["path"] for r in _rows(corpus_dir / "ground_truth" / "bad_files.csv")}
    labels = {
        r["study_instance_uid"]: r["label"]
        for name in ("train_labels.csv", "benchmark_labels.csv")
        for r in _rows(corpus_dir / "ground_truth" / name)
    }
    by_study: dict[str, list[dict[str, str]]] = {}
    for r in series:
        by_study.setdefault(r["study_instance_uid"], []).append(r)
    points = _lesion_points(corpus_dir)
    written: list[Path] = []
    sheets: dict[str, str] = {}
    richest_first = sorted(by_study, key=lambda uid: -len({r["kind"] for r in by_study[uid]} & set(IMAGING_KINDS)))
    for uid in richest_first:  # the study of each class with the most image kinds gets a contact sheet
        if labels.get(uid, "normal") != "normal" and labels[uid] not in sheets and uid in points:
            sheets[labels[uid]] = uid
    featured = [r for uid in sheets.values() for r in by_study[uid]]
    for kind in SERIES_KINDS:
        row = next((r for r in [*featured, *series] if r["kind"] == kind), None)
        picture = _picture(corpus_dir, row, bad) if row else None
        if picture is not None:
            written.append(_draw([picture], out_dir / f"series_{kind}.png", 1))
    for label, uid in sorted(sheets.items()):
        rows = [r for r in by_study[uid] if r["kind"] in IMAGING_KINDS]
        pictures = [p for r in rows if (p := _picture(corpus_dir, r, bad, points[uid])) is not None]
        written.append(_draw(pictures, out_dir / f"study_{label}.png", 4, f"{label} study: slices through the finding"))
    logger.info("wrote %d preview pictures to %s", len(written), out_dir)
    return written
