"""GPU benchmark of the HLIP vision tower: training throughput, MFU and the largest batch that fits.

Default: the upstream brain-MRI config (`hlip-vit-b-brainmri-scan-study`: ViT-B, 8 scans x 1176 tokens per
study), bf16 autocast with fp32 master weights and fused AdamW, eager and `torch.compile`, plus the
full-attention variant of the same model for comparison. One training step = forward + backward +
optimiser step on random studies; times come from CUDA events after warm-up steps (compilation happens in
the warm-up), with a synchronisation before and after the timed window.

MFU = 3 x analytic forward FLOPs (`hlip.models.vision_forward_flops`: patch embedding, every linear layer,
the two attention matmuls) / step time / the GPU's dense bf16 peak (H100/H200 SXM: 989 TFLOPS; pass
`--peak-tflops` for other GPUs).

Usage (on a GPU machine, from the repository root):
    python benchmarks/bench_model_gpu.py                      # eager + compile, batch 8, max-batch search
    python benchmarks/bench_model_gpu.py --compile off --batch 16 --no-max-batch
Smoke test on CPU (tiny model): python benchmarks/bench_model_gpu.py --device cpu --model hlip-tiny --scans 2
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from dataclasses import replace
from typing import Any

import torch

from hlip.models import VisionConfig, VisionTransformer3D, compile_model, get_model_config, vision_forward_flops

PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    """Dense bf16 peak of the device (None when unknown and not given)."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS.items():  # "H100 PCIe" is checked before "H100"
        if key in name:
            return value
    return None


class Runner:
    """A model, its optimiser and a fixed random batch; `step()` is one training step."""

    def __init__(self, cfg: VisionConfig, embed_dim: int, batch: int, scans: int, args: argparse.Namespace) -> None:
        self.device = torch.device(args.device)
        torch.manual_seed(0)
        self.model = VisionTransformer3D(cfg, embed_dim).to(self.device).train()
        self.model.set_grad_checkpointing(args.grad_checkpointing)
        fused = self.device.type == "cuda"
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4, fused=fused)
        self.forward = compile_model(self.model) if args.compiled else self.model
        self.x = torch.randn(batch, scans, 1, *cfg.image_size, device=self.device)
        self.dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32

    def step(self) -> None:
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            out = self.forward(self.x)
        out.float().square().mean().backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def time_steps(runner: Runner, warmup: int, steps: int) -> tuple[float, float]:
    """Mean seconds per step after `warmup` steps, and peak memory (GB) over the timed steps."""
    device = runner.device
    for _ in range(warmup):
        runner.step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            runner.step()
        end.record()
        sync(device)
        return start.elapsed_time(end) / 1e3 / steps, torch.cuda.max_memory_allocated(device) / 1e9
    t0 = time.perf_counter()
    for _ in range(steps):
        runner.step()
    return (time.perf_counter() - t0) / steps, float("nan")


def fits(cfg: VisionConfig, embed_dim: int, batch: int, args: argparse.Namespace) -> bool:
    """True when two training steps at `batch` run without running out of memory."""
    runner = None
    try:
        runner = Runner(cfg, embed_dim, batch, args.scans, args)
        runner.step()
        runner.step()
        sync(runner.device)
        return True
    except torch.cuda.OutOfMemoryError:
        return False
    finally:
        del runner
        free_memory()


def max_batch(cfg: VisionConfig, embed_dim: int, args: argparse.Namespace, limit: int = 4096) -> int:
    """Largest batch that fits: doubling, then bisection."""
    low, high = 0, 1
    while high <= limit and fits(cfg, embed_dim, high, args):
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(cfg, embed_dim, mid, args) else (low, mid)
    return low


def run_variant(name: str, cfg: VisionConfig, embed_dim: int, args: argparse.Namespace) -> dict[str, Any]:
    """Throughput and MFU of one (attention, compile) variant at `args.batch`."""
    free_memory()
    runner = Runner(cfg, embed_dim, args.batch, args.scans, args)
    warmup = args.warmup + (3 if args.compiled else 0)
    seconds, peak_gb = time_steps(runner, warmup, args.steps)
    del runner
    free_memory()
    flops = 3 * vision_forward_flops(cfg, [args.scans] * args.batch, embed_dim)
    peak = peak_tflops(torch.device(args.device), args.peak_tflops)
    return {
        "variant": name,
        "compile": args.compiled,
        "batch": args.batch,
        "step_ms": seconds * 1e3,
        "studies_per_s": args.batch / seconds,
        "tflops": flops / seconds / 1e12,
        "mfu": flops / seconds / (peak * 1e12) if peak else None,
        "peak_gb": peak_gb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hlip-vit-b-brainmri-scan-study")
    parser.add_argument("--scans", type=int, default=8, help="scans per study")
    parser.add_argument("--batch", type=int, default=8, help="studies per step for the throughput rows")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5, help="warm-up steps (+3 when compiled)")
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--compile", choices=["both", "on", "off"], default="both")
    parser.add_argument("--no-full", action="store_true", help="skip the full-attention variant")
    parser.add_argument("--no-max-batch", action="store_true", help="skip the largest-batch search")
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense peak for MFU (default: by GPU name)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device; use --device cpu for a smoke test")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    model_cfg = get_model_config(args.model)
    variants = {"hierarchical": model_cfg.vision}
    if not args.no_full:
        variants["full attention"] = replace(model_cfg.vision, levels=("study",) * model_cfg.vision.depth)
    compile_modes = {"both": [False, True], "on": [True], "off": [False]}[args.compile]

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{args.model} on {device_name}, torch {torch.__version__}, {args.dtype}, {args.scans} scans/study, ")
    print(f"{model_cfg.vision.tokens_per_scan} tokens/scan, grad checkpointing {args.grad_checkpointing}", flush=True)
    rows = []
    for name, cfg in variants.items():
        for compiled in compile_modes:
            args.compiled = compiled
            row = run_variant(name, cfg, model_cfg.embed_dim, args)
            rows.append(row)
            mfu = f", MFU {100 * row['mfu']:.1f}%" if row["mfu"] is not None else ""
            print(f"  {name}, compile={compiled}: {row['step_ms']:.1f} ms/step, {row['studies_per_s']:.2f} studies/s"
                  f"{mfu}, peak {row['peak_gb']:.1f} GB", flush=True)  # fmt: skip
    largest = {}
    if not args.no_max_batch and device.type == "cuda":
        args.compiled = False
        for name, cfg in variants.items():
            largest[name] = max_batch(cfg, model_cfg.embed_dim, args)
            print(f"  largest batch ({name}, eager): {largest[name]}", flush=True)

    print("\n| attention | compile | batch | step ms | studies/s | TFLOP/s | MFU | peak GB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        print(
            f"| {r['variant']} | {'yes' if r['compile'] else 'no'} | {r['batch']} | {r['step_ms']:.1f} "
            f"| {r['studies_per_s']:.2f} | {r['tflops']:.1f} | {mfu} | {r['peak_gb']:.1f} |"
        )
    for name, batch in largest.items():
        print(f"largest batch that fits ({name}, eager, {args.dtype}, {args.scans} scans/study): {batch} studies")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "max_batch": largest}, f, indent=2)


if __name__ == "__main__":
    main()
