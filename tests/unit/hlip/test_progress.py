"""The progress reporter, driven by a fake clock: cadence, the plain-line format, rate and ETA."""

from __future__ import annotations

import io
import logging
import re
import time

import pytest

from hlip.progress import ProgressReporter, format_duration, progress_settings, report
from hlip.training.progress import StageProgress

LINE = re.compile(
    r"^progress (?P<stage>.+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+)( \((?P<pct>\d+)%\))?, "
    r"(?P<rate>[\d.]+) \w+/s, elapsed (?P<elapsed>[^,\s]+), ETA (?P<eta>[^,\s]+)"
)


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _reporter(clock: FakeClock, out: io.StringIO, total: int = 100, **kw: object) -> ProgressReporter:
    with progress_settings(clock=clock, stream=out, live=False, heartbeat=False):
        return ProgressReporter("demo work", total, unit="studies", **kw)  # type: ignore[arg-type]


def _lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_lines_come_at_most_every_interval(clock: FakeClock) -> None:
    out = io.StringIO()
    with _reporter(clock, out) as bar:
        assert len(_lines(out)) == 1  # the first line says the work started
        for _ in range(10):  # ten quick updates inside 10 s: no line
            clock.now += 1
            bar.advance()
        assert len(_lines(out)) == 1
        clock.now += 20  # 30 s since the first line: the next update emits
        bar.advance()
        assert len(_lines(out)) == 2
        clock.now += 29.9
        bar.advance()
        assert len(_lines(out)) == 2
        clock.now += 0.1
        bar.advance()
        assert len(_lines(out)) == 3
    assert _lines(out)[-1].startswith("progress demo work: done 13/100 studies in 0:01:00")


def test_poll_emits_while_no_update_arrives(clock: FakeClock) -> None:
    """The heartbeat's call: a slow unit of work still yields a line every interval, with the same count."""
    out = io.StringIO()
    with _reporter(clock, out) as bar:
        bar.advance(3)
        clock.now += 29
        assert not bar.poll()
        clock.now += 1
        assert bar.poll()
        clock.now += 45
        assert bar.poll()
        assert not bar.poll()  # just emitted
    counts = [LINE.match(line)["done"] for line in _lines(out)[:-1]]  # type: ignore[index]
    assert counts == ["0", "3", "3"]


def test_the_line_carries_count_percent_rate_and_eta(clock: FakeClock) -> None:
    out = io.StringIO()
    with _reporter(clock, out, total=200) as bar:
        clock.now += 40
        bar.update(50, loss=0.6931)
    m = LINE.match(_lines(out)[1])
    assert m is not None, _lines(out)
    assert (m["stage"], m["done"], m["total"], m["unit"], m["pct"]) == ("demo work", "50", "200", "studies", "25")
    assert float(m["rate"]) == pytest.approx(1.25)  # 50 studies in 40 s
    assert m["elapsed"] == "0:00:40"
    assert m["eta"] == "0:02:00"  # 150 left at 1.25/s
    assert _lines(out)[1].endswith(", loss 0.6931")


def test_rate_ignores_the_units_done_before_a_resume(clock: FakeClock) -> None:
    out = io.StringIO()
    with _reporter(clock, out, total=100, done=60) as bar:
        clock.now += 10
        bar.advance(20)
        assert bar.rate() == pytest.approx(2.0)
        assert bar.eta() == pytest.approx(10.0)


def test_eta_is_unknown_before_any_unit(clock: FakeClock) -> None:
    out = io.StringIO()
    with _reporter(clock, out) as bar:
        clock.now += 31
        bar.poll()
    assert LINE.match(_lines(out)[1])["eta"] == "?"  # type: ignore[index]


def test_a_failure_says_where_it_stopped(clock: FakeClock) -> None:
    out = io.StringIO()
    bar = _reporter(clock, out)

    def work() -> None:
        with bar:
            bar.advance(7)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        work()
    assert _lines(out)[-1].startswith("progress demo work: stopped at 7/100 studies")


def test_disabled_reporter_writes_nothing(clock: FakeClock) -> None:
    out = io.StringIO()
    with _reporter(clock, out, enabled=False) as bar:
        clock.now += 100
        bar.advance()
        assert not bar.poll()
    assert out.getvalue() == ""


def test_track_counts_an_item_after_it_was_used(clock: FakeClock) -> None:
    out = io.StringIO()
    bar = _reporter(clock, out, total=6)
    seen = []
    with bar:
        for _batch in bar.track([[1, 2], [3, 4, 5], [6]], size=len):
            seen.append(bar.done)
    assert seen == [0, 2, 5]
    assert bar.done == 6


def test_the_heartbeat_thread_emits_without_updates() -> None:
    """The real thread with a clock the test moves: lines appear while the work makes no call."""
    out = io.StringIO()
    clock = FakeClock()
    with progress_settings(clock=clock, stream=out, live=False, interval_s=30.0), ProgressReporter("slow", 2):
        clock.now += 31
        for _ in range(200):  # the thread wakes every second of real time at most; wait for its line
            if len(_lines(out)) >= 2:
                break
            time.sleep(0.05)
    assert len(_lines(out)) >= 3  # first, heartbeat, final


def test_lines_go_to_the_logger_when_logging_shows_them(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.INFO, logger="hlip.progress"),
        progress_settings(clock=clock, live=False, heartbeat=False),
        report("logged", 3, unit="files") as bar,
    ):
        bar.advance(3)
    messages = [r.getMessage() for r in caplog.records if r.name == "hlip.progress"]
    assert messages[0].startswith("progress logged: 0/3 files")
    assert messages[-1].startswith("progress logged: done 3/3 files")


def test_training_progress_is_the_same_reporter(clock: FakeClock) -> None:
    out = io.StringIO()
    with (
        progress_settings(clock=clock, stream=out, live=False, heartbeat=False),
        StageProgress("warmup", total=4, done=1) as bar,
    ):
        for _ in range(3):
            clock.now += 15
            bar.update(0.5, 8.0)
    first, second, last = _lines(out)
    assert first.startswith("progress pretrain warmup: 1/4 steps")
    assert LINE.match(second)["done"] == "3"  # type: ignore[index]
    assert "loss 0.5" in second
    assert "studies_per_s 8" in second
    assert last.startswith("progress pretrain warmup: done 4/4 steps in 0:00:45")


def test_live_mode_draws_on_the_stream_without_plain_lines(clock: FakeClock) -> None:
    out = io.StringIO()
    with progress_settings(clock=clock, stream=out, live=True, heartbeat=False), report("drawn", 5) as bar:
        bar.advance(5)
    text = out.getvalue()
    assert "drawn" in text
    assert "5/5" in text
    assert "progress drawn:" not in text


def test_format_duration() -> None:
    assert format_duration(3725.4) == "1:02:05"
    assert format_duration(float("nan")) == "?"
    assert format_duration(float("inf")) == "?"
