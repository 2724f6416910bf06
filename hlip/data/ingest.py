"""Ingestion: raw DICOM studies + reports -> de-identified, classified, preprocessed volumes and manifest tables.

The run, in order:
1. list the source; files whose (path, size, version) match the previous run (`files.parquet` and the version
   stamps in `.state/`) keep their header-pass result, the others are read with `read_identity` (the header
   without pixels and without forcing its values: the study pass reads each file in full anyway) in the pool, in
   chunks;
2. group DICOM files by keyed StudyInstanceUID and match reports by keyed AccessionNumber;
3. fingerprint each study (its files, reports, config, key); studies whose fingerprint is unchanged, none of
   whose files was re-read, and whose volumes exist are skipped, the others run `process_study` in a pool;
4. merge with the kept rows of the previous run and write the tables atomically, plus `summary.json`.

`process_study` is a pure function of (task, config, key), so the same map can run on a Dask cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from hlip.config import to_dict
from hlip.data import manifest
from hlip.data.config import IngestConfig
from hlip.data.deid import HashKey
from hlip.data.dicom import read_identity
from hlip.data.quarantine import Level, QuarantineEntry, Reason, RejectedError
from hlip.data.report import ReportRow, index_reports, parse_reports
from hlip.data.source import Source, SourceFile, open_source, read_uri, safe_name
from hlip.data.study import StudyResult, StudyTask, process_study
from hlip.progress import ProgressReporter

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]
T = TypeVar("T")
R = TypeVar("R")


def index_files(source: Source, files: Sequence[SourceFile], key: HashKey, hash_length: int) -> list[dict[str, Any]]:
    """The header pass over some files: keyed study/series/instance/accession hashes, or why a file is unusable.

    Returns:
        One `files` table row per file (disposition still empty).
    """
    rows = []
    for f in files:
        row: dict[str, Any] = {"path": f.path, "size": f.size, "version": f.version}
        if f.problem:  # found by the listing but not ingestible (unreadable, link, FIFO, bad name): accounted for
            row.update(header_reason=f.problem, header_message=f.detail)
            rows.append(row)
            continue
        try:
            ident = read_identity(source, f.path, f.size)
        except RejectedError as exc:
            row.update(header_reason=exc.reason.value, header_message=exc.message)
        except Exception as exc:  # the per-file guard: anything unforeseen costs this file, never the run
            log.warning("header pass failed on a file: %s", type(exc).__name__)
            row.update(header_reason=Reason.INTERNAL_ERROR.value, header_message=f"header pass: {type(exc).__name__}")
        else:
            row.update(
                study_key=key.hash("study", ident.study_uid, hash_length),
                series_key=key.hash("series", ident.series_uid, hash_length),
                sop_key=key.hash("sop", ident.sop_uid, hash_length),
                accession_key=key.hash("accession", ident.accession, hash_length) if ident.accession else "",
                header_reason="",
                header_message="",
            )
        rows.append(row)
    return rows


def ingest(
    source: str | os.PathLike[str] | Source,
    out_dir: str | os.PathLike[str],
    reports: str | os.PathLike[str] | None = None,
    config: IngestConfig | None = None,
    key: HashKey | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Ingest a source folder or S3 prefix into `out_dir` (incrementally).

    Args:
        source: A local folder, an `s3://bucket/prefix`, or a `Source`.
        out_dir: Output folder (created).
        reports: The RIS reports CSV (local path or s3:// URI), optional.
        config: Settings; defaults to `IngestConfig()`.
        key: De-identification key; defaults to the secret in the environment (or the demo key, with a warning).
        progress: Called as `progress(stage, done, total)` for the stages "headers" and "studies".

    Returns:
        The summary (also written to `summary.json`).
    """
    start = time.perf_counter()
    config = config or IngestConfig()
    key = key or HashKey.from_env(config.deid.key_env)
    src = source if isinstance(source, Source) else open_source(source)
    out = Path(out_dir)
    (out / "volumes").mkdir(parents=True, exist_ok=True)
    previous = _previous_run(out, key, config)
    listing = list(src.list_entries())  # every entry, the ones that cannot be ingested too (with their problem)
    versions = manifest.read_versions(out)
    cached = {(r["path"], r["size"], versions[r["path"]]): r for r in previous["files"] if r["path"] in versions}
    label = _labeller(key, config)
    todo_files = [f for f in listing if f.problem or (label(f.path), f.size, f.version) not in cached]
    reread = {f.path for f in todo_files}
    pool = _LazyPool(config.workers, config.dask_scheduler)
    try:
        fresh = _header_pass(pool.get(len(todo_files) > 1), src, todo_files, key, config, progress)
        records = _file_records(listing, cached, fresh, label)
        report_rows = parse_reports(read_uri(reports)) if reports is not None else []
        tasks, orphans = _study_tasks(src, out, records, report_rows, key, config)
        index = _index_previous(previous)  # once: a per-study scan of the previous tables made reruns quadratic
        kept = {k for k, t in tasks.items() if _unchanged(index, t, out) and not reread & {f.path for f in t.files}}
        todo = [t for k, t in sorted(tasks.items()) if k not in kept]
        log.info("%d files, %d studies: %d to ingest, %d unchanged", len(listing), len(tasks), len(todo), len(kept))
        results = _run_studies(pool.get(len(todo) > 1), todo, config, key, progress)
    finally:
        pool.shutdown()
    summary = _write_outputs(out, previous, kept, results, records, orphans, label, key, config, set(tasks))
    manifest.write_versions(out, {label(f.path): f.version for f in listing})
    summary.update(files_listed=len(listing), source=str(src.uri) if not config.deid.hash_paths else "")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    # how much this run redid depends on the runs before it, and the wall time on the machine: returned, never
    # written, so a fresh ingest and an incremental one of the same inputs write the same bytes
    history = {"files_header_read": len(todo_files), "studies_processed": len(todo), "studies_unchanged": len(kept)}
    return {**summary, **history, "seconds": round(time.perf_counter() - start, 3)}


def _labeller(key: HashKey, config: IngestConfig) -> Callable[[str], str]:
    if not config.deid.hash_paths:
        return safe_name  # a name that is not valid UTF-8 is written escaped (valid names are unchanged)
    return lambda path: key.hash("path", path, config.deid.hash_length)


def locate(source: str | os.PathLike[str] | Source, label: str, config: IngestConfig, key: HashKey) -> list[str]:
    """The source paths whose label (as written in the tables: a keyed hash when `deid.hash_paths`) is `label`.

    Lets an operator find the raw file behind a quarantine entry without the tables ever holding raw paths,
    which in real exports often carry patient names.
    """
    src = source if isinstance(source, Source) else open_source(source)
    label_of = _labeller(key, config)
    return [f.path for f in src.list_entries() if label_of(f.path) == label]


def _previous_run(out: Path, key: HashKey, config: IngestConfig) -> dict[str, list[dict[str, Any]]]:
    """The previous run's tables, or empty tables when its key or config differ (then everything is redone)."""
    names = ("studies", "scans", "reports", "quarantine", "files")
    empty: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    summary_path = out / "summary.json"
    if not summary_path.exists():
        return empty
    try:
        old = json.loads(summary_path.read_text())
    except ValueError:
        return empty
    if old.get("key_id") != key.key_id or old.get("config_fingerprint") != config.fingerprint():
        log.warning("de-identification key or ingest config changed since the last run: re-ingesting everything")
        return empty
    return {n: manifest.read_table(out, n) for n in names}


class _LazyPool:
    """The executor for the header pass and the study map, started only when there is parallel work.

    A local process pool by default; with `dask_scheduler` set, a `dask.distributed` cluster's executor (the same
    `concurrent.futures` interface, so the same code fans out): ``local`` starts a LocalCluster of `workers`
    single-threaded processes, anything else is the address of a running scheduler (``tcp://host:8786``).
    """

    def __init__(self, workers: int, dask_scheduler: str | None = None) -> None:
        self.workers = workers
        self.dask_scheduler = dask_scheduler
        self.executor: Executor | None = None
        self._client: Any = None

    def get(self, parallel: bool) -> Executor | None:
        if not parallel or (self.workers <= 1 and not self.dask_scheduler):
            return self.executor
        if self.executor is None:
            self.executor = self._dask() if self.dask_scheduler else self._processes()
        return self.executor

    def _processes(self) -> Executor:
        from hlip.data.preprocess import warm_up

        warm_up()  # imports once here: forked workers inherit them instead of paying each
        return ProcessPoolExecutor(max_workers=self.workers, initializer=_init_worker)

    def _dask(self) -> Executor:
        from distributed import Client, LocalCluster

        if self.dask_scheduler == "local":
            cluster = LocalCluster(
                n_workers=self.workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
            )
            self._client = Client(cluster)
        else:
            self._client = Client(self.dask_scheduler)
        self._client.run(_init_worker)
        log.info("ingest fans out on dask scheduler %s", self._client.scheduler.address)
        return cast(Executor, self._client.get_executor())

    def shutdown(self) -> None:
        if self._client is not None:
            cluster = self._client.cluster
            self._client.close()
            if cluster is not None and self.dask_scheduler == "local":
                cluster.close()
        elif self.executor is not None:
            self.executor.shutdown()


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one process per core: torch threads would oversubscribe


def _map(pool: Executor | None, fn: Callable[..., R], items: Sequence[Any], *args: Any) -> Iterator[R]:
    if pool is None:
        for item in items:
            yield fn(item, *args)
        return
    futures = [pool.submit(fn, item, *args) for item in items]
    for fut in futures:
        yield fut.result()


def _chunks(items: Sequence[T], size: int) -> list[list[T]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def _header_pass(
    pool: Executor | None,
    src: Source,
    files: list[SourceFile],
    key: HashKey,
    config: IngestConfig,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    size = max(1, min(config.header_chunk, -(-len(files) // max(1, config.workers * 4))))
    rows: list[dict[str, Any]] = []
    done = 0
    with ProgressReporter("ingest: reading headers", len(files), unit="files") as bar:
        for chunk_rows in _map(pool, _index_chunk, _chunks(files, size), src, key, config.deid.hash_length):
            rows.extend(chunk_rows)
            done += len(chunk_rows)
            bar.update(done)
            if progress:
                progress("headers", done, len(files))
    return rows


def _index_chunk(files: list[SourceFile], src: Source, key: HashKey, hash_length: int) -> list[dict[str, Any]]:
    return index_files(src, files, key, hash_length)


def _file_records(
    listing: list[SourceFile],
    cached: dict[tuple[str, int, str], dict[str, Any]],
    fresh: list[dict[str, Any]],
    label: Callable[[str], str],
) -> dict[str, dict[str, Any]]:
    """Header-pass rows for every listed file (raw path -> row; the row's path is the written label)."""
    by_path = {r["path"]: r for r in fresh}
    records = {}
    for f in listing:
        row = by_path.get(f.path) or dict(cached[(label(f.path), f.size, f.version)])
        row = {k: row.get(k, "") for k in manifest.SCHEMAS["files"].names if k not in ("disposition", "ref")}
        row["path"], row["size"], row["version"] = label(f.path), f.size, f.version  # version: in memory only
        records[f.path] = row
    return records


def _study_tasks(
    src: Source,
    out: Path,
    records: dict[str, dict[str, Any]],
    report_rows: list[ReportRow],
    key: HashKey,
    config: IngestConfig,
) -> tuple[dict[str, StudyTask], list[QuarantineEntry]]:
    files_of: dict[str, list[SourceFile]] = defaultdict(list)
    accessions: dict[str, set[str]] = defaultdict(set)
    for path, r in records.items():
        if r["header_reason"]:
            continue
        files_of[r["study_key"]].append(SourceFile(path, r["size"], r["version"]))
        if r["accession_key"]:
            accessions[r["study_key"]].add(r["accession_key"])
    by_accession = index_reports(report_rows, key, config.deid.hash_length)
    matched: set[str] = set()
    tasks = {}
    for study_key, files in files_of.items():
        rows = tuple(row for acc in sorted(accessions[study_key]) for row in by_accession.get(acc, []))
        matched.update(acc for acc in accessions[study_key] if acc in by_accession)
        files.sort(key=lambda f: f.path)
        fingerprint = _fingerprint(files, rows, key, config)
        tasks[study_key] = StudyTask(src, study_key, tuple(files), rows, str(out), fingerprint)
    orphans = []
    for row in report_rows:
        report_key = row.key(key, config.deid.hash_length)
        if not row.accession:
            orphans.append(QuarantineEntry(Level.REPORT, report_key, Reason.MISSING_ACCESSION, "no accession number"))
        elif key.hash("accession", row.accession, config.deid.hash_length) not in matched:
            message = "no study in the source has this accession number"
            orphans.append(QuarantineEntry(Level.REPORT, report_key, Reason.REPORT_WITHOUT_STUDY, message))
    return tasks, orphans


def _fingerprint(files: Iterable[SourceFile], reports: Iterable[ReportRow], key: HashKey, config: IngestConfig) -> str:
    h = hashlib.sha256(f"{key.key_id}\x00{config.fingerprint()}".encode())
    for f in sorted(files, key=lambda f: f.path):  # no version stamp: content changes are caught as re-read files
        h.update(f"\x00{f.path}\x00{f.size}".encode())
    for r in reports:
        h.update(f"\x01{r.digest()}".encode())
    return h.hexdigest()[:24]


def _index_previous(previous: dict[str, list[dict[str, Any]]]) -> dict[str, tuple[str, list[str]]]:
    """The previous run by study: study key -> (fingerprint, its scans' volume paths), in one pass over each table."""
    paths: dict[str, list[str]] = defaultdict(list)
    for scan in previous["scans"]:
        paths[scan["study_key"]].append(scan["path"])
    index: dict[str, tuple[str, list[str]]] = {}
    for study in previous["studies"]:  # setdefault: the first row of a key wins, as a linear search would find it
        index.setdefault(study["study_key"], (study["fingerprint"], paths.get(study["study_key"], [])))
    return index


def _unchanged(index: dict[str, tuple[str, list[str]]], task: StudyTask, out: Path) -> bool:
    """Whether the previous run processed this study with the same fingerprint and all its volumes still exist."""
    old = index.get(task.study_key)
    if old is None or old[0] != task.fingerprint:
        return False
    return all((out / p).exists() for p in old[1])


def _run_studies(
    pool: Executor | None, todo: list[StudyTask], config: IngestConfig, key: HashKey, progress: Progress | None
) -> list[StudyResult]:
    results = []
    if progress:
        progress("studies", 0, len(todo))
    with ProgressReporter("ingest: studies", len(todo), unit="studies") as bar:
        for i, result in enumerate(_map(pool, process_study, todo, config, key)):
            results.append(result)
            bar.advance()
            if progress:
                progress("studies", i + 1, len(todo))
    return results


def _write_outputs(
    out: Path,
    previous: dict[str, list[dict[str, Any]]],
    kept: set[str],
    results: list[StudyResult],
    records: dict[str, dict[str, Any]],
    orphans: list[QuarantineEntry],
    label: Callable[[str], str],
    key: HashKey,
    config: IngestConfig,
    present: set[str],
) -> dict[str, Any]:
    """Merge kept and new rows, account for every file, write the tables; return the summary counts."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for name in ("studies", "scans", "reports"):
        tables[name] = [r for r in previous[name] if r["study_key"] in kept]
        tables[name] += [row for res in results for row in _rows(res, name)]
    quarantine = [q for q in previous["quarantine"] if q["study_key"] in kept]
    quarantine += [e.as_row() for res in results for e in res.quarantine]
    old_disposition = {r["path"]: (r["disposition"], r["ref"]) for r in previous["files"]}
    new_disposition = {label(p): d for res in results for p, d in res.dispositions.items()}
    files = []
    for path, row in records.items():
        row = dict(row)
        row.pop("version", None)  # volatile: kept in .state/, not in the deterministic table
        if row["header_reason"]:
            entry = QuarantineEntry(Level.FILE, row["path"], Reason(row["header_reason"]), row["header_message"])
            quarantine.append(entry.as_row())
            row["disposition"], row["ref"] = "quarantined", entry.entry_id
        elif row["study_key"] in kept:
            row["disposition"], row["ref"] = old_disposition[row["path"]]
        else:
            row["disposition"], row["ref"] = new_disposition[label(path)]
        files.append(row)
    quarantine += [e.as_row() for e in orphans]
    tables["quarantine"], tables["files"] = quarantine, files
    for name, rows in tables.items():
        manifest.write_table(out, name, rows)
    _remove_stale_volumes(out, present)
    return _summary(tables, key, config)


def _rows(result: StudyResult, name: str) -> list[dict[str, Any]]:
    return [result.study] if name == "studies" else (result.scans if name == "scans" else result.reports)


def _remove_stale_volumes(out: Path, present: set[str]) -> None:
    """Volumes of studies no longer in the source (or of an interrupted run) would be orphans: remove them."""
    import shutil

    for child in (out / "volumes").iterdir():
        if child.name not in present:
            shutil.rmtree(child, ignore_errors=True)


def _summary(tables: dict[str, list[dict[str, Any]]], key: HashKey, config: IngestConfig) -> dict[str, Any]:
    scans = tables["scans"]
    files = tables["files"]
    by_kind = Counter(f"{s['kind']}/{s['window']}" if s["window"] else s["kind"] for s in scans)
    by_reason = Counter(f"{q['level']}:{q['reason']}" for q in tables["quarantine"])
    return {
        "studies": len(tables["studies"]),
        "studies_with_scans": sum(1 for s in tables["studies"] if s["n_scans"]),
        "studies_with_report": sum(1 for s in tables["studies"] if s["has_report"]),
        "scans": len(scans),
        "scans_by_kind": dict(sorted(by_kind.items())),
        "files": len(files),
        "files_used": sum(1 for f in files if f["disposition"] == "used"),
        "files_quarantined": sum(1 for f in files if f["disposition"] == "quarantined"),
        "reports": len(tables["reports"]),
        "quarantined_by_reason": dict(sorted(by_reason.items())),
        "key_id": key.key_id,
        "key_source": key.source,
        "config_fingerprint": config.fingerprint(),
        "preprocess": to_dict(config.preprocess),  # what the volumes are: the study contract is checked against it
    }
