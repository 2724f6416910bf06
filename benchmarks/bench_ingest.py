"""Ingestion throughput: studies per second and per core, with 1 and 2 workers, beside dcm2niix on the same files.

Usage:
    .venv/bin/python benchmarks/bench_ingest.py CORPUS [--workers 1 2] [--keep OUT]
    .venv/bin/python benchmarks/bench_ingest.py --incremental 1000 4000
    .venv/bin/python benchmarks/bench_ingest.py CORPUS --header-pass

`--incremental N...` times only the rerun's incremental check (which studies are unchanged) on synthetic previous
tables of N studies with 4 scans each (empty volume files on disk): the per-study linear search it replaced beside
the index built once per run, in one run, with the same decisions asserted equal.

`--header-pass` times only the header pass (every file of CORPUS placed in its study, 1 process, warm page cache):
the byte-level reader with pydicom for the files it steps aside from (what ingest runs), beside pydicom for every
file, alternated three times, with the same rows (identities and rejections) asserted equal.

CORPUS is a folder of raw DICOM files, or a demo corpus root (its `train/dicom` and `train/reports.csv` are used).
dcm2niix converts every series it finds to NIfTI (no compression) in the same run; it does no de-identification,
classification, checks or preprocessing, so it is a floor for "read every pixel once and write it out".
dcm2niix cannot read Deflated Explicit VR Little Endian (most of the demo corpus), so both tools are also run on
a decompressed copy (Deflate and RLE rewritten as Explicit VR Little Endian, made before any timing): that pair
of rows compares the same input, with a third beside them: pydicom parsing each file once and decoding its pixels,
nothing else (the floor of any reader built on pydicom). Each ingest run starts from an empty output folder. Prints a
table; asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from hlip.data.config import IngestConfig
from hlip.data.deid import HashKey
from hlip.data.ingest import _index_previous, _unchanged, ingest
from hlip.data.source import open_source
from hlip.data.study import StudyTask


def _corpus(path: Path) -> tuple[Path, Path | None]:
    if (path / "train" / "dicom").is_dir():
        reports = path / "train" / "reports.csv"
        return path / "train" / "dicom", reports if reports.exists() else None
    return path, None


def _run_ingest(dicom: Path, reports: Path | None, workers: int, out: Path) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    config = IngestConfig.from_dict({"workers": workers})
    start = time.perf_counter()
    summary = ingest(dicom, out, reports=reports, config=config, key=HashKey("benchmark"))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "studies": summary["studies"], "outputs": summary["scans"], "cores": workers}


def _run_dcm2niix(dicom: Path, out: Path) -> dict[str, float] | None:
    exe = shutil.which("dcm2niix")
    if exe is None:
        return None
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    start = time.perf_counter()
    # -z n: no gzip (ingest writes raw .npy too); -b n: no sidecar; %t_%s: one file per series, never by name
    subprocess.run([exe, "-z", "n", "-b", "n", "-f", "%t_%s_%j", "-o", str(out), str(dicom)],
                   check=False, capture_output=True)  # fmt: skip
    seconds = time.perf_counter() - start
    nifti = len(list(out.glob("*.nii")))
    return {"seconds": seconds, "studies": float("nan"), "outputs": nifti, "cores": 1}


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, nargs="?")
    parser.add_argument("--incremental", type=int, nargs="+", default=None, metavar="STUDIES")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--header-pass", action="store_true", help="time only the header pass, both readers")
    parser.add_argument("--keep", type=Path, default=None, help="keep outputs here instead of a temporary folder")
    args = parser.parse_args()
    if args.incremental:
        incremental_table(args.incremental)
        return
    if args.corpus is None:
        parser.error("CORPUS is required unless --incremental is given")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    dicom, reports = _corpus(args.corpus)
    if args.header_pass:
        header_pass_table(dicom)
        return
    from hlip.data.preprocess import warm_up

    warm_up()  # lazy imports are start-up, not throughput: keep them out of every timed run
    files = sorted(p for p in dicom.rglob("*") if p.is_file())  # listed once: large corpora take seconds to walk
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        for workers in args.workers:
            rows.append((f"hlip ingest ({workers} worker{'s' if workers > 1 else ''})",
                         _run_ingest(dicom, reports, workers, work / f"ingest_{workers}")))  # fmt: skip
        rerun = _run_ingest_again(dicom, reports, args.workers[-1], work / f"ingest_{args.workers[-1]}")
        rows.append(("hlip ingest rerun (no changes)", rerun))
        studies = rows[0][1]["studies"]
        niix = _run_dcm2niix(dicom, work / "dcm2niix")
        if niix is not None:
            niix["studies"] = studies  # the same files, so the same studies
            rows.append(("dcm2niix (1 process), original", niix))
            plain = work / "decompressed"
            plain_files = _decompressed_copy(files, dicom, plain)
            rows.append(("hlip ingest (1 worker), decompressed", _run_ingest(plain, reports, 1, work / "ingest_plain")))
            floor = _run_pydicom_floor(plain_files)
            floor["studies"] = studies
            rows.append(("pydicom once (1 process), decompr.", floor))
            niix = _run_dcm2niix(plain, work / "dcm2niix_plain")
            if niix is not None:
                niix["studies"] = studies
                rows.append(("dcm2niix (1 process), decompressed", niix))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\ncorpus: {dicom} ({len(files)} files), machine: {os.cpu_count()} cores\n")
    header = f"{'tool':34s} {'seconds':>8s} {'studies':>8s} {'outputs':>8s} {'studies/s':>10s} {'studies/s/core':>15s}"
    print(header)
    print("-" * len(header))
    for name, r in rows:
        rate = r["studies"] / r["seconds"] if r["seconds"] else float("nan")
        per_core = rate / r["cores"]
        print(f"{name:34s} {r['seconds']:8.2f} {r['studies']:8.0f} {r['outputs']:8.0f} {rate:10.2f} {per_core:15.2f}")
    print("\noutputs: model-ready scans (ingest; CT windows count separately), NIfTI files (dcm2niix) or decoded files "
          "(pydicom once: the floor of any reader built on pydicom).")  # fmt: skip


def _run_pydicom_floor(files: list[Path]) -> dict[str, float]:
    """What any pydicom-based reader pays at least: each file parsed once and its pixels decoded, nothing else (no
    checks, grouping, de-identification, preprocessing or writes)."""
    import pydicom

    start = time.perf_counter()
    decoded = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in files:
            try:
                ds = pydicom.dcmread(path)
                if "PixelData" in ds:
                    _ = ds.pixel_array
                    decoded += 1
            except Exception:  # the benchmark's broken files: skipped, as dcm2niix skips them
                continue
    return {"seconds": time.perf_counter() - start, "studies": float("nan"), "outputs": decoded, "cores": 1}


def _decompressed_copy(files: list[Path], src: Path, dst: Path) -> list[Path]:
    """Copy `files` (under `src`) to `dst`, rewriting Deflate and RLE files as Explicit VR Little Endian (others
    byte for byte); returns the copies."""
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

    copies = []
    for path in files:
        target = dst / path.relative_to(src)
        copies.append(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():  # pydicom's warnings name the file: paths may carry patient names
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path)
            syntax = ds.file_meta.TransferSyntaxUID
            if syntax.is_compressed and "PixelData" in ds:
                ds.decompress()
            if syntax.is_compressed or syntax == DeflatedExplicitVRLittleEndian:
                ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
                ds.save_as(target, enforce_file_format=True)
                continue
        except Exception:  # bad files stay bad, byte for byte
            pass
        shutil.copyfile(path, target)
    return copies


def _run_ingest_again(dicom: Path, reports: Path | None, workers: int, out: Path) -> dict[str, float]:
    config = IngestConfig.from_dict({"workers": workers})
    start = time.perf_counter()
    summary = ingest(dicom, out, reports=reports, config=config, key=HashKey("benchmark"))
    return {"seconds": time.perf_counter() - start, "studies": summary["studies"], "outputs": summary["scans"],
            "cores": workers}  # fmt: skip


def header_pass_table(dicom: Path, rounds: int = 3) -> None:
    """Print the header pass's time per file with the byte-level reader (pydicom where it steps aside) and with
    pydicom alone, alternated, on the same files; the rows must be equal."""
    from unittest import mock

    from hlip.data import dicom as dicom_module
    from hlip.data.identity_reader import read_fields
    from hlip.data.ingest import index_files

    src = open_source(dicom)
    listing = list(src.list_files())
    key = HashKey("benchmark")
    fast = sum(read_fields(dicom / f.path, f.size) is not None for f in listing if f.size)
    times: dict[str, list[float]] = {"byte-level reader (+ pydicom)": [], "pydicom for every file": []}
    rows: dict[str, list[dict[str, Any]]] = {}
    for _ in range(rounds):
        for name, reader in zip(times, (read_fields, lambda *_: None), strict=True):
            with mock.patch.object(dicom_module, "read_fields", reader), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                start = time.perf_counter()
                rows[name] = index_files(src, listing, key, 20)
                times[name].append(time.perf_counter() - start)
    first, second = rows.values()
    assert first == second, "the two readers placed or rejected a file differently"
    print(f"\ncorpus: {dicom} ({len(listing)} files; {fast} read by the byte-level reader, the rest by pydicom)\n")
    print(f"{'header pass (1 process)':32s} {'seconds per round':>30s} {'ms per file':>12s}")
    for name, seconds in times.items():
        each = ", ".join(f"{t:.2f}" for t in seconds)
        print(f"{name:32s} {each:>30s} {1000 * min(seconds) / len(listing):12.3f}")


def _linear_unchanged(previous: dict[str, list[dict[str, Any]]], task: StudyTask, out: Path) -> bool:
    """The incremental check before the index: both previous tables scanned once per study."""
    old = next((s for s in previous["studies"] if s["study_key"] == task.study_key), None)
    if old is None or old["fingerprint"] != task.fingerprint:
        return False
    paths = [s["path"] for s in previous["scans"] if s["study_key"] == task.study_key]
    return all((out / p).exists() for p in paths)


def incremental_table(sizes: list[int], scans_per_study: int = 4) -> None:
    """Print the time of the rerun's unchanged-study check, linear search vs index, at each size."""
    print(f"{'studies':>8s} {'scans':>7s} {'linear search s':>16s} {'index s':>8s} {'speed-up':>9s}")
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench_incremental_") as tmp:
            out = Path(tmp)
            keys = [f"{i:016x}" for i in range(n)]
            studies = [{"study_key": k, "fingerprint": f"fp{k}"} for k in keys]
            scans = [{"study_key": k, "path": f"volumes/{k}/{j}.npy"} for k in keys for j in range(scans_per_study)]
            for k in keys:
                (out / "volumes" / k).mkdir(parents=True)
                for j in range(scans_per_study):
                    (out / "volumes" / k / f"{j}.npy").touch()
            previous = {"studies": studies, "scans": scans}
            src = open_source(out)
            # every 50th study changed: the +2% case of a nightly rerun
            tasks = [
                StudyTask(src, k, (), (), tmp, f"fp{k}" + ("x" if i % 50 == 0 else "")) for i, k in enumerate(keys)
            ]
            start = time.perf_counter()
            before = {t.study_key for t in tasks if _linear_unchanged(previous, t, out)}
            linear = time.perf_counter() - start
            start = time.perf_counter()
            index = _index_previous(previous)
            after = {t.study_key for t in tasks if _unchanged(index, t, out)}
            indexed = time.perf_counter() - start
            assert before == after, "the index changed a decision"
        print(f"{n:8d} {len(scans):7d} {linear:16.3f} {indexed:8.3f} {linear / indexed:8.0f}x")


if __name__ == "__main__":
    main()
