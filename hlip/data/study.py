"""The work on one study, as a pure function of (task, config, key) -> result.

`process_study` reads the study's headers, drops duplicate files, classifies each series, splits and checks
stacks, reads pixels only for stacks that will be used, preprocesses and writes the volumes, scrubs the reports,
and accounts for every file. It touches nothing but its own `volumes/<study_key>/` folder, so it can run in a
process pool or on a Dask worker (the source is picklable, the result is plain data).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hlip.data.config import IngestConfig
from hlip.data.deid import HashKey, burned_in, deidentify
from hlip.data.dicom import Instance, as_strings, read_instance, read_pixels
from hlip.data.preprocess import preprocess
from hlip.data.quarantine import Level, QuarantineEntry, Reason, RejectedError
from hlip.data.report import ReportRow
from hlip.data.scrub import Identifiers, identifiers_from_dataset, scrub_report
from hlip.data.series import SeriesDecision, classify_series, group_series
from hlip.data.source import Source, SourceFile
from hlip.data.volume import Stack, build_volume, check_plausible, order_stack, split_series

log = logging.getLogger(__name__)
COPY_MARK = re.compile(r"copy|\(\d+\)|[ _-]dup|~$|\.bak$|\.orig$", re.I)


@dataclass(frozen=True)
class StudyTask:
    """The input of one study's work.

    Attributes:
        source: Where the files are.
        study_key: The study's keyed hash.
        files: Its files (from the header pass).
        reports: Its RIS rows (matched by accession).
        out_dir: The output folder (volumes go to `volumes/<study_key>/`).
        fingerprint: Digest of files, reports, config and key: equal fingerprints mean nothing to redo.
    """

    source: Source
    study_key: str
    files: tuple[SourceFile, ...]
    reports: tuple[ReportRow, ...]
    out_dir: str
    fingerprint: str


@dataclass
class StudyResult:
    """Plain rows for the manifest tables."""

    study: dict[str, Any]
    scans: list[dict[str, Any]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    quarantine: list[QuarantineEntry] = field(default_factory=list)
    dispositions: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (disposition, ref)
    seconds: float = 0.0


class _Study:
    """Mutable state of one study's work (kept private: the public surface is `process_study`)."""

    def __init__(self, task: StudyTask, config: IngestConfig, key: HashKey) -> None:
        self.task, self.config, self.key = task, config, key
        self.result = StudyResult(study={})
        self.file_entries: dict[str, QuarantineEntry] = {}
        self.used: dict[str, str] = {}
        self.covered: dict[str, str] = {}
        self.pixels: dict[str, np.ndarray] = {}
        self.tmp_dir = Path(task.out_dir) / "volumes" / f".tmp-{task.study_key}-{os.getpid()}"

    def h(self, namespace: str, value: str) -> str:
        return self.key.hash(namespace, value, self.config.deid.hash_length)

    def label(self, path: str) -> str:
        return self.h("path", path) if self.config.deid.hash_paths else path

    def reject_file(self, path: str, reason: Reason, message: str, series_key: str = "") -> None:
        if path not in self.file_entries:
            entry = QuarantineEntry(Level.FILE, self.label(path), reason, message, self.task.study_key, series_key)
            self.file_entries[path] = entry
            self.result.quarantine.append(entry)

    def reject_part(self, subject: str, paths: list[str], reason: Reason, message: str, series_key: str) -> None:
        entry = QuarantineEntry(Level.SERIES, subject, reason, message, self.task.study_key, series_key)
        self.result.quarantine.append(entry)
        for p in paths:
            self.covered.setdefault(p, entry.entry_id)


def process_study(task: StudyTask, config: IngestConfig, key: HashKey) -> StudyResult:
    """Ingest one study. Never raises for bad data: every problem becomes a quarantine entry.

    Args:
        task: The study's files, reports and output folder.
        config: Ingest settings.
        key: The de-identification key.

    Returns:
        The rows for the manifest tables and the disposition of every file.
    """
    start = time.perf_counter()
    try:
        result = _process(task, config, key)
    except Exception as exc:  # a bug must cost one study, accounted for, never the run
        log.exception("study %s failed", task.study_key)
        result = _failed(task, config, key, exc)
    result.seconds = time.perf_counter() - start
    return result


def _failed(task: StudyTask, config: IngestConfig, key: HashKey, exc: Exception) -> StudyResult:
    st = _Study(task, config, key)
    shutil.rmtree(st.tmp_dir, ignore_errors=True)
    message = f"study failed: {type(exc).__name__}"
    for f in task.files:
        st.reject_file(f.path, Reason.INTERNAL_ERROR, message)
    _finish(st, [], 0)
    return st.result


def _process(task: StudyTask, config: IngestConfig, key: HashKey) -> StudyResult:
    st = _Study(task, config, key)
    instances = _read_headers(st)
    instances = _drop_duplicates(st, instances)
    shutil.rmtree(st.tmp_dir, ignore_errors=True)
    scans_done = 0
    if not _identity_conflict(st, instances):
        for series_uid, members in group_series(instances).items():
            scans_done += _process_series(st, series_uid, members)
    _publish_volumes(st)
    identifiers = Identifiers()
    patient_ids: set[str] = set()
    for inst in instances:
        identifiers.update(identifiers_from_dataset(inst.header))
        patient_ids.update(as_strings(inst.header.get("PatientID")) + as_strings(inst.header.get("OtherPatientIDs")))
    _process_reports(st, identifiers, {p.strip() for p in patient_ids if p.strip()})
    _finish(st, instances, scans_done)
    return st.result


def _read_headers(st: _Study) -> list[Instance]:
    instances = []
    for f in st.task.files:
        try:
            inst = read_instance(st.task.source, f.path, f.size)
            check_plausible(inst, st.config.limits)
            instances.append(inst)
        except RejectedError as exc:
            st.reject_file(f.path, exc.reason, exc.message)
        except Exception as exc:  # the per-file guard: an unforeseen failure costs this file, not the study
            st.reject_file(f.path, Reason.INTERNAL_ERROR, f"header: {type(exc).__name__}")
    return instances


def _drop_duplicates(st: _Study, instances: list[Instance]) -> list[Instance]:
    """Keep one file per SOPInstanceUID; byte-identical copies and conflicting twins go to quarantine."""
    by_sop: dict[str, list[Instance]] = defaultdict(list)
    for inst in instances:
        by_sop[inst.sop_uid].append(inst)
    versions = {f.path: f.version for f in st.task.files}
    kept = []
    for group in by_sop.values():
        # the original is the file without a copy mark in its name, then the older one, then the first by path
        group.sort(key=lambda i: (bool(COPY_MARK.search(Path(i.path).name)), _num(versions.get(i.path)), i.path))
        kept.append(group[0])
        if len(group) == 1:
            continue
        original = _digest(st.task.source, group[0].path)
        for twin in group[1:]:
            same = _digest(st.task.source, twin.path) == original
            reason = Reason.DUPLICATE_FILE if same else Reason.DUPLICATE_INSTANCE
            what = "byte-identical copy of" if same else "same SOPInstanceUID but other content than"
            st.reject_file(twin.path, reason, f"{what} {st.label(group[0].path)} (kept)")
    return sorted(kept, key=lambda i: i.path)


def _identity_conflict(st: _Study, instances: list[Instance]) -> bool:
    """Whether the study's files disagree on PatientID and the study is quarantined for it (else maybe flagged).

    One StudyInstanceUID with two patients is a PACS merge error or a UID collision: its volumes and report could
    be joined to the wrong person, so by default none of it is used.
    """
    ids = {str(i.header.get("PatientID", "") or "").strip() for i in instances} - {""}
    if len(ids) < 2:
        return False
    quarantine = st.config.deid.identity_conflict == "quarantine"
    message = f"files of this study carry {len(ids)} different PatientIDs" + (
        "" if quarantine else "; flagged only (ingest.deid.identity_conflict: flag), the study is ingested"
    )
    entry = QuarantineEntry(Level.STUDY, st.task.study_key, Reason.IDENTITY_CONFLICT, message, st.task.study_key)
    st.result.quarantine.append(entry)
    if quarantine:
        for inst in instances:
            st.covered.setdefault(inst.path, entry.entry_id)
    return quarantine


def _num(version: str | None) -> int:
    try:
        return int(version or 0)
    except ValueError:
        return 0


def _digest(source: Source, path: str) -> str:
    h = hashlib.sha256()
    for block in source.iter_bytes(path):  # streamed: a duplicate check never holds a whole file
        h.update(block)
    return h.hexdigest()


def _process_series(st: _Study, series_uid: str, members: list[Instance]) -> int:
    cfg = st.config
    series_key = st.h("series", series_uid)
    decision = classify_series(members, cfg.series)
    paths = [m.path for m in members]
    if not decision.used:
        assert decision.junk is not None
        st.reject_part(series_key, paths, decision.junk, decision.reason, series_key)
        return 0
    burned = None if cfg.deid.allow_burned_in else burned_in([m.header for m in members], cfg.deid.burned_in_rules)
    if burned:  # text in the pixels can name the patient: no header scrubbing removes it
        st.reject_part(series_key, paths, Reason.BURNED_IN_ANNOTATION, burned, series_key)
        return 0
    stacks, strays = split_series(members, cfg.series.min_slices, cfg.volume)
    for stray in strays:
        for path in sorted({s.path for s in stray.slices}):
            st.reject_file(path, stray.reason, stray.message, series_key)
    by_path = {m.path: m for m in members}
    done = 0
    for stack in stacks:
        done += _process_stack(st, series_uid, series_key, stack, decision, by_path)
    return done


def _process_stack(
    st: _Study, series_uid: str, series_key: str, stack: Stack, decision: SeriesDecision, by_path: dict[str, Instance]
) -> int:
    cfg = st.config
    part_key = st.h("part", f"{series_uid}\x00{stack.label}")
    subject = series_key if not stack.label else f"{series_key}/{part_key}"
    try:
        # Decode first: a file without usable pixels (no Pixel Data, cut short) is rejected on its own with its
        # reason, and cannot make its whole series fail a geometry check (e.g. by sitting at a taken position).
        failed = _load_pixels(st, stack, by_path, series_key)
        usable = Stack(stack.label, [s for s in stack.slices if s.path not in failed])
        ordered = order_stack(usable, cfg.series.min_slices, cfg.volume)
        volume = build_volume(ordered, st.pixels)
        modality = by_path[ordered.slices[0].path].modality
        prepared = preprocess(volume, modality, decision.plane, cfg.preprocess)
    except RejectedError as exc:
        st.reject_part(subject, stack.paths, exc.reason, exc.message, series_key)
        return 0
    except Exception as exc:  # a bug or an odd volume must cost one scan, not the run
        log.exception("preprocessing failed for a series of study %s", st.task.study_key)
        st.reject_part(subject, stack.paths, Reason.PREPROCESS_ERROR, f"{type(exc).__name__}: {exc}"[:300], series_key)
        return 0
    header = _header_json(st, by_path[ordered.slices[0].path]) if cfg.deid.export_header else ""
    for scan in prepared:
        scan_key = st.h("scan", f"{series_uid}\x00{stack.label}\x00{scan.window}")
        st.tmp_dir.mkdir(parents=True, exist_ok=True)
        np.save(st.tmp_dir / f"{scan_key}.npy", scan.array)
        st.result.scans.append(
            {
                "study_key": st.task.study_key,
                "series_key": series_key,
                "scan_key": scan_key,
                "modality": modality,
                "kind": decision.kind,
                "plane": decision.plane,
                "window": scan.window,
                "ct_kernel": decision.ct_kernel,
                "b_value": volume.b_value,
                "reason": decision.reason,
                "shape": list(scan.array.shape),
                "spacing": list(scan.spacing),
                "affine": [float(v) for v in scan.affine.ravel()],
                "source_shape": list(volume.array.shape),
                "source_spacing": list(volume.spacing),
                "n_slices": len(ordered.slices),
                "source_series_count": 1,
                "path": f"volumes/{st.task.study_key}/{scan_key}.npy",
                "voxel_mean": float(scan.array.mean()),
                "voxel_std": float(scan.array.std()),
                "voxel_min": int(scan.array.min()),
                "voxel_max": int(scan.array.max()),
                "nonzero_fraction": float(np.count_nonzero(scan.array) / scan.array.size),
                "header": header,
            }
        )
    for path in stack.paths:
        if path not in st.file_entries:
            st.used[path] = series_key
    return len(prepared)


def _load_pixels(st: _Study, stack: Stack, by_path: dict[str, Instance], series_key: str) -> set[str]:
    failed = set()
    for path in stack.paths:
        if path in st.pixels:
            continue
        try:
            st.pixels[path] = read_pixels(st.task.source, by_path[path])
        except RejectedError as exc:
            st.reject_file(path, exc.reason, exc.message, series_key)
            failed.add(path)
        except Exception as exc:  # the per-file guard (MemoryError included): this file, not the series
            st.reject_file(path, Reason.INTERNAL_ERROR, f"pixels: {type(exc).__name__}", series_key)
            failed.add(path)
    return failed


def _header_json(st: _Study, inst: Instance) -> str:
    patient = str(inst.header.get("PatientID", "") or "")
    clean = deidentify(inst.header, st.key, st.h("patient", patient) if patient else "")
    try:
        return clean.to_json(bulk_data_threshold=256, bulk_data_element_handler=lambda _elem: "")
    except Exception:  # an exotic VR pydicom cannot express in JSON: the scan is still fine without its header
        return "{}"


def _publish_volumes(st: _Study) -> None:
    final = Path(st.task.out_dir) / "volumes" / st.task.study_key
    shutil.rmtree(final, ignore_errors=True)  # a re-ingested study replaces its old volumes entirely
    if st.tmp_dir.exists():
        os.replace(st.tmp_dir, final)


def _process_reports(st: _Study, identifiers: Identifiers, patient_ids: set[str]) -> None:
    for row in st.task.reports:
        report_key = row.key(st.key, st.config.deid.hash_length)
        if not row.text.strip():
            entry = QuarantineEntry(Level.REPORT, report_key, Reason.EMPTY_REPORT, "empty text", st.task.study_key)
            st.result.quarantine.append(entry)
            continue
        if row.patient_id and patient_ids and row.patient_id not in patient_ids:
            message = "RIS patient ID differs from the study's PatientID: report withheld"
            st.result.quarantine.append(
                QuarantineEntry(Level.REPORT, report_key, Reason.REPORT_PATIENT_MISMATCH, message, st.task.study_key)
            )
            continue
        ids = Identifiers(set(identifiers.names), set(identifiers.ids), set(identifiers.places), set(identifiers.dates))
        if row.patient_id:
            ids.ids.add(row.patient_id)
        ids.ids.add(row.accession)
        text, n = scrub_report(row.text, ids)
        st.result.reports.append(
            {"study_key": st.task.study_key, "report_key": report_key, "text": text, "n_redactions": n}
        )


def _finish(st: _Study, instances: list[Instance], n_scans: int) -> None:
    res, task = st.result, st.task
    for f in task.files:
        if f.path in st.file_entries:
            res.dispositions[f.path] = ("quarantined", st.file_entries[f.path].entry_id)
        elif f.path in st.used:
            res.dispositions[f.path] = ("used", st.used[f.path])
        elif f.path in st.covered:
            res.dispositions[f.path] = ("quarantined", st.covered[f.path])
        else:  # cannot happen by construction; accounted for anyway rather than lost
            st.reject_file(f.path, Reason.UNREADABLE, "file was not placed by any step")
            res.dispositions[f.path] = ("quarantined", st.file_entries[f.path].entry_id)
    first = instances[0].header if instances else None
    patient = str(first.get("PatientID", "") or "") if first is not None else ""
    accession = str(first.get("AccessionNumber", "") or "") if first is not None else ""
    patient_key = st.h("patient", patient) if patient else st.h("patient-of-study", task.study_key)
    if n_scans == 0:
        entry = QuarantineEntry(Level.STUDY, task.study_key, Reason.NO_USABLE_SCANS, "no series gave a scan")
        res.quarantine.append(entry)
    res.study = {
        "study_key": task.study_key,
        "patient_key": patient_key,
        "accession_key": st.h("accession", accession) if accession else "",
        "modalities": ",".join(sorted({i.modality for i in instances if i.modality})),
        "n_files": len(task.files),
        "n_series": len({i.series_uid for i in instances}),
        "n_scans": n_scans,
        "n_quarantined_files": sum(1 for d, _ in res.dispositions.values() if d == "quarantined"),
        "has_report": bool(res.reports),
        "status": "ok" if n_scans else "no_usable_scans",
        "fingerprint": task.fingerprint,
    }
