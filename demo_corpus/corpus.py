"""Generate the demo corpus: plan, write the studies in worker processes, then the tables and the manifest.

The output folder must be empty or an earlier output of the same config (recognised by its manifest); the
generator then only (re)writes the files it plans, which are byte-identical to the earlier ones, and never
deletes or touches anything else.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from demo_corpus.anatomy import load_anatomy
from demo_corpus.config import DemoCorpusConfig
from demo_corpus.plan import CorpusPlan, StudyPlan, plan_corpus
from demo_corpus.table import report_rows, write_tables
from demo_corpus.vocabulary import PARTS
from demo_corpus.writer import StudyFiles, write_study
from hlip.allocator import retain_freed_memory
from hlip.progress import ProgressReporter

logger = logging.getLogger(__name__)

MANIFEST = "demo_corpus.json"
_FORMAT = 1
# The manifest's generator id, written into data/demo_corpus.json: it predates the package's move out of `hlip/`
# and stays, because changing it changes the corpus bytes that data.dvc pins.
GENERATOR_ID = "hlip.data.demo"

#: Called after each written study with (studies done, studies in all).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class CorpusSummary:
    """Counts of a generated corpus (no timings: the manifest that holds it must be deterministic).

    Attributes:
        studies: Studies per part.
        series: Series in all (short defect series included).
        files: Files written (bad files included).
        bytes: Their total size.
        series_kinds: Good series per true kind.
        labels: Studies per class, per part.
        reports: Rows of each part's reports.csv.
        bad_files: Bad files per defect kind.
    """

    studies: dict[str, int]
    series: int
    files: int
    bytes: int
    series_kinds: dict[str, int]
    labels: dict[str, dict[str, int]]
    reports: dict[str, int]
    bad_files: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Plain data for JSON."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _manifest(cfg: DemoCorpusConfig, status: str, summary: CorpusSummary | None) -> str:
    body = {"generator": GENERATOR_ID, "format": _FORMAT, "status": status, "config": cfg.to_dict()}
    if summary is not None:
        body["summary"] = summary.to_dict()
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def check_output(out_dir: Path, cfg: DemoCorpusConfig) -> None:
    """Refuse a folder that is neither empty nor an earlier output of this config.

    Raises:
        FileExistsError: The folder holds other things, or a corpus of another config.
    """
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    manifest = out_dir / MANIFEST
    if not manifest.is_file():
        raise FileExistsError(f"{out_dir} is not empty and holds no {MANIFEST}: refusing to write into it")
    try:
        earlier = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise FileExistsError(f"{manifest} is unreadable: refusing to write into {out_dir}") from err
    if earlier.get("format") != _FORMAT or earlier.get("config") != cfg.to_dict():
        raise FileExistsError(f"{out_dir} holds a demo corpus of another config or format: use an empty folder")


def _write_one(args: tuple[Path, StudyPlan, int]) -> StudyFiles:
    return write_study(*args)


def _warm_up(resolution_mm: int) -> None:
    """Worker initializer: build the anatomy (seconds at 1 mm) while the parent still plans the corpus."""
    retain_freed_memory()  # a worker allocates and frees volumes of megabytes per study (hlip.allocator)
    load_anatomy(resolution_mm)


def _idle() -> None:
    """A task that only makes the pool start a worker (whose initializer then warms it up)."""


def _start_pool(workers: int, resolution_mm: int) -> ProcessPoolExecutor | None:
    """The writers' pool, started before planning so their anatomy is built meanwhile (None for one worker)."""
    if workers <= 1:
        return None
    # spawn, not fork: the caller may run threads (progress bars, logging handlers) that fork would copy mid-lock
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_warm_up, initargs=(resolution_mm,))
    for _ in range(workers):  # workers spawn on demand: one submit each starts them all now
        pool.submit(_idle)
    return pool


def _write_all(
    out_dir: Path, plan: CorpusPlan, pool: ProcessPoolExecutor | None, progress: Progress | None
) -> list[StudyFiles]:
    jobs = [(out_dir, s, plan.config.template_resolution_mm) for s in plan.studies]
    written = map(_write_one, jobs) if pool is None else pool.map(_write_one, jobs, chunksize=1)
    results: list[StudyFiles] = []
    # progress on stderr / the log only: the corpus bytes stay a function of the config alone
    with ProgressReporter("demo corpus: writing studies", len(jobs), unit="studies") as bar:
        for i, result in enumerate(written):
            results.append(result)
            bar.advance()
            if progress:
                progress(i + 1, len(jobs))
    return results


def _summary(plan: CorpusPlan, results: list[StudyFiles], report_counts: dict[str, int]) -> CorpusSummary:
    good = [se for s in plan.studies for se in s.series if not se.defect]
    bad: Counter[str] = Counter(d.kind for s in plan.studies for d in s.defects)
    bad["short_series"] += sum(len(se.paths) for s in plan.studies for se in s.series if se.defect)
    return CorpusSummary(
        studies={p: len(plan.part(p)) for p in PARTS},
        series=sum(len(s.series) for s in plan.studies),
        files=sum(len(r.files) for r in results),
        bytes=sum(n for r in results for _, n in r.files),
        series_kinds=dict(sorted(Counter(se.kind for se in good).items())),
        labels={p: dict(sorted(Counter(s.label for s in plan.part(p)).items())) for p in PARTS},
        reports=report_counts,
        bad_files=dict(sorted(bad.items())),
    )


def generate_corpus(
    out_dir: Path,
    config: DemoCorpusConfig = DemoCorpusConfig(),  # noqa: B008 - frozen, so a shared default is safe
    workers: int = 2,
    progress: Progress | None = None,
) -> CorpusSummary:
    """Write the demo corpus (see the `demo_corpus` package docstring) under ``out_dir``.

    Args:
        out_dir: Empty or absent folder, or an earlier output of the same config.
        config: What to generate; the default instance is the embedded corpus.
        workers: Worker processes writing studies (1 writes in this process).
        progress: Called after each study with (done, total).

    Returns:
        Counts of what was written.

    Raises:
        FileExistsError: ``out_dir`` holds something else.
    """
    check_output(out_dir, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).write_text(_manifest(config, "incomplete", None), encoding="utf-8")
    pool = _start_pool(workers, config.template_resolution_mm)
    try:
        logger.info("planning %d + %d studies", config.n_train_studies, config.n_benchmark_studies)
        plan = plan_corpus(config)
        results = _write_all(out_dir, plan, pool, progress)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    write_tables(out_dir, plan)
    summary = _summary(plan, results, {p: len(report_rows(plan, p)) for p in PARTS})
    (out_dir / MANIFEST).write_text(_manifest(config, "complete", summary), encoding="utf-8")
    logger.info("wrote %d files (%.1f MB) to %s", summary.files, summary.bytes / 1e6, out_dir)
    return summary
