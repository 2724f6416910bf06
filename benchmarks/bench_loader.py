"""Loader throughput: studies/s of `make_loader` with 0/1/2 workers against a naive main-loop baseline.

    .venv/bin/python benchmarks/bench_loader.py [--part outputs/ingest/train] [--batch 16] [--batches 15]

The baseline reads every scan of each study with `np.load` in the main loop and stacks/pads them, which is what
a loop without a DataLoader does. Numbers depend on the machine and its load: compare rows of one run only.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def naive(part: Path, batch: int, batches: int) -> float:
    """Studies/s of loading whole studies with np.load in the main loop (no workers, no sampling policy)."""
    scans = pd.read_parquet(part / "scans.parquet", columns=["study_key", "path"])
    groups = [list(rows["path"]) for _, rows in scans.groupby("study_key")]
    start, n = time.perf_counter(), 0
    for b in range(batches):
        studies = [np.stack([np.load(part / p) for p in paths[:8]]) for paths in groups[b * batch : (b + 1) * batch]]
        width = max(len(s) for s in studies)
        image = torch.zeros(len(studies), width, 1, *studies[0].shape[1:])
        for i, s in enumerate(studies):
            image[i, : len(s), 0] = torch.from_numpy(s).float() / 255
        n += len(studies)
    return n / (time.perf_counter() - start)


def loader(part: Path, batch: int, batches: int, workers: int, text: bool) -> float:
    """Studies/s of `make_loader` (max_n 8 scans, text tokenised in the workers when `text`)."""
    from hlip.data.dataset import ScanPolicy, StudyDataset, TextPolicy, make_loader
    from hlip.models import create_tokenizer

    ds = StudyDataset(part, scans_policy=ScanPolicy("max_n", 8), text_policy=TextPolicy() if text else None, seed=0)
    tokenizer = create_tokenizer("hlip-demo") if text else None
    dl = make_loader(ds, batch_size=batch, workers=workers, tokenizer=tokenizer, seed=0)
    dl.sampler.set_epoch(0)  # type: ignore[attr-defined]
    it = iter(dl)
    next(it)  # start-up (worker spawn) is not throughput
    start, n = time.perf_counter(), 0
    for _ in range(batches):
        n += len(next(it)["study_key"])
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", type=Path, default=Path("outputs/ingest/train"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [("naive np.load loop", naive(args.part, args.batch, args.batches))]
    for workers in (0, 1, 2):
        rows.append((f"make_loader workers={workers}", loader(args.part, args.batch, args.batches, workers, False)))
    rows.append(("make_loader workers=2 + tokenizer", loader(args.part, args.batch, args.batches, 2, True)))
    print(f"{'loader':<36} {'studies/s':>10}")
    for name, rate in rows:
        print(f"{name:<36} {rate:>10.1f}")


if __name__ == "__main__":
    main()
