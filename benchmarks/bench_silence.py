"""The longest silence of a pipeline log: per stage, the largest gap between two timestamped lines.

The README's command 1 and a Prefect worker write to files, not terminals; every stage must then print a progress
line at least every 30 s (`hlip/progress.py`). Measure what a reader of the piped output sees, each line stamped
with the time it arrived:

    make pipeline 2>&1 | .venv/bin/python benchmarks/bench_silence.py --stamp run.log   # passes the output through
    .venv/bin/python benchmarks/bench_silence.py run.log [--limit 30]

Stages are the `Running stage 'NAME'` sections of `dvc repro` (anything before the first one is `setup/corpus`).
A gap counts the time between two lines that start with a logging timestamp (`2026-12-03 11:30:38,968`, which
`--stamp` puts on every line). In an unstamped log, a gap with lines of unknown time inside (DVC's own, bare progress
lines on stderr) is not a silence but unmeasured: counted in the `unmeasured` column, never passed or failed.
Exits 1 when a stage's longest silence exceeds `--limit` seconds by more than the heartbeat timer's jitter
(`JITTER`; the stage and the two lines around the gap are printed).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) ")
STAGE = re.compile(r"^(?:\S+ \S+ )?Running stage '([^']+)'")  # bare, or after a --stamp
JITTER = 1.0  # seconds: a 30 s heartbeat's lines are 30.0x s apart


@dataclass
class StageSilence:
    """Timestamped lines of one stage and its longest gap."""

    name: str
    lines: int = 0
    first: datetime | None = None
    last: datetime | None = None
    gap: float = 0.0
    around: tuple[str, str] = ("", "")
    unmeasured: int = 0
    _previous: tuple[datetime, str] | None = field(default=None, repr=False)

    def add(self, when: datetime, line: str, unknown_between: bool = False) -> None:
        self.lines += 1
        self.first = self.first or when
        self.last = when
        if self._previous is not None and unknown_between:
            self.unmeasured += 1
        elif self._previous is not None:
            gap = (when - self._previous[0]).total_seconds()
            if gap > self.gap:
                self.gap, self.around = gap, (self._previous[1], line)
        self._previous = (when, line)

    @property
    def span(self) -> float:
        return (self.last - self.first).total_seconds() if self.first and self.last else 0.0


def silences(lines: list[str]) -> list[StageSilence]:
    """Per stage (in log order), its timestamped lines and longest gap; the gap across a stage change is the next
    stage's (its first line must come within the limit too)."""
    stages = [StageSilence("setup/corpus")]
    previous: tuple[datetime, str] | None = None
    unknown = False  # a line of unknown time since the last stamped one
    for raw in lines:
        line = raw.rstrip("\n")
        if match := STAGE.match(line):
            stages.append(StageSilence(match.group(1)))
            stages[-1]._previous = previous
        if match := STAMP.match(line):
            when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(
                microsecond=int(match.group(2)) * 1000
            )
            stages[-1].add(when, line, unknown)
            previous, unknown = (when, line), False
        elif line.strip():
            unknown = True
    return [s for s in stages if s.lines]


def stamp(source: TextIO, sink: TextIO, log: Path) -> None:
    """Copy `source` to `sink` line by line, and to `log` with each line's arrival time in front."""
    with log.open("w") as out:
        for line in source:
            sink.write(line)
            sink.flush()
            now = datetime.now()
            out.write(f"{now:%Y-%m-%d %H:%M:%S},{now.microsecond // 1000:03d} {line}")
            out.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log", type=Path)
    parser.add_argument("--limit", type=float, default=30.0, help="longest silence allowed, seconds (default 30)")
    parser.add_argument("--stamp", action="store_true", help="write stdin to LOG with arrival times (and to stdout)")
    args = parser.parse_args(argv)
    if args.stamp:
        stamp(sys.stdin, sys.stdout, args.log)
        return 0
    stages = silences(args.log.read_text(errors="replace").splitlines())
    print(f"| stage | timestamped lines | span s | longest silence s | within {args.limit:g} s | unmeasured gaps |")
    print("|---|---:|---:|---:|---|---:|")
    loud = True
    for s in stages:
        ok = s.gap <= args.limit + JITTER
        loud &= ok
        print(f"| {s.name} | {s.lines} | {s.span:.0f} | {s.gap:.1f} | {'yes' if ok else 'NO'} | {s.unmeasured} |")
    for s in stages:
        if s.gap > args.limit + JITTER:
            print(f"\n{s.name}: {s.gap:.0f} s of silence between\n  {s.around[0][:160]}\n  {s.around[1][:160]}")
    if any(s.unmeasured for s in stages):
        print("\nGaps with unstamped lines inside are unmeasured: record the run with --stamp to measure them.")
    return 0 if loud else 1


if __name__ == "__main__":
    sys.exit(main())
