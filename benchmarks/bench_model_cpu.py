"""CPU benchmark of the HLIP vision tower: hierarchical vs full attention, packed vs fixed-N batches.

Prints two tables:

1. Forward+backward time and peak memory per study for hierarchical (scan, scan, study) x 2 attention and
   full attention (every block study-level) at the same token count, for 1, 2, 4, 8 and 12 scans per study.
2. A realistic mix of scan counts per study, run three ways: packed (padding dropped, no duplicated scan),
   and upstream's fixed-N tiling/truncation to 8 and to 12 scans.

Every measurement runs in a fresh subprocess, so its peak resident memory (ru_maxrss minus the resident
size just before the first step) is the step's own peak. Times are the best of `--reps` steps after one
warm-up step (best-of, because other processes may share the cores; all times go to `--json`).
Usage: `.venv/bin/python benchmarks/bench_model_cpu.py [--reps 3] [--json out.json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

SCAN = (32, 128, 128)  # per-scan input; 8x16x16 patches -> 4x8x8 = 256 tokens per scan
BENCH_VISION: dict[str, Any] = {
    "image_size": list(SCAN),
    "patch_size": [8, 16, 16],
    "width": 128,
    "depth": 6,
    "heads": 4,
    "pool": "cls",
    "max_scans": 16,
}
LEVELS = {"hierarchical": ["scan", "scan", "study"] * 2, "full": ["study"] * 6}
SCAN_COUNTS = (1, 2, 4, 8, 12)
STUDIES_PER_STEP = 2
MIX = [2, 3, 3, 4, 5, 6, 9, 12]  # scans per study of a realistic brain-MRI batch (8 studies)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement: build the model, run warm-up + `reps` forward+backward steps."""
    import torch

    from hlip.models import VisionConfig, VisionTransformer3D, fixed_scan_count, vision_forward_flops

    torch.manual_seed(0)
    cfg = VisionConfig(**{**BENCH_VISION, "levels": tuple(spec["levels"])})
    model = VisionTransformer3D(cfg, embed_dim=128).train()
    counts: list[int] = spec["counts"]
    n = max(counts)
    x = torch.randn(len(counts), n, 1, *SCAN)
    mask: torch.Tensor | None = torch.arange(n)[None] < torch.tensor(counts)[:, None]
    if spec["fixed_n"]:
        x, mask = fixed_scan_count(x, mask, spec["fixed_n"]), None
        counts = [spec["fixed_n"]] * len(counts)
    elif all(c == n for c in counts):
        mask = None

    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(x, mask).square().mean().backward()

    before = _rss_bytes()
    step()  # warm-up; its peak is the step's peak
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    times = []
    for _ in range(spec["reps"]):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    seconds = min(times)  # best of reps: robust to other processes on a shared machine
    flops = 3 * vision_forward_flops(cfg, counts, 128)
    return {"seconds": seconds, "times": times, "peak_bytes": max(peak, 0), "flops": flops, "scans": sum(counts)}


def measure(levels: list[str], counts: list[int], reps: int, fixed_n: int = 0) -> dict[str, Any]:
    """Run `worker` in a fresh interpreter and return its result."""
    spec = {"levels": levels, "counts": counts, "reps": reps, "fixed_n": fixed_n}
    # Passive OpenMP waiting: spinning threads slow down by 10x and more when other processes share the cores.
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)], check=True, capture_output=True, text=True, env=env
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def scaling_table(reps: int) -> list[dict[str, Any]]:
    rows = []
    for n in SCAN_COUNTS:
        row: dict[str, Any] = {"scans": n, "tokens": n * 256}
        for name, levels in LEVELS.items():
            result = measure(levels, [n] * STUDIES_PER_STEP, reps)
            row[name] = result
            print(f"  {name:12s} {n:2d} scans: {result['seconds'] / STUDIES_PER_STEP * 1e3:8.0f} ms/study", flush=True)
        rows.append(row)
    return rows


def mix_table(reps: int) -> list[dict[str, Any]]:
    rows = []
    for label, fixed_n in [("packed (no padding, no duplicates)", 0), ("fixed N=8 (upstream tiling)", 8),
                           ("fixed N=12 (tile to max)", 12)]:  # fmt: skip
        result = measure(LEVELS["hierarchical"], MIX, reps, fixed_n=fixed_n)
        seen = sum(min(c, fixed_n) if fixed_n else c for c in MIX)
        result.update(label=label, seen=seen, duplicated=result["scans"] - seen, dropped=sum(MIX) - seen)
        rows.append(result)
        print(f"  {label}: {result['seconds'] / len(MIX) * 1e3:.0f} ms/study", flush=True)
    return rows


def print_tables(scaling: list[dict[str, Any]], mix: list[dict[str, Any]]) -> None:
    mb, ms = 1 / 2**20, 1e3
    print(f"\nHLIP vision tower, forward+backward, CPU ({os.cpu_count()} cores), width 128, depth 6, 256 tokens/scan,")
    print(f"{STUDIES_PER_STEP} studies per step; time = best step of the repeats; MB = peak RSS increase of the step")
    print("hierarchical = (scan, scan, study) x 2; full = study-level attention in all 6 blocks\n")
    print("| scans/study | tokens/study | hier ms/study | full ms/study | full/hier | hier MB/study | full MB/study "
          "| hier GFLOP/study | full GFLOP/study |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in scaling:
        h, f = row["hierarchical"], row["full"]
        print(
            f"| {row['scans']} | {row['tokens']} | {h['seconds'] / STUDIES_PER_STEP * ms:.0f} "
            f"| {f['seconds'] / STUDIES_PER_STEP * ms:.0f} | {f['seconds'] / h['seconds']:.2f}x "
            f"| {h['peak_bytes'] / STUDIES_PER_STEP * mb:.0f} | {f['peak_bytes'] / STUDIES_PER_STEP * mb:.0f} "
            f"| {h['flops'] / STUDIES_PER_STEP / 1e9:.1f} | {f['flops'] / STUDIES_PER_STEP / 1e9:.1f} |"
        )
    print(f"\nRealistic scan-count mix, hierarchical model, one batch of {len(MIX)} studies: scans per study {MIX}\n")
    print("| batching | scans computed | real scans used | duplicated | dropped | ms/study | MB/study | GFLOP/step |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in mix:
        print(
            f"| {r['label']} | {r['scans']} | {r['seen']} | {r['duplicated']} | {r['dropped']} "
            f"| {r['seconds'] / len(MIX) * ms:.0f} | {r['peak_bytes'] / len(MIX) * mb:.0f} | {r['flops'] / 1e9:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="timed steps per measurement (after 1 warm-up)")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    start = time.perf_counter()
    print("hierarchical vs full attention:", flush=True)
    scaling = scaling_table(args.reps)
    print("packed vs fixed-N:", flush=True)
    mix = mix_table(args.reps)
    print_tables(scaling, mix)
    print(f"\n(total {time.perf_counter() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"scaling": scaling, "mix": mix}, f, indent=2)


if __name__ == "__main__":
    main()
