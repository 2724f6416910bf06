"""Ingest writes the same bytes whatever the machine's parallelism and the run's history: the same part ingested
under different torch/BLAS thread counts and worker counts, each in a fresh process, and again incrementally over
its own outputs, gives byte-identical outputs (every file, tables and volumes; the volatile `.state/` that
`.dvcignore` keeps out of the hash excepted). Slow: three ingests of a six-study part."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
# the tiny corpus doubles slice spacing, so its real series are shorter than the default 10-slice minimum
BLOCK = {"series": {"min_slices": 6}}
DRIVER = """
import json, sys
from hlip.data.config import IngestConfig
from hlip.data.ingest import ingest
source, out, reports, block = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
ingest(source, out, reports=reports, config=IngestConfig.from_dict(block))
"""
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@pytest.fixture(scope="module")
def part(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny demo part (MR and CT studies, junk series, reports): generated, never downloaded."""
    from demo_corpus import DemoCorpusConfig, generate_corpus

    root = tmp_path_factory.mktemp("corpus")
    generate_corpus(root, DemoCorpusConfig.tiny(n_train_studies=6, n_benchmark_studies=0))
    return root / "train"


def run_ingest(part: Path, out: Path, *, threads: int, workers: int) -> dict[str, str]:
    """Ingest `part` into `out` in a fresh process with `threads` compute threads and `workers` processes;
    returns {relative path: sha256} of every output file."""
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, str(threads)), "HLIP_DEID_KEY": "reproducible"}
    block = json.dumps({**BLOCK, "workers": workers})
    args = [sys.executable, "-c", DRIVER, str(part / "dicom"), str(out), str(part / "reports.csv"), block]
    subprocess.run(args, cwd=REPO, env=env, check=True, capture_output=True)
    return {
        str(f.relative_to(out)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(out.rglob("*"))
        if f.is_file() and ".state" not in f.relative_to(out).parts
    }


def _differ(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))


def test_ingest_bytes_do_not_depend_on_threads_workers_or_history(part: Path, tmp_path: Path) -> None:
    one = run_ingest(part, tmp_path / "one", threads=1, workers=1)
    assert any(name.endswith(".npy") for name in one), "the part produced no volume: nothing was compared"
    # in-process with two compute threads, then a pool of two single-threaded workers
    two_threads = run_ingest(part, tmp_path / "two", threads=2, workers=1)
    assert not _differ(one, two_threads), f"1 vs 2 threads: {_differ(one, two_threads)[:10]}"
    two_workers = run_ingest(part, tmp_path / "three", threads=2, workers=2)
    assert not _differ(one, two_workers), f"1 vs 2 workers: {_differ(one, two_workers)[:10]}"
    # an incremental rerun over its own outputs (nothing new) writes what a fresh run writes
    again = run_ingest(part, tmp_path / "three", threads=1, workers=1)
    assert not _differ(one, again), f"fresh vs incremental: {_differ(one, again)[:10]}"
