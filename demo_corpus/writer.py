"""Write one planned study to disk: render its series, encode its DICOM files, then make its bad files.

A study's bytes depend only on its plan, so workers can write studies in any order and in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from demo_corpus.anatomy import load_anatomy
from demo_corpus.capture import screenshot_pixels, secondary_capture, text_report
from demo_corpus.defect import DefectPlan, junk_bytes
from demo_corpus.dicom import encode as encode_dataset
from demo_corpus.dicom import enhanced_mr, merged, mr_template, slice_elements, study_dataset, window_of
from demo_corpus.encoder import SeriesEncoder
from demo_corpus.identity import SITES
from demo_corpus.plan import StudyPlan, stream, uid
from demo_corpus.protocol import SeriesPlan
from demo_corpus.render import Volume, render_series


@dataclass(frozen=True)
class StudyFiles:
    """What writing a study produced: ``(path, bytes)`` of every file, good and bad."""

    part: str
    index: int
    files: tuple[tuple[str, int], ...]


def _frames(series: SeriesPlan, volumes: list[Volume], vendor: str) -> list[tuple[Volume, int]]:
    """Instance order of the slices: GE interleaves b-values at each position, others write them in blocks."""
    if len(volumes) > 1 and series.kind == "dwi" and vendor == "GE MEDICAL SYSTEMS":
        return [(v, i) for i in range(volumes[0].grid.n_slices) for v in volumes]
    return [(v, i) for v in volumes for i in range(v.grid.n_slices)]


class _StudyWriter:
    def __init__(self, out_dir: Path, study: StudyPlan, resolution_mm: int) -> None:
        self.out_dir, self.study = out_dir, study
        self.anatomy = load_anatomy(resolution_mm)
        self.rng = stream(study.seed, study.part, study.index, "tags")  # weights, phones, junk bytes
        self.written: dict[str, bytes] = {}
        self.sizes: list[tuple[str, int]] = []
        self.volumes: dict[int, list[Volume]] = {}
        self.thumbnail: NDArray[np.uint16] | None = None

    def put(self, path: str, data: bytes, keep: bool = False) -> None:
        target = self.out_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        self.sizes.append((path, len(data)))
        if keep:
            self.written[path] = data

    def image_series(self, series: SeriesPlan, base: Dataset, sources: set[str]) -> None:
        vendor = SITES[self.study.site].vendor
        volumes = render_series(self.anatomy, self.study.pose, self.study.findings, series)
        self.volumes[series.number] = volumes
        if self.thumbnail is None and series.kind != "localizer":
            self.thumbnail = volumes[0].pixels[volumes[0].grid.n_slices // 2]
        window = window_of(volumes[-1].pixels, series.rescale_slope)
        frames = _frames(series, volumes, vendor)
        if series.multiframe:
            ds = enhanced_mr(base, self.study, series, [(v.grid, i, v.b_value) for v, i in frames], window)
            pixels = np.stack([v.pixels[i] for v, i in frames])  # [F, R, C]
            self.put(series.paths[0], encode_dataset(ds, series.transfer_syntax, pixels), series.paths[0] in sources)
            return
        stacks: dict[int, tuple[Dataset, SeriesEncoder | None]] = {}  # per stack: a localizer has three
        for k, ((volume, i), path) in enumerate(zip(frames, series.paths, strict=True)):
            if id(volume.grid) not in stacks:
                template = mr_template(base, self.study, series, volume.grid, window)
                fast = SeriesEncoder(template, series.transfer_syntax) if series.transfer_syntax != "rle" else None
                stacks[id(volume.grid)] = (template, fast)
            template, fast = stacks[id(volume.grid)]
            per_slice = slice_elements(series, volume.grid, i, k + 1, volume.b_value)
            pixels = volume.pixels[i]
            data = (
                fast.encode(per_slice, pixels) if fast else encode_dataset(merged(template, per_slice), "rle", pixels)
            )
            self.put(path, data, path in sources)

    def defect(self, d: DefectPlan, k: int) -> None:
        if d.kind in ("truncated", "duplicate"):
            data = self.written[d.source]
            self.put(d.path, data[: max(200, int(len(data) * d.fraction))] if d.kind == "truncated" else data)
        elif d.kind == "empty":
            self.put(d.path, b"")
        elif d.kind == "not_dicom":
            self.put(d.path, junk_bytes(d.flavour, self.rng))
        else:
            self.put(d.path, self._odd_slice(d, k))

    def _odd_slice(self, d: DefectPlan, k: int) -> bytes:
        """An extra instance of a series: without pixel data, or with another matrix or orientation."""
        series = next(s for s in self.study.series if s.number == d.series_number)
        volume = self.volumes[series.number][0]
        grid, i = volume.grid, volume.grid.n_slices // 2
        pixels: NDArray[np.uint16] = volume.pixels[i]
        if d.flavour == "matrix":
            pixels = np.ascontiguousarray(pixels[::2, ::2])
            spacing = (grid.pixel_spacing[0] * 2, grid.pixel_spacing[1] * 2)
            grid = replace(grid, rows=pixels.shape[0], cols=pixels.shape[1], pixel_spacing=spacing)
        elif d.flavour == "orientation":
            grid = replace(grid, row_dir=grid.col_dir, col_dir=grid.row_dir, rows=grid.cols, cols=grid.rows)
            pixels = np.ascontiguousarray(pixels.T)
        base = study_dataset(self.study, series, self.rng)
        window = window_of(volume.pixels, series.rescale_slope)
        ds = merged(
            mr_template(base, self.study, series, grid, window),
            slice_elements(series, grid, i, len(series.paths) + 1 + k, volume.b_value),
        )
        ds.SOPInstanceUID = uid(0, series.uid, "extra", k)
        if d.kind == "no_pixel_data":
            return encode_dataset(ds, "explicit", None)
        return encode_dataset(ds, series.transfer_syntax, pixels)

    def run(self) -> StudyFiles:
        sources = {d.source for d in self.study.defects if d.kind in ("truncated", "duplicate")}
        for series in self.study.series:
            base = study_dataset(self.study, series, self.rng)
            if series.kind == "sr":
                self.put(
                    series.paths[0],
                    encode_dataset(text_report(base, self.study, series, self.rng), "explicit", None),
                    series.paths[0] in sources,
                )
            elif series.kind == "secondary_capture":
                pixels = screenshot_pixels(self.study, self.thumbnail)
                ds = secondary_capture(base, series, *pixels.shape[:2])
                self.put(
                    series.paths[0], encode_dataset(ds, series.transfer_syntax, pixels), series.paths[0] in sources
                )
            else:
                self.image_series(series, base, sources)
        for k, d in enumerate(self.study.defects):
            self.defect(d, k)
        return StudyFiles(self.study.part, self.study.index, tuple(self.sizes))


def write_study(out_dir: Path, study: StudyPlan, resolution_mm: int) -> StudyFiles:
    """Render and write every file of one study (bad files included) under ``out_dir``."""
    return _StudyWriter(out_dir, study, resolution_mm).run()
