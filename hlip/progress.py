"""Progress of long work, never silent: a live display on a terminal, a plain line every 30 s everywhere else.

Every long stage (corpus generation, ingest, validation, labelling, pre-training, evaluation) reports through one
`ProgressReporter`:

- on a terminal, a rich progress bar with count, rate and time left (several reporters active at once share one
  display, one row each);
- when the output is not a terminal (a log file, `dvc repro` piped, a Prefect worker), a plain line
  ``progress <stage>: <done>/<total> <unit> (<pct>%), <rate> <unit>/s, elapsed <t>, ETA <t>``, at most and at least
  every `interval_s` (30 s) while the work runs: on an update that finds the interval passed, or from a heartbeat
  thread when no update arrives (one slow study still shows the run is alive); plus a first and a final line.

Plain lines go to the ``hlip.progress`` logger when logging is configured to show its INFO records, else straight to
stderr (a library cannot rely on the caller configuring logging, and a progress line nobody sees is no line).
Lines carry counts and rates only, never a path or an identifier.

The clock, the interval, the stream and the mode are `ProgressSettings`, swapped with `progress_settings(...)`, so
tests drive the cadence with a fake clock instead of sleeping.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, TextIO, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class ProgressSettings:
    """How reporters emit (one process-wide value; see `progress_settings`).

    Attributes:
        interval_s: Seconds between plain lines (at most and, while work runs, at least).
        clock: Monotonic time source in seconds.
        stream: Where plain lines and the live display go; None means ``sys.stderr`` at the time of use (plain lines
            then go to the ``hlip.progress`` logger instead when it shows INFO records).
        live: A live display (True), plain lines (False), or a live display only on a terminal (None).
        heartbeat: Run a thread that emits due lines while no update arrives (off in tests with a fake clock).
        enabled: Report at all.
    """

    interval_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    stream: TextIO | None = None
    live: bool | None = None
    heartbeat: bool = True
    enabled: bool = True


_settings = ProgressSettings()


def current_settings() -> ProgressSettings:
    """The settings new reporters take."""
    return _settings


@contextmanager
def progress_settings(**changes: Any) -> Iterator[ProgressSettings]:
    """Change the settings of reporters created inside the block (e.g. a fake clock), restoring them after.

    Raises:
        TypeError: On a field `ProgressSettings` does not have.
    """
    global _settings
    previous = _settings
    _settings = replace(previous, **changes)
    try:
        yield _settings
    finally:
        _settings = previous


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` (``?`` when unknown)."""
    if seconds != seconds or seconds < 0 or seconds == float("inf"):  # NaN, negative or infinite: unknown
        return "?"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class ProgressReporter:
    """Progress of one piece of work with a known total.

    Args:
        stage: What runs, e.g. ``"ingest train: headers"`` (no paths or identifiers: it reaches logs).
        total: Units of work in all.
        unit: Name of a unit (``"studies"``, ``"files"``, ``"steps"``).
        done: Units already done before this run (a resumed run); they do not count towards the rate.
        enabled: Report at all (e.g. rank 0 only).
        settings: Overrides `current_settings()`.
    """

    def __init__(
        self,
        stage: str,
        total: int,
        unit: str = "items",
        done: int = 0,
        enabled: bool = True,
        settings: ProgressSettings | None = None,
    ) -> None:
        self.settings = settings or current_settings()
        self.stage, self.total, self.unit = stage, max(0, total), unit
        self.done = self._base = done
        self.fields: dict[str, Any] = {}
        self.enabled = enabled and self.settings.enabled
        self._lock = threading.Lock()
        self._start = self._last = 0.0
        self._running = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: _LiveTask | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------------

    def __enter__(self) -> ProgressReporter:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close(failed=exc is not None)

    def start(self) -> ProgressReporter:
        """Begin: the clock starts, a first line (or the live row) appears."""
        if not self.enabled or self._running:
            return self
        self._running = True
        self._start = self._last = self.settings.clock()
        if self._use_live():
            self._live = _LiveTask.open(self)
            return self
        self._emit(self._line(self._start))
        if self.settings.heartbeat:
            self._thread = threading.Thread(target=self._beat, name=f"progress-{self.stage}", daemon=True)
            self._thread.start()
        return self

    def close(self, failed: bool = False) -> None:
        """End: a final line with the count, the time taken and the rate (or the live row's last state)."""
        if not self._running:
            return
        self._running = False
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._live is not None:
            self._live.close()
            return
        now = self.settings.clock()
        elapsed = now - self._start
        verb = "stopped at" if failed else "done"
        self._emit(f"progress {self.stage}: {verb} {self.done}/{self.total} {self.unit} in "
                   f"{format_duration(elapsed)} ({self._rate(now):.2f} {self.unit}/s){self._extra()}")  # fmt: skip

    # -- updates ---------------------------------------------------------------------------------------------------

    def advance(self, n: int = 1, **fields: Any) -> None:
        """`n` more units done; `fields` (e.g. ``loss=0.69``) are shown with the count."""
        self.update(self.done + n, **fields)

    def update(self, done: int, total: int | None = None, **fields: Any) -> None:
        """Units done so far (and a changed total); emits a line when one is due."""
        with self._lock:
            self.done = done
            if total is not None:
                self.total = total
            self.fields.update(fields)
        if not self._running:
            return
        if self._live is not None:
            self._live.refresh()
            return
        self.poll()

    def poll(self) -> bool:
        """Emit a line if the interval has passed since the last one (the heartbeat calls this); True if it did."""
        if not self._running or self._live is not None:
            return False
        with self._lock:
            now = self.settings.clock()
            if now - self._last < self.settings.interval_s:
                return False
            self._last = now
            line = self._line(now)
        self._emit(line)
        return True

    def track(self, items: Iterable[T], size: Callable[[T], int] | None = None) -> Iterator[T]:
        """Yield `items`, counting each one done when the next is asked for (i.e. after the caller used it).

        Args:
            items: The work.
            size: Units per item (e.g. ``len`` of a batch); 1 each when None.
        """
        for item in items:
            yield item
            self.advance(size(item) if size else 1)

    # -- numbers ---------------------------------------------------------------------------------------------------

    def rate(self) -> float:
        """Units per second since the start (units done before `start` excluded)."""
        return self._rate(self.settings.clock())

    def eta(self) -> float:
        """Seconds left at the current rate (NaN while the rate is unknown)."""
        return self._eta(self.settings.clock())

    def _rate(self, now: float) -> float:
        elapsed = now - self._start
        return (self.done - self._base) / elapsed if elapsed > 0 else 0.0

    def _eta(self, now: float) -> float:
        rate = self._rate(now)
        return max(0, self.total - self.done) / rate if rate > 0 else float("nan")

    def _line(self, now: float) -> str:
        pct = f" ({100.0 * self.done / self.total:.0f}%)" if self.total else ""
        count = f"{self.done}/{self.total} {self.unit}{pct}, {self._rate(now):.2f} {self.unit}/s"
        times = f"elapsed {format_duration(now - self._start)}, ETA {format_duration(self._eta(now))}"
        return f"progress {self.stage}: {count}, {times}{self._extra()}"

    def _extra(self) -> str:
        return "".join(f", {k} {_fmt(v)}" for k, v in self.fields.items())

    # -- output ----------------------------------------------------------------------------------------------------

    def _use_live(self) -> bool:
        if self.settings.live is not None:
            return self.settings.live
        return _is_terminal(self.settings.stream or sys.stderr)

    def _emit(self, line: str) -> None:
        if self.settings.stream is None and log.isEnabledFor(logging.INFO) and log.hasHandlers():
            log.info(line)
            return
        stream = self.settings.stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()

    def _beat(self) -> None:
        # Wakes often in real time but emits by the settings' clock, so the cadence is the interval's.
        wait = max(0.05, min(1.0, self.settings.interval_s / 10))
        while not self._stop.wait(wait):
            self.poll()


def report(
    stage: str, total: int | Sized, unit: str = "items", done: int = 0, enabled: bool = True
) -> ProgressReporter:
    """A reporter for `total` units (or ``len(total)``), to use as a context manager: ``with report(...) as bar:``."""
    n = total if isinstance(total, int) else len(total)
    return ProgressReporter(stage, n, unit=unit, done=done, enabled=enabled)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _is_terminal(stream: TextIO) -> bool:
    from rich.console import Console

    console = Console(file=stream)
    return console.is_terminal and not console.is_dumb_terminal


class _LiveTask:
    """One reporter's row in the process's shared rich display (started by the first row, stopped by the last)."""

    _progress: Any = None
    _rows = 0
    _guard = threading.Lock()

    def __init__(self, reporter: ProgressReporter, task: Any) -> None:
        self.reporter, self.task = reporter, task

    @classmethod
    def open(cls, reporter: ProgressReporter) -> _LiveTask:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with cls._guard:
            if cls._progress is None:
                stream = reporter.settings.stream or sys.stderr
                columns = (
                    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[unit]}  {task.fields[rate]}/s  elapsed"), TimeElapsedColumn(),
                    TextColumn("ETA {task.fields[eta]}{task.fields[extra]}"),
                )  # fmt: skip
                cls._progress = Progress(*columns, console=Console(file=stream), transient=False)
                cls._progress.start()
            cls._rows += 1
            task = cls._progress.add_task(reporter.stage, total=reporter.total, completed=reporter.done,
                                          **_live_fields(reporter))  # fmt: skip
        return cls(reporter, task)

    def refresh(self) -> None:
        r = self.reporter
        self._progress.update(self.task, completed=r.done, total=r.total, **_live_fields(r))

    def close(self) -> None:
        self.refresh()
        with self._guard:
            type(self)._rows -= 1
            if self._rows == 0 and self._progress is not None:
                self._progress.stop()
                type(self)._progress = None


def _live_fields(r: ProgressReporter) -> dict[str, str]:
    now = r.settings.clock()
    return {"unit": r.unit, "rate": f"{r._rate(now):.2f}", "eta": format_duration(r._eta(now)), "extra": r._extra()}
