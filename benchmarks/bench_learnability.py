"""Learnability of small lesions: can a vision config find "a bright sphere somewhere in the brain"?

A controlled stand-in for the demo corpus's question (docs/demo-model.md). Every study has `--scans` scans of
a noisy ellipsoid "brain" at different base intensities. In positive studies (`--prevalence` of the training
set, half of the test set), scan 0 also holds a sphere of `--radius` voxels, `--contrast` grey levels brighter
than the tissue, at a random place inside the brain. The volumes are uint8, 32x64x64, like the demo's.

Side by side for each config, on the same studies:
- **probe at init**: a logistic regression on the randomly initialised tower's study embeddings. Does the
  architecture encode the sphere at all before any training?
- **trained**: the supervised warm-up model (`create_classifier`, BCE, the project's AdamW groups and warm-up +
  cosine schedule). Test AUC and the final training BCE: the label prior is about 0.42 at 15% prevalence.
- **reference**: the maximum of the 3x3x3-smoothed scan 0. A one-line detector, and the ceiling.

    .venv/bin/python benchmarks/bench_learnability.py [--epochs 4] [--config NAME[:JSON overrides] ...]

Default configs: `hlip-demo` as shipped (a strided conv + BatchNorm stem to 8x16x16 patches, foreground z-score),
the session-5 demo (linear 8x16x16 patches, whole-volume z-score), and `hlip-demo` with a one-layer conv stem
max-pooled inside each patch; each with and without the batch-normalised study embedding (`embed_norm`). Every
warm-up head starts at the training prevalence (`HLIPClassifier.init_prior_bias`), as in the pretrain stage.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from numpy.typing import NDArray
from scipy import ndimage
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from hlip.models import create_classifier, create_loss, get_model_config
from hlip.training.optim import create_optimizer
from hlip.training.schedule import warmup_cosine

SHAPE = (32, 64, 64)
STEM = '"stem_channels": [16], "stem_pool": "max"'
LINEAR = '"stem_channels": [], "input_norm": "zscore"'
DEFAULT_CONFIGS = (
    'hlip-demo:{"vision": {"embed_norm": "none"}}',
    "hlip-demo",
    f'hlip-demo:{{"vision": {{{LINEAR}, "embed_norm": "none"}}}}',
    f'hlip-demo:{{"vision": {{{LINEAR}}}}}',
    f'hlip-demo:{{"vision": {{{STEM}, "embed_norm": "none"}}}}',
    f'hlip-demo:{{"vision": {{{STEM}}}}}',
)


def brain_points() -> tuple[NDArray[np.bool_], NDArray[np.int64], tuple[NDArray[np.float32], ...]]:
    """The ellipsoid "brain" mask, the voxels a lesion may centre on (well inside it) and the voxel grid (z, y, x)."""
    zz, yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]].astype(np.float32)
    brain = ((zz - 16) / 13) ** 2 + ((yy - 32) / 26) ** 2 + ((xx - 32) / 22) ** 2 < 1
    inside = np.argwhere(brain[6:26, 12:52, 12:52]) + np.array([6, 12, 12])
    return brain, inside, (zz, yy, xx)


def add_training_arguments(parser: argparse.ArgumentParser, epochs: int) -> None:
    """The options `run_config` reads besides `seed`: `--epochs`, `--batch`, `--lr`."""
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)


def make_studies(n: int, prevalence: float, args: argparse.Namespace, rng: np.random.Generator) -> tuple:
    """`n` studies `uint8 [scans, D, H, W]` and their labels."""
    brain, inside, (zz, yy, xx) = brain_points()
    labels = rng.random(n) < prevalence
    studies = []
    for positive in labels:
        scans = []
        for s in range(args.scans):
            v = np.where(brain, 80.0 + 40.0 * s, 0.0) + rng.normal(0.0, 10.0, SHAPE) * brain
            if positive and s == 0:
                c = inside[rng.integers(len(inside))] + rng.uniform(-0.5, 0.5, 3)
                sphere = ((zz - c[0]) * 0.875) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 < args.radius**2
                v = v + args.contrast * sphere
            scans.append(np.clip(v, 0, 255).astype(np.uint8))
        studies.append(torch.from_numpy(np.stack(scans)))
    return studies, labels


def embed(model: torch.nn.Module, studies: list[torch.Tensor], batch: int = 25) -> NDArray[np.float32]:
    model.eval()
    with torch.no_grad():
        out = [model(torch.stack(studies[i : i + batch])[:, :, None]) for i in range(0, len(studies), batch)]
    return torch.cat(out).numpy()


def run_config(spec: str, train: tuple, test: tuple, args: argparse.Namespace) -> dict[str, object]:
    name, _, overrides = spec.partition(":")
    cfg = get_model_config(name, json.loads(overrides) if overrides else None)
    torch.manual_seed(args.seed)
    model = create_classifier(cfg, 1)
    model.init_prior_bias([float(train[1].mean())])  # as the pretrain stage does
    (xtr, ytr), (xte, yte) = train, test
    probe = LogisticRegression(C=1.0, max_iter=5000).fit(embed(model.visual, xtr), ytr)
    probe_auc = roc_auc_score(yte, probe.decision_function(embed(model.visual, xte)))

    steps_per_epoch = len(xtr) // args.batch
    optimizer = create_optimizer(model, args.lr, 0.05)
    scheduler = warmup_cosine(optimizer, 10, args.epochs * steps_per_epoch, args.lr)
    bce = create_loss("bce")
    rng = np.random.default_rng(args.seed)
    losses: list[float] = []
    start = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        order = rng.permutation(len(xtr))
        losses = []
        for step in range(steps_per_epoch):
            idx = order[step * args.batch : (step + 1) * args.batch]
            out = model(torch.stack([xtr[i] for i in idx])[:, :, None])
            loss = bce(**out, labels=torch.tensor(ytr[idx], dtype=torch.float32)[:, None])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.detach()))
    seconds = (time.perf_counter() - start) / max(args.epochs, 1)
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(torch.stack(xte[i : i + 25])[:, :, None])["logits"] for i in range(0, len(xte), 25)])
    return {"config": spec, "probe_auc": probe_auc, "trained_auc": roc_auc_score(yte, logits[:, 0].numpy()),
            "train_bce": float(np.mean(losses)) if losses else float("nan"), "s_per_epoch": seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", help="NAME or NAME:JSON-overrides (repeatable)")
    parser.add_argument("--train", type=int, default=300)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--prevalence", type=float, default=0.15)
    parser.add_argument("--scans", type=int, default=3)
    parser.add_argument("--radius", type=float, default=3.0, help="sphere radius in voxels")
    parser.add_argument("--contrast", type=float, default=60.0, help="grey levels above the tissue (noise sd 10)")
    add_training_arguments(parser, epochs=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    train = make_studies(args.train, args.prevalence, args, rng)
    test = make_studies(args.test, 0.5, args, rng)
    smooth_max = [ndimage.uniform_filter(s[0].numpy().astype(np.float32), 3).max() for s in test[0]]
    reference = roc_auc_score(test[1], smooth_max)
    print(f"{args.train} training studies ({train[1].sum()} positive), {args.test} test studies; sphere radius "
          f"{args.radius}, contrast {args.contrast}; {args.epochs} epochs at lr {args.lr}", flush=True)  # fmt: skip
    rows = []
    for spec in args.config or DEFAULT_CONFIGS:
        r = run_config(spec, train, test, args)
        rows.append(r)
        print(f"  {spec}: probe {r['probe_auc']:.3f}, trained {r['trained_auc']:.3f}, bce {r['train_bce']:.3f}",
              flush=True)  # fmt: skip
    print("\n| config | test AUC, probe at init | test AUC, trained | train BCE | s/epoch |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| `{r['config']}` | {r['probe_auc']:.3f} | {r['trained_auc']:.3f} | {r['train_bce']:.3f} "
              f"| {r['s_per_epoch']:.0f} |")  # fmt: skip
    print(f"| reference: max of the smoothed scan 0 | | {reference:.3f} | | |")


if __name__ == "__main__":
    main()
