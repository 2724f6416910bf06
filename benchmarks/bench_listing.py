"""Listing a raw tree: `LocalSource.list_entries` (what ingest lists with) against two plain ways, side by side.

    .venv/bin/python benchmarks/bench_listing.py [FOLDER ...] [--repeats 3]

Every ingest run, the no-op rerun included, lists every raw file (path, size, mtime) and classifies the entries it
cannot read. Rows, best of `--repeats` on a warm page cache, for each folder (default: the demo corpus's two parts):

- `pathlib walk`: `os.walk` with `pathlib.Path` per entry, `Path.stat`, `relative_to` (the listing before session 22);
- `os.walk + os.stat`: strings only, no classification (a floor for what a listing in Python costs);
- `LocalSource.list_entries`: the library's listing (strings, `os.scandir`, the same classification as before).

The first and last rows must list the same readable files in the same order (the library also lists, as problems,
what it cannot read); the harness checks it before timing.
"""

from __future__ import annotations

import argparse
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from hlip.data.source import LocalSource


def pathlib_walk(root: Path) -> list[tuple[str, int, str]]:
    """The pre-session-22 listing, restated: pathlib objects for every entry (regular files only)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            try:
                st = full.stat()
            except OSError:  # a broken or looping link
                continue
            if stat.S_ISREG(st.st_mode) and os.access(full, os.R_OK):
                out.append((full.relative_to(root).as_posix(), st.st_size, str(st.st_mtime_ns)))
    return out


def plain_walk(root: Path) -> list[tuple[str, int, str]]:
    out = []
    base = len(str(root)) + 1
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:  # a broken or looping link
                continue
            out.append((full[base:], st.st_size, str(st.st_mtime_ns)))
    return out


def library(root: Path) -> list[tuple[str, int, str]]:
    return [(e.path, e.size, e.version) for e in LocalSource(root).list_entries()]


def readable(root: Path) -> list[tuple[str, int, str]]:
    """The library's readable regular files: what the pathlib walk lists, for the equality check."""
    return [(e.path, e.size, e.version) for e in LocalSource(root).list_files()]


Listing = list[tuple[str, int, str]]


def best(fn: Callable[[Path], Listing], root: Path, repeats: int) -> tuple[float, int]:
    times, n = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        n = len(fn(root))
        times.append(time.perf_counter() - start)
    return min(times), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "folders", nargs="*", type=Path, default=[Path("data/train/dicom"), Path("data/benchmark/dicom")]
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        "| folder | files | pathlib walk s | os.walk + os.stat s | LocalSource.list_entries s | speed-up vs pathlib |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for root in args.folders:
        root = root.resolve()
        if pathlib_walk(root) != readable(root):
            raise SystemExit(f"{root}: the library's files differ from the pathlib walk's (order or entries)")
        old, n = best(pathlib_walk, root, args.repeats)
        floor, _ = best(plain_walk, root, args.repeats)
        ours, _ = best(library, root, args.repeats)
        print(f"| {root.name} ({root.parent.name}) | {n} | {old:.2f} | {floor:.2f} | {ours:.2f} | {old / ours:.1f}x |")


if __name__ == "__main__":
    main()
