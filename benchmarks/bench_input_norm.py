"""Input normalisation on the demo corpus: whole-volume z-score vs foreground z-score, side by side.

The question behind `VisionConfig.input_norm` (docs/demo-model.md, session 6): does normalising each scan over its
head voxels only (`zscore_foreground`, nnU-Net's MR normalisation) let a small from-scratch model find the demo's
lesions better than the whole-volume z-score (`zscore`, where the air in the field of view sets the scale)?

Per task `FINDING:KINDS` (scan kinds from ingest, or `all`), on the ingested demo corpus:
- train: every training-part scan of those kinds, labelled with its study's silver label for the finding (the
  label stage's output; uncertain and missing labels left out);
- model: the same small 3D CNN for both rows (4 conv + BatchNorm + ReLU blocks, mean and max pooled, one logit),
  seeded alike, AdamW with a one-cycle schedule, left-right flips; the input goes through the vision tower's own
  normalisation function (`hlip.models.visual.zscore` or `zscore_foreground`);
- score: a benchmark study's score is the max over its scans of those kinds; AUC of the finding against the
  other four classes, on the benchmark's ground truth (studies without such a scan are left out).

A CNN, not the HLIP tower, because the linear-patch tower stayed near chance on this corpus under either
normalisation (docs/demo-model.md): this measures the normalisation where a model can learn.

    .venv/bin/python benchmarks/bench_input_norm.py [--epochs 10] [--task glioma:flair,t2 ...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from hlip.evaluation.benchmarks.demo import DemoBenchmark
from hlip.labels.table import to_matrix
from hlip.models.visual import zscore, zscore_foreground

DEFAULT_TASKS = ("glioma:flair,t2", "meningioma:t1c", "stroke:dwi,flair", "metastasis:t1c,flair", "glioma:all")
NORMS: dict[str, Callable[[Tensor], Tensor]] = {"zscore": zscore, "zscore_foreground": zscore_foreground}


def _block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [nn.Conv3d(c_in, c_out, 3, stride, 1), nn.BatchNorm3d(c_out), nn.ReLU()]


class ScanDetector(nn.Module):
    """A small 3D CNN: normalised scan `[B, 1, D, H, W]` -> one logit per scan."""

    def __init__(self, norm: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.norm = norm
        self.features = nn.Sequential(*_block(1, 16, 2), *_block(16, 32, 2), *_block(32, 64, 2), *_block(64, 64, 1))
        self.head = nn.Linear(128, 1)

    def forward(self, x: Tensor) -> Tensor:
        f = self.features(self.norm(x.float() / 255.0))
        return self.head(torch.cat([f.mean((2, 3, 4)), f.amax((2, 3, 4))], 1))[:, 0]


def _scans(part_dir: Path, keys: list[str], kinds: set[str] | None) -> tuple[Tensor, NDArray[np.int64]]:
    """uint8 scans `[S, 1, D, H, W]` of the given kinds and the index of their study in `keys`."""
    table = pd.read_parquet(part_dir / "scans.parquet")
    table = table[table["study_key"].isin(keys)]
    if kinds is not None:
        table = table[table["kind"].isin(kinds)]
    if table.empty:
        raise SystemExit(f"{part_dir}: no scans of kind(s) {sorted(kinds or [])} in the labelled studies")
    position = {k: i for i, k in enumerate(keys)}
    volumes = [torch.from_numpy(np.load(part_dir / str(p))) for p in table["path"]]
    return torch.stack(volumes).unsqueeze(1), np.array([position[k] for k in table["study_key"]])


@dataclass(frozen=True)
class TaskData:
    """One task's scans: training scans and silver labels, benchmark scans, their study and its ground truth."""

    x_train: Tensor
    y_train: Tensor
    x_bench: Tensor
    bench_owner: NDArray[np.int64]
    truth: NDArray[np.int64]


def load_task(task: str, silver_all: pd.DataFrame, truth_all: pd.DataFrame, args: argparse.Namespace) -> TaskData:
    """A task `FINDING:KINDS` from the ingested corpus, the silver label matrix and the benchmark's ground truth."""
    finding, sep, kind_text = task.partition(":")
    if not sep or finding not in DemoBenchmark.CLASSES[1:]:
        raise SystemExit(f"task {task!r}: expected FINDING:KINDS with FINDING one of {DemoBenchmark.CLASSES[1:]}")
    kinds = None if kind_text == "all" else set(kind_text.split(","))
    silver = silver_all[finding]
    silver = silver[silver.isin([0, 1])]
    x_train, owner = _scans(args.ingest / "train", list(silver.index), kinds)
    truth = truth_all[finding]
    x_bench, bench_owner = _scans(args.ingest / "benchmark", list(truth.index), kinds)
    y_train = torch.tensor(silver.to_numpy()[owner], dtype=torch.float32)
    return TaskData(x_train, y_train, x_bench, bench_owner, truth.to_numpy())


def run(data: TaskData, norm: str, seed: int, args: argparse.Namespace) -> tuple[float, float]:
    """(benchmark AUC, seconds) of one training run."""
    x_train, y_train, x_bench = data.x_train, data.y_train, data.x_bench
    torch.manual_seed(seed)
    model = ScanDetector(NORMS[norm])
    steps = args.epochs * (len(x_train) // args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps)
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(steps):
        idx = rng.choice(len(x_train), args.batch, replace=False)
        batch = x_train[idx].flip(-1) if rng.random() < 0.5 else x_train[idx]
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch), y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        scores = torch.cat([model(x_bench[i : i + 16]) for i in range(0, len(x_bench), 16)]).numpy()
    study = np.full(len(data.truth), -np.inf)
    np.maximum.at(study, data.bench_owner, scores)
    seen = np.isfinite(study)
    return float(roc_auc_score(data.truth[seen], study[seen])), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", action="append", help=f"FINDING:KINDS (repeatable; default {DEFAULT_TASKS})")
    parser.add_argument("--ingest", type=Path, default=Path("outputs/ingest"))
    parser.add_argument("--labels", type=Path, default=Path("outputs/labels"))
    parser.add_argument("--ground-truth", type=Path, default=Path("data/ground_truth/benchmark_labels.csv"))
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, default=3, help="runs per cell (seeds 0..N-1): mean and spread")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = " | ".join(f"{n} AUC (mean +- sd over {args.seeds} seeds)" for n in NORMS)
    print(f"| task | train scans (positive) | {names} | s per run |")
    print(f"|---|---:|{'---:|' * len(NORMS)}---:|")
    silver_table = pd.read_parquet(args.labels / "train" / "labels.parquet")  # read once for all tasks
    silver_all = to_matrix(silver_table, sorted(silver_table["finding"].unique())).astype("float32")
    truth_all = DemoBenchmark(args.ingest / "benchmark", args.ground_truth).labels()
    for task in args.task or DEFAULT_TASKS:
        data = load_task(task, silver_all, truth_all, args)
        cells, seconds = [], []
        for norm in NORMS:
            runs = np.array([run(data, norm, seed, args) for seed in range(args.seeds)])
            cells.append(f"{runs[:, 0].mean():.3f} +- {runs[:, 0].std():.3f}")
            seconds.append(f"{runs[:, 1].mean():.0f}")
        counts = f"{len(data.y_train)} ({int(data.y_train.sum())})"
        print(f"| {task} | {counts} | {' | '.join(cells)} | {'/'.join(seconds)} |", flush=True)


if __name__ == "__main__":
    main()
