"""DICOM files of one benchmark study -> model-ready scans, through the ingest stage's own pieces.

Headers (`read_instance`), series grouping and junk detection (`group_series`, `classify_series`: localizers,
screenshots, too-short series are dropped), stack splitting and ordering along the slice normal (`split_series`,
`order_stack`), rescale (`build_volume`) and preprocessing (`preprocess`: CT windows, orientation, spacing, size)
are exactly those that made the training scans, so a benchmark study is seen as a training study would be.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hlip.data.dicom import Instance, read_instance, read_pixels
from hlip.data.preprocess import PreparedScan, PreprocessConfig, preprocess
from hlip.data.quarantine import RejectedError
from hlip.data.series import SeriesConfig, classify_series, group_series
from hlip.data.source import LocalSource
from hlip.data.volume import VolumeConfig, build_volume, order_stack, split_series


@dataclass
class DicomStudyScans:
    """The scans of one study, in (first file path, stack, window) order, each scan's kind and plane (series
    classification), and what was left out and why."""

    scans: list[PreparedScan] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    planes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def prepare_dicom_study(
    root: Path,
    paths: Sequence[str],
    config: PreprocessConfig,
    series: SeriesConfig | None = None,
    volume: VolumeConfig | None = None,
) -> DicomStudyScans:
    """Read, group, check and preprocess the DICOM files of one study.

    Args:
        root: Folder the paths are relative to.
        paths: The study's files (relative POSIX paths).
        config: The scan spec (CT: one scan per window).
        series: Classification settings (ingest's by default).
        volume: Stack checks (ingest's by default).

    Returns:
        The prepared scans and one line per skipped file/series/stack (relative path or series, reason).
    """
    series = series or SeriesConfig()
    volume = volume or VolumeConfig()
    source = LocalSource(root)
    out = DicomStudyScans()
    instances: list[Instance] = []
    for path in sorted(paths):
        try:
            instances.append(read_instance(source, path))
        except RejectedError as exc:
            out.skipped.append(f"{path}: {exc.reason} ({exc.message})")
    groups = sorted(group_series(instances).values(), key=lambda members: members[0].path)
    for members in groups:
        where = str(Path(members[0].path).parent)
        decision = classify_series(members, series)
        if not decision.used:
            out.skipped.append(f"{where}: {decision.junk} ({decision.reason})")
            continue
        stacks, strays = split_series(members, series.min_slices, volume)
        out.skipped += [f"{where}: {s.reason} ({s.message})" for s in strays]
        by_path = {m.path: m for m in members}
        for stack in stacks:
            try:
                pixels = {p: read_pixels(source, by_path[p]) for p in stack.paths}
                ordered = order_stack(stack, series.min_slices, volume)
                built = build_volume(ordered, pixels)
                modality = by_path[ordered.slices[0].path].modality
                prepared = preprocess(built, modality, decision.plane, config)
                out.scans += prepared
                out.kinds += [decision.kind] * len(prepared)
                out.planes += [decision.plane] * len(prepared)
            except RejectedError as exc:
                out.skipped.append(f"{where}: {exc.reason} ({exc.message})")
    return out
