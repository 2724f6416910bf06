"""Loader throughput: studies/s of `make_loader` with 0/1/2 workers against a naive main-loop baseline.

    .venv/bin/python benchmarks/bench_loader.py [--part outputs/ingest/train] [--batch 16] [--batches 15]
    .venv/bin/python benchmarks/bench_loader.py --upstream 32 [--work /tmp/bench_loader]

The baseline reads every scan of each study with `np.load` in the main loop and stacks/pads them, which is what
a loop without a DataLoader does. Numbers depend on the machine and its load: compare rows of one run only.

`--upstream N` writes N synthetic studies at the upstream resolution (8 scans of 48x224x224 uint8, 19 MB a study)
as per-scan `.npy` files, packs them into shards (`hlip.data.shards`), uploads the pack to a SeaweedFS S3 server
started on 127.0.0.1, and prints studies/s of `make_loader` (max_n 8, batch 4, one epoch after a warm-up batch)
from `.npy` files vs local shards vs S3 shards, in the main process (one worker's rate) and with 2 workers. The
files were just written, so local reads come from the page cache: the rows compare the CPU cost of each path.
Each source's items alone (`dataset[(0, i)]`, no collation, main process) are timed beside its loader.

The harness keeps freed memory in the process as the training process does (`hlip.allocator`; forked workers
inherit it); `HLIP_RETAIN_FREED_MEMORY=0` measures glibc's defaults instead.
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


def write_upstream_part(out: Path, n: int, scans: int = 8, shape: tuple[int, int, int] = (48, 224, 224)) -> None:
    """A part folder of `n` studies of `scans` random uint8 volumes each (manifests as ingest writes them)."""
    rng = np.random.default_rng(0)
    studies, rows = [], []
    for i in range(n):
        key = f"study{i:05d}"
        for j in range(scans):
            rel = f"volumes/{key}/scan{j}.npy"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            np.save(out / rel, rng.integers(0, 255, size=shape, dtype=np.uint8))
            rows.append({"study_key": key, "scan_key": f"{key}c{j}", "kind": "t1", "plane": "axial", "path": rel})
        studies.append({"study_key": key, "status": "ok"})
    pd.DataFrame(studies).to_parquet(out / "studies.parquet", index=False)
    pd.DataFrame(rows).to_parquet(out / "scans.parquet", index=False)


def epoch_rate(ds: torch.utils.data.Dataset, workers: int, batch: int = 4) -> float:  # type: ignore[type-arg]
    """Studies/s of one epoch of `make_loader` after its first batch (worker start-up is not throughput)."""
    from hlip.data.dataset import make_loader

    dl = make_loader(ds, batch_size=batch, workers=workers, seed=0, drop_last=False, persistent_workers=False,
                     pin_memory=False)  # fmt: skip
    dl.sampler.set_epoch(0)  # type: ignore[attr-defined]
    it = iter(dl)
    next(it)
    start, n = time.perf_counter(), 0
    for b in it:
        n += len(b["study_key"])
    return n / (time.perf_counter() - start)


def item_rate(ds: torch.utils.data.Dataset, count: int = 8) -> float:  # type: ignore[type-arg]
    """Studies/s of `ds[(0, i)]` alone (reading and stacking a study's scans, no collation), after one warm-up item."""
    ds[(0, 0)]
    start = time.perf_counter()
    for i in range(1, count + 1):
        ds[(0, i % len(ds))]  # type: ignore[index]
    return count / (time.perf_counter() - start)


def upstream(n: int, work: Path) -> None:
    """The `--upstream` table: .npy files vs local shards vs S3 shards at the upstream resolution."""
    import os
    import shutil

    from hlip.data.dataset import ScanPolicy, StudyDataset
    from hlip.data.pack import pack_part, upload_pack
    from hlip.data.shards import ShardStudyDataset
    from local_stack import SeaweedFS

    shutil.rmtree(work, ignore_errors=True)
    write_upstream_part(work / "part", n)
    start = time.perf_counter()
    summary = pack_part(work / "part", work / "pack", shard_bytes=256 << 20)
    pack_s = time.perf_counter() - start
    policy = ScanPolicy("max_n", 8)
    rows = []
    with SeaweedFS(work / "s3", buckets=("packs",)) as server:
        os.environ.update(server.client_env())
        start = time.perf_counter()
        upload_pack(work / "pack", "s3://packs/train")
        upload_s = time.perf_counter() - start
        sources = {
            ".npy files": lambda: StudyDataset(work / "part", scans_policy=policy, seed=0),
            "local shards": lambda: ShardStudyDataset(work / "pack", scans_policy=policy, seed=0),
            "S3 shards": lambda: ShardStudyDataset(
                "s3://packs/train", cache_dir=work / "cache", scans_policy=policy, seed=0
            ),
        }
        items = {name: item_rate(make()) for name, make in sources.items()}
        for workers in (0, 2):
            for name, make in sources.items():
                rows.append((name, workers, epoch_rate(make(), workers)))
    shutil.rmtree(work, ignore_errors=True)
    print(f"\n{n} studies x 8 scans x 48x224x224 uint8; pack: {summary.shards} shards, {summary.bytes / 1e9:.2f} GB "
          f"in {pack_s:.1f} s; upload to SeaweedFS {upload_s:.1f} s; machine: {os.cpu_count()} cores\n")  # fmt: skip
    print("| source | workers | studies/s | studies/s per worker | items alone, main process, studies/s |")
    print("|---|---:|---:|---:|---:|")
    for name, workers, rate in rows:
        print(
            f"| {name} | {workers or 'main process'} | {rate:.1f} | {rate / max(1, workers):.1f} | {items[name]:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", type=Path, default=Path("outputs/ingest/train"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--upstream", type=int, default=None, metavar="STUDIES")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_loader"))
    args = parser.parse_args()
    from hlip.allocator import retain_freed_memory

    print(f"freed memory kept in the process (hlip.allocator): {retain_freed_memory()}")
    torch.set_num_threads(1)
    if args.upstream:
        upstream(args.upstream, args.work)
        return
    rows = [("naive np.load loop", naive(args.part, args.batch, args.batches))]
    for workers in (0, 1, 2):
        rows.append((f"make_loader workers={workers}", loader(args.part, args.batch, args.batches, workers, False)))
    rows.append(("make_loader workers=2 + tokenizer", loader(args.part, args.batch, args.batches, 2, True)))
    print(f"{'loader':<36} {'studies/s':>10}")
    for name, rate in rows:
        print(f"{name:<36} {rate:>10.1f}")


if __name__ == "__main__":
    main()
