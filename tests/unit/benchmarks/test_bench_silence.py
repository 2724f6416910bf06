"""`benchmarks/bench_silence.py` finds the longest silence of each stage of a piped pipeline log."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark: Callable[[str], ModuleType]) -> ModuleType:
    return load_benchmark("bench_silence")


LOG = """\
setup: creating the virtual environment
2026-12-03 11:30:00,000 INFO demo_corpus.corpus: planning 1100 + 200 studies
2026-12-03 11:30:30,010 INFO hlip.progress: progress demo corpus: writing studies: 10/1300
Running stage 'ingest':
> python -m flows.ingest
2026-12-03 11:30:50,000 INFO hlip.progress: progress ingest: 0/1300
2026-12-03 11:31:35,000 INFO hlip.progress: progress ingest: 500/1300
progress ingest: a bare line on stderr, time unknown
2026-12-03 11:32:40,000 INFO hlip.progress: progress ingest: 1200/1300
2026-12-03 11:32:45,000 INFO hlip.progress: progress ingest: done
Running stage 'validate':
2026-12-03 11:33:25,000 INFO validate: first line
"""


def test_each_stage_reports_its_longest_gap_and_a_gap_over_the_limit_fails(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stages = {s.name: s for s in bench.silences(LOG.splitlines())}
    assert list(stages) == ["setup/corpus", "ingest", "validate"]
    assert stages["setup/corpus"].gap == pytest.approx(30.01)  # a heartbeat's jitter: within the limit
    assert stages["ingest"].gap == pytest.approx(45.0)  # stamped lines 45 s apart, nothing between: silence
    assert stages["ingest"].unmeasured == 2  # DVC's header before the first line; the 65 s with a bare line inside
    assert (stages["validate"].gap, stages["validate"].unmeasured) == (0.0, 1)  # DVC's header line: time unknown
    log = tmp_path / "run.log"
    log.write_text(LOG)
    assert bench.main([str(log)]) == 1
    out = capsys.readouterr().out
    assert "| ingest | 4 | 115 | 45.0 | NO | 2 |" in out
    assert "| setup/corpus | 2 | 30 | 30.0 | yes | 0 |" in out
    assert "record the run with --stamp" in out
    assert bench.main([str(log), "--limit", "45"]) == 0


def test_a_stamped_log_counts_every_line_with_its_arrival_time(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    log = tmp_path / "stamped.log"
    bench.stamp(io.StringIO("setup\nRunning stage 'ingest':\nprogress ingest: 1/2\n"), io.StringIO(), log)
    lines = log.read_text().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == ["setup", "Running stage 'ingest':", "progress ingest: 1/2"]
    stages = bench.silences(lines)
    assert [(s.name, s.lines) for s in stages] == [("setup/corpus", 1), ("ingest", 2)]
    assert stages[1].gap < 1.0
