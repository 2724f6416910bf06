"""Never silent: real work (the corpus generator, ingest of its output) with stderr going to a file and a clock that
moves 31 s per reading writes progress lines with counts, and the corpus bytes do not depend on it."""

from __future__ import annotations

import re
from pathlib import Path

from demo_corpus import CorpusSummary, DemoCorpusConfig, generate_corpus
from hlip.data.config import IngestConfig
from hlip.data.deid import HashKey
from hlip.data.ingest import ingest
from hlip.progress import progress_settings
from testkit.files import sha_tree

Corpus = tuple[Path, CorpusSummary]


class SteppingClock:
    """Every reading is 31 s after the previous one: each update finds a line due."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 31.0
        return self.now


def _counts(log: str, stage: str) -> list[tuple[int, int]]:
    pattern = re.compile(rf"^progress {re.escape(stage)}: (\d+)/(\d+) ", re.MULTILINE)
    return [(int(a), int(b)) for a, b in pattern.findall(log)]


def test_corpus_generator_writes_progress_lines_and_the_same_bytes(
    tmp_path: Path, tiny_config: DemoCorpusConfig, tiny_corpus: Corpus
) -> None:
    log = tmp_path / "stderr.log"
    with log.open("w") as stream, progress_settings(clock=SteppingClock(), stream=stream, live=False, heartbeat=False):
        generate_corpus(tmp_path / "corpus", tiny_config, workers=1)
    text = log.read_text()
    total = tiny_config.n_train_studies + tiny_config.n_benchmark_studies
    counts = _counts(text, "demo corpus: writing studies")
    assert counts == [(i, total) for i in range(total + 1)]  # a line at the start and after each study
    assert f"progress demo corpus: writing studies: done {total}/{total} studies" in text
    assert sha_tree(tmp_path / "corpus") == sha_tree(tiny_corpus[0])  # progress never reaches the corpus


def test_ingest_writes_progress_lines_for_both_passes(tmp_path: Path, tiny_corpus: Corpus) -> None:
    root, _ = tiny_corpus
    log = tmp_path / "stderr.log"
    config = IngestConfig(workers=1)
    with log.open("w") as stream, progress_settings(clock=SteppingClock(), stream=stream, live=False, heartbeat=False):
        summary = ingest(root / "train" / "dicom", tmp_path / "out", config=config, key=HashKey("test-secret"))
    text = log.read_text()
    headers = _counts(text, "ingest: reading headers")
    studies = _counts(text, "ingest: studies")
    assert headers[0] == (0, summary["files_header_read"])
    assert headers[-1][0] > 0  # counts rise while the pass runs
    assert studies[0] == (0, summary["studies_processed"])
    assert [done for done, _ in studies] == list(range(summary["studies_processed"] + 1))
    assert f"done {summary['studies_processed']}/{summary['studies_processed']} studies" in text
    assert str(root) not in text  # counts only: no path reaches a progress line
