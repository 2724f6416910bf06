"""``python -m local_stack up|down|status [--root outputs/stack]``: the local stack's command line."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from local_stack.local import DEFAULT_ROOT, LocalStack


def main(argv: list[str] | None = None) -> int:
    """Run one stack command; return the exit status (status: 1 when a component is down or unhealthy).

    ``status`` also checks the stack's buckets and names any that is missing (the preflight before uploads).
    """
    parser = argparse.ArgumentParser(prog="python -m local_stack", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="stack folder (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "down" and not (args.root / "stack.json").is_file():
        print(f"stack-down: no stack in {args.root}")
        return 0
    stack = LocalStack(args.root)
    if args.command == "up":
        t0 = time.monotonic()
        seconds = stack.up()
        for name, s in seconds.items():
            print(f"  {name:<15} {'already running' if s == 0 else f'started in {s:.1f} s'}")
        print(f"stack-up: ready in {time.monotonic() - t0:.1f} s; use it with: source {stack.env_file}")
        return 0
    if args.command == "down":
        stopped = stack.down()
        print(f"stack-down: stopped {', '.join(stopped) if stopped else 'nothing (no process was running)'}")
        return 0
    rows = stack.status()
    print(f"{'component':<15} {'pid':>8} {'port':>6}  health")
    for row in rows:
        health = "ok" if row["healthy"] else ("DOWN" if row["pid"] is None else "UNHEALTHY")
        print(f"{row['name']!s:<15} {row['pid'] or '-'!s:>8} {row['port'] or '-'!s:>6}  {health}")
        if row["problem"]:
            print(f"  {row['problem']}")
    return 0 if all(row["healthy"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
