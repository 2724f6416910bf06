"""Cost curves: time and peak memory of every data stage at several corpus sizes, with the log-log slope.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000 4000] [--work /tmp/bench_scale] [--keep]

For each size N, a cheap synthetic corpus is written with pydicom in 2 processes (N brain MR studies of one T2
series of 6 slices of 32x32, one report each: ingest's per-file cost bounds the sizes, docs/scale.md), then each
stage runs in its own child process, so its peak RSS (`wait4`) is its own:
ingest (first run, no-op rerun, rerun after +2% new studies), validate, label (rules backend), dataset index build
(`StudyDataset`), one loader epoch (0 workers), evaluation embedding (`hlip-tiny`, random weights), and, right
after the first ingest, DVC in a scratch repository in the size's folder (`dvc init --no-scm`, the ingest stage's
output committed once, then `dvc status` and a no-op `dvc repro`) for three ways of tracking it (`DVC_LAYOUTS`):
everything cached (the pipeline today), `cache: false`, and only the manifests with the raw data named by URI.
Each row is printed as it is measured. Times exclude imports
(each child times its own work); memory includes them.

The slope is log(t_last / t_first) / log(N_last / N_first): 1 is linear. Stages under 0.2 s at the smallest size
are dominated by constant costs, so their slope says little. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import shutil
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
INGEST = {
    "workers": 1,
    "series": {"min_slices": 6},
    "preprocess": {"size": [16, 32, 32], "spacing": None, "size_mode": "resize"},
}
STAGES = ("ingest", "ingest_noop", "ingest_plus2", "validate", "label", "dataset_index", "loader_epoch", "embed")
SERIES = ((4000.0, 100.0),)  # (TR, TE) per series: one T2; ingest's per-file cost sets how far the sizes can go
SLICES = 6
FINDINGS = ("an acute infarct in the left MCA territory", "an enhancing mass", "a few white matter hyperintensities")


# ---- the synthetic corpus -------------------------------------------------------------------------------------
def _template() -> Any:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = UID("1.2.840.10008.5.1.4.1.1.4")
    ds.Modality, ds.StudyDate, ds.PatientName = "MR", "20240102", "Synthetic^Patient"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.9"
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing, ds.SliceThickness = [7.0, 7.0], 8.0
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def write_studies(root: Path, start: int, stop: int, processes: int = 2) -> None:
    """Write studies `start..stop-1` under `root/dicom` (`SERIES` of `SLICES` slices each) and their reports.

    The studies are split into `processes` contiguous ranges written in parallel; each study's noise is seeded by
    its index, so the corpus is the same whatever the split.
    """
    bounds = np.linspace(start, stop, max(1, processes) + 1).astype(int)
    ranges = [(root, int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]
    if len(ranges) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(len(ranges)) as pool:
            list(pool.map(_write_range, *zip(*ranges, strict=True)))
    else:
        for r in ranges:
            _write_range(*r)
    _write_reports(root, stop)


def _write_range(root: Path, start: int, stop: int) -> None:
    ds = _template()
    blob = (np.hypot(*np.mgrid[-16:16, -16:16]) < 12).astype(np.int16) * 300  # [32, 32]
    for i in range(start, stop):
        rng = np.random.default_rng(i)
        ds.StudyInstanceUID = f"1.2.826.0.1.3680043.8.498.1.{i}"
        ds.PatientID, ds.AccessionNumber = f"P{i:07d}", f"A{i:07d}"
        folder = root / "dicom" / f"{i:07d}"
        folder.mkdir(parents=True, exist_ok=True)
        for s, (tr, te) in enumerate(SERIES):
            ds.SeriesInstanceUID = f"1.2.826.0.1.3680043.8.498.2.{i}.{s}"
            ds.SeriesNumber, ds.RepetitionTime, ds.EchoTime = s + 1, tr, te
            for k in range(SLICES):
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"1.2.826.0.1.3680043.8.498.3.{i}.{s}.{k}"
                ds.InstanceNumber, ds.ImagePositionPatient = k + 1, [-112.0, -112.0, 8.0 * k]
                ds.PixelData = (blob + rng.integers(0, 20, blob.shape, dtype=np.int16) + 10 * k).tobytes()
                buf = BytesIO()
                ds.save_as(buf, enforce_file_format=True)
                (folder / f"{s}_{k}.dcm").write_bytes(buf.getvalue())


def _write_reports(root: Path, n: int) -> None:
    with (root / "reports.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["accession_number", "patient_id", "report_date", "report_text"])
        for i in range(n):
            finding = FINDINGS[i % len(FINDINGS)]
            text = f"FINDINGS: There is {finding}. No hemorrhage. IMPRESSION: {finding.capitalize()}, no mass effect."
            w.writerow([f"A{i:07d}", f"P{i:07d}", "2024-01-03", text])


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> dict[str, float]:
    """Wall and CPU seconds since `start` (CPU time barely moves with others' load on shared cores)."""
    return {"seconds": time.perf_counter() - start[0], "cpu": time.process_time() - start[1]}


# ---- the stages, each run in a child process ---------------------------------------------------------------------
def _stage(name: str, work: Path) -> dict[str, Any]:
    """Run one stage on `work` and return what it measured (seconds of its own work, counts)."""
    out = work / "outputs" / "ingest"
    if name.startswith("ingest"):
        from hlip.data.config import IngestConfig
        from hlip.data.deid import HashKey
        from hlip.data.ingest import ingest
        from hlip.data.preprocess import warm_up

        warm_up()
        start = _clock()
        s = ingest(work / "data" / "dicom", out, work / "data" / "reports.csv", IngestConfig.from_dict(INGEST),
                   HashKey("bench-scale"))  # fmt: skip
        return {**_since(start), "studies": s["studies"], "processed": s["studies_processed"]}
    if name == "validate":
        from hlip.data.manifest import SCHEMAS
        from hlip.validation import ValidateConfig, validate_manifests

        start = _clock()
        columns = {n: list(schema.names) for n, schema in SCHEMAS.items()}
        report = validate_manifests({"train": out}, ValidateConfig(), work / "baseline.json", columns)
        return {**_since(start), "passed": report.passed}
    if name == "label":
        from hlip.labels.config import LabelConfig
        from hlip.labels.finding_list import load_findings
        from hlip.labels.labeler import label_part

        config, findings = LabelConfig(), load_findings("brain_mri")
        start = _clock()
        result = label_part(out / "reports.parquet", findings, config)
        return {**_since(start), "labels": len(result.table)}
    return _model_stage(name, out)


def _model_stage(name: str, out: Path) -> dict[str, Any]:
    import torch

    from hlip.data.dataset import ScanPolicy, StudyDataset, make_loader

    torch.set_num_threads(1)
    start = _clock()
    ds = StudyDataset(out, scans_policy=ScanPolicy("max_n", 8), train=name != "embed", seed=0)
    if name == "dataset_index":
        return {**_since(start), "studies": len(ds)}
    loader = make_loader(ds, batch_size=32, workers=0, seed=0, drop_last=False)
    loader.sampler.set_epoch(0)  # type: ignore[attr-defined]
    if name == "loader_epoch":
        start, n = _clock(), 0
        for batch in loader:
            n += len(batch["study_key"])
        return {**_since(start), "studies": n}
    from hlip.models import create_model

    model = create_model("hlip-tiny", pretrained_text=False).eval()
    start, rows = _clock(), 0
    with torch.no_grad():
        for batch in loader:
            rows += model.encode_image(batch["image"], batch["scan_mask"], normalize=True).shape[0]
    return {**_since(start), "studies": rows}


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str, float, float, float]:
    """Run a command to completion: (exit code, stdout, stderr, wall s, its peak RSS in MiB and CPU s from `wait4`)."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            args, stdout=out, stderr=err, cwd=cwd, env={**os.environ, "DVC_NO_ANALYTICS": "1", **(env or {})}
        )
        _, status, usage = os.wait4(proc.pid, 0)  # reaped here, so the child's own rusage, not Popen's
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0), err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime  # CPU seconds: far less sensitive than wall time to others' load
        return proc.returncode, out.read().decode(), err.read().decode(), wall, usage.ru_maxrss / 1024, cpu


def _child(args: list[str], code: Path) -> tuple[dict[str, Any], float]:
    """Run a stage child on the code snapshot `code`: (its JSON result, peak RSS in MiB)."""
    rc, stdout, stderr, _, rss, _ = _run(args, code, {"PYTHONPATH": str(code)})
    if rc:
        raise RuntimeError(f"{' '.join(args[2:])} failed ({rc}):\n{stderr[-3000:]}")
    return json.loads([ln for ln in stdout.splitlines() if ln.startswith("{")][-1]), rss


# ---- DVC in a scratch repository ---------------------------------------------------------------------------------
_MANIFESTS = "".join(f"\n      - outputs/ingest/{n}" for n in
                     ("studies.parquet", "scans.parquet", "reports.parquet", "quarantine.parquet", "files.parquet",
                      "summary.json"))  # fmt: skip
#: How the ingest stage can be tracked: everything cached (the pipeline today), the same with `cache: false`, and
#: only the manifests, the raw data named by URI in params.yaml (a new delivery is a new prefix: a params change).
DVC_LAYOUTS = {
    "cached": "deps: [data]\n    outs: [outputs/ingest]",
    "cache: false": "deps: [data]\n    outs:\n      - outputs/ingest:\n          cache: false",
    "manifests only": "params: [ingest]\n    outs:" + _MANIFESTS,
}
#: What each layout tells DVC not to walk. DVC lists the whole workspace on every status (to find stage files), so
#: trees a layout does not track must be ignored (at scale they live on S3 and are not in the workspace at all):
#: at 16K studies that walk alone took 6-7 s of CPU per `dvc status`. `code/` is this benchmark's own snapshot.
DVC_IGNORES = {
    "cached": ["outputs/ingest/.state", "code/"],
    "cache: false": ["outputs/ingest/.state", "code/"],
    "manifests only": ["outputs/ingest/.state", "code/", "data/", "outputs/ingest/volumes/"],
}


def _dvc_rows(work: Path) -> list[tuple[str, float, float]]:
    """Time `dvc commit` (first hashing), `dvc status` and a no-op `dvc repro` for each of `DVC_LAYOUTS`."""
    dvc = str(Path(sys.executable).with_name("dvc"))
    (work / "params.yaml").write_text('ingest:\n  parts: {train: {dicom: "s3://export/2026-12-01/train/dicom"}}\n')
    rows = []
    for tag, layout in DVC_LAYOUTS.items():
        shutil.rmtree(work / ".dvc", ignore_errors=True)
        for f in ("dvc.yaml", "dvc.lock", ".dvcignore"):
            (work / f).unlink(missing_ok=True)
        subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=work, check=True)
        (work / ".dvcignore").write_text("".join(f"{line}\n" for line in DVC_IGNORES[tag]))
        (work / "dvc.yaml").write_text(f"stages:\n  ingest:\n    cmd: python -m flows.ingest\n    {layout}\n")
        for step, cmd in (("commit", ["commit", "-f", "-q"]), ("status", ["status"]), ("repro", ["repro"])):
            rc, out, err, seconds, rss, cpu = _run([dvc, *cmd], work)
            if rc:
                raise RuntimeError(f"dvc {step} failed ({tag}): {(out + err)[-800:]}")
            if step != "commit" and "up to date" not in out and "didn't change" not in out:
                raise RuntimeError(f"dvc {step} was not a no-op ({tag}): {(out + err)[-800:]}")
            rows.append((f"dvc {step} ({tag})", seconds, rss))
            print(f"  dvc {step} ({tag}): {seconds:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    return rows


def _snapshot(code: Path) -> Path:
    """The committed library (`git archive HEAD hlip`) and this script, copied to `code`.

    Ingest's config fingerprint covers its code, and other people edit the working tree while this runs: a file
    saved between the first run and the rerun would make the "no-op" rerun redo everything.
    """
    code.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "HEAD", "hlip"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(code)], input=archive, check=True)
    shutil.copy(__file__, code / "bench_scale.py")
    return code


# ---- the table -----------------------------------------------------------------------------------------------------
def run_size(n: int, work: Path) -> dict[str, tuple[float, float]]:
    """All stages at `n` studies: stage -> (seconds, peak RSS MiB)."""
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    write_studies(work / "data", 0, n)
    rows: dict[str, tuple[float, float]] = {"(write corpus, parent)": (time.perf_counter() - start, float("nan"))}
    code = _snapshot(work / "code")
    for stage in STAGES:
        if stage == "ingest_plus2":
            write_studies(work / "data", n, n + max(1, n // 50))
        result, rss = _child(
            [sys.executable, str(code / "bench_scale.py"), "--stage", stage, "--work", str(work)], code
        )
        rows[stage] = (result["seconds"], rss)
        print(f"  {n:>6d} {stage:<24s} {result['seconds']:8.2f} s {rss:8.0f} MiB {result}", flush=True)
        if stage == "ingest":  # DVC right after the first ingest: the bound that matters is timed even if a later
            for name, seconds, rss in _dvc_rows(work):  # stage of a large size runs out of time
                rows[name] = (seconds, rss)
                print(f"  {n:>6d} {name:<24s} {seconds:8.2f} s {rss:8.0f} MiB", flush=True)
    return rows


def print_table(sizes: list[int], results: dict[int, dict[str, tuple[float, float]]]) -> None:
    """Markdown table: one row per stage, seconds and peak MiB per size, and the slope of the time."""
    head = " | ".join(f"{n:,} s | {n:,} MiB" for n in sizes)
    print(f"\n| stage | {head} | slope |\n|---|" + "---:|" * (2 * len(sizes) + 1))
    for stage in results[sizes[0]]:
        cells = " | ".join(f"{results[n][stage][0]:.2f} | {results[n][stage][1]:.0f}" for n in sizes)
        t0, t1 = results[sizes[0]][stage][0], results[sizes[-1]][stage][0]
        slope = math.log(t1 / t0) / math.log(sizes[-1] / sizes[0]) if t0 > 0 and t1 > 0 else float("nan")
        print(f"| {stage} | {cells} | {slope:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_scale"))
    parser.add_argument("--keep", action="store_true", help="keep each size's folder (corpus, outputs, DVC repo)")
    parser.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)  # a child's job
    parser.add_argument("--dvc-only", type=Path, default=None, help="time only DVC on a kept size folder")
    parser.add_argument("--stages-on", type=Path, default=None, help="time the stages after ingest on a kept folder")
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(_stage(args.stage, args.work)))
        return
    if args.stages_on:
        code = _snapshot(args.work / "code")
        for stage in STAGES[3:]:  # the stages after ingest, on an existing size folder
            result, rss = _child([sys.executable, str(code / "bench_scale.py"), "--stage", stage, "--work",
                                  str(args.stages_on)], code)  # fmt: skip
            print(f"| {stage} | {result['seconds']:.2f} | {result['cpu']:.2f} | {rss:.0f} |", flush=True)
        return
    if args.dvc_only:
        for name, seconds, rss in _dvc_rows(args.dvc_only):
            print(f"| {name} | {seconds:.2f} | {rss:.0f} |")
        return
    results = {}
    for n in args.sizes:
        results[n] = run_size(n, args.work / str(n))
        if not args.keep:
            shutil.rmtree(args.work / str(n), ignore_errors=True)
    print_table(args.sizes, results)


if __name__ == "__main__":
    main()
