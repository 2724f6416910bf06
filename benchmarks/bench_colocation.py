"""Co-location: can attention across a study's scans tell "the same place on two series" from "two places"?

The demo corpus cannot answer this (docs/demo-model.md, session 16): its mimics differ from their targets on
single series, so a model that reads each scan alone separates them. This task is built so that it cannot. Every
study has two scans of a noisy ellipsoid "brain": scan 0 ("DWI") holds one bright sphere, scan 1 ("ADC") one dark
sphere, each at a uniformly random place inside the brain. In positive studies ("restricted diffusion") both lie at
the same place; in negative ones ("T2 shine-through beside an unrelated ADC-dark focus") at least `--separation`
voxels apart. Each scan alone has the same distribution in both classes, so only a model that compares tokens of
one scan with tokens of the other at the same position can score above chance.

The three attention variants of `bench_ablation.py` (`hlip-demo` with `vision.levels` set to scan-only, scan +
study as shipped, and full attention; `study+scan`, scan + study with a study-level first block, on request) are
trained on the same studies as the supervised warm-up model (`bench_learnability.run_config`: BCE, the project's
AdamW groups and schedule), over several seeds, beside:
- **probe at init**: a logistic regression on the untrained tower's study embeddings;
- **reference**: minus the distance between the brightest point of the smoothed scan 0 and the darkest point of
  the smoothed scan 1 (the co-location rule itself, near 1.0);
- **one scan at a time**: the same rule's single-scan halves (brightest value of scan 0 and darkest of scan 1,
  summed), near chance by construction.

    .venv/bin/python benchmarks/bench_colocation.py [--seeds 3] [--epochs 6] [--train 600] [--variants ...]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from bench_learnability import SHAPE, add_training_arguments, brain_points, run_config
from numpy.typing import NDArray
from scipy import ndimage
from sklearn.metrics import roc_auc_score

VARIANTS = {
    "scan": ["scan", "scan", "scan", "scan"],
    "scan+study": ["scan", "study", "scan", "study"],
    "full": ["study", "study", "study", "study"],
    "study+scan": ["study", "scan", "study", "scan"],  # scan + study with a study-level first block
}
BASE = {0: 100.0, 1: 140.0}  # tissue level of scan 0 and scan 1
SIGN = {0: 1.0, 1: -1.0}  # the focus is bright on scan 0 and dark on scan 1


def make_studies(n: int, args: argparse.Namespace, rng: np.random.Generator) -> tuple[list[torch.Tensor], NDArray]:
    """`n` studies `uint8 [2, D, H, W]`, half of them positive (co-located foci), and their labels."""
    brain, inside, (zz, yy, xx) = brain_points()
    labels = rng.permutation(n) < n // 2
    studies = []
    for positive in labels:
        a = inside[rng.integers(len(inside))] + rng.uniform(-0.5, 0.5, 3)
        b = a
        while not positive and np.linalg.norm((b - a) * (0.875, 1.0, 1.0)) < args.separation:
            b = inside[rng.integers(len(inside))] + rng.uniform(-0.5, 0.5, 3)
        scans = []
        for s, centre in enumerate((a, b)):
            v = np.where(brain, BASE[s], 0.0) + rng.normal(0.0, 10.0, SHAPE) * brain
            sphere = ((zz - centre[0]) * 0.875) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 < args.radius**2
            scans.append(np.clip(v + SIGN[s] * args.contrast * sphere, 0, 255).astype(np.uint8))
        studies.append(torch.from_numpy(np.stack(scans)))
    return studies, labels


def references(studies: list[torch.Tensor], labels: NDArray) -> tuple[float, float]:
    """AUC of the co-location rule and of its single-scan halves."""
    brain, _, _ = brain_points()
    core = ndimage.binary_erosion(brain, iterations=3)  # the smoothing mixes the dark background in at the edge
    pair, single = [], []
    for study in studies:
        bright = np.where(core, ndimage.uniform_filter(study[0].numpy().astype(np.float32), 3), -np.inf)
        dark = np.where(core, ndimage.uniform_filter(study[1].numpy().astype(np.float32), 3), np.inf)
        p = np.array(np.unravel_index(bright.argmax(), SHAPE)) * (0.875, 1.0, 1.0)
        q = np.array(np.unravel_index(dark.argmin(), SHAPE)) * (0.875, 1.0, 1.0)
        pair.append(-float(np.linalg.norm(p - q)))
        single.append(float(bright.max() - dark.min()))
    return roc_auc_score(labels, pair), roc_auc_score(labels, single)


def mean_ci(values: list[float]) -> str:
    """Mean and a normal 95% interval over seeds (the spread between seeds, not within a test set)."""
    if len(values) < 2:
        return f"{values[0]:.3f}"
    half = 1.96 * float(np.std(values, ddof=1)) / np.sqrt(len(values))
    return f"{np.mean(values):.3f} [{np.mean(values) - half:.3f}, {np.mean(values) + half:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["scan", "scan+study", "full"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="train seeds first-seed .. first-seed + seeds - 1")
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--radius", type=float, default=4.0, help="focus radius in voxels")
    parser.add_argument("--contrast", type=float, default=60.0, help="grey levels from the tissue (noise sd 10)")
    parser.add_argument("--separation", type=float, default=16.0, help="minimum distance of the foci in negatives")
    add_training_arguments(parser, epochs=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the per-seed numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(20261205)
    train = make_studies(args.train, args, rng)
    test = make_studies(args.test, args, rng)
    pair_auc, single_auc = references(*test)
    print(f"{args.train} training and {args.test} test studies (half co-located); focus radius {args.radius}, "
          f"contrast {args.contrast}, separation >= {args.separation}; {args.epochs} epochs at lr {args.lr}; "
          f"reference {pair_auc:.3f}, one scan at a time {single_auc:.3f}", flush=True)  # fmt: skip
    results: dict[str, list[dict[str, float]]] = {}
    for variant in args.variants:
        spec = "hlip-demo:" + json.dumps({"vision": {"levels": VARIANTS[variant]}})
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            start = time.perf_counter()
            r = run_config(spec, train, test, argparse.Namespace(**{**vars(args), "seed": seed}))
            results.setdefault(variant, []).append({k: float(r[k]) for k in ("probe_auc", "trained_auc", "train_bce")})
            print(f"  {variant} seed {seed}: probe at init {r['probe_auc']:.3f}, trained {r['trained_auc']:.3f}, "
                  f"train BCE {r['train_bce']:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    print(f"\n| variant | test AUC, probe at init | test AUC, trained: mean [95% CI over {args.seeds} seeds] "
          "| per seed | train BCE (prior 0.693) |")  # fmt: skip
    print("|---|---:|---:|---|---:|")
    for variant, rows in results.items():
        trained = [r["trained_auc"] for r in rows]
        print(
            f"| {variant} | {np.mean([r['probe_auc'] for r in rows]):.3f} | {mean_ci(trained)} "
            f"| {', '.join(f'{t:.3f}' for t in trained)} | {np.mean([r['train_bce'] for r in rows]):.3f} |"
        )
    print(f"| reference: distance of the brightest scan-0 and darkest scan-1 points | | {pair_auc:.3f} | | |")
    print(f"| one scan at a time: brightest scan 0 + darkest scan 1 | | {single_auc:.3f} | | |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"settings": {k: v for k, v in vars(args).items() if k != "json"}, "reference": pair_auc,
                       "single_scan": single_auc, "variants": results}, f, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
