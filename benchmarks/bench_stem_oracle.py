"""How much class information can `hlip-demo`'s convolutional stem extract when it is trained on the truth?

The tower's own training sees only report labels and report text. This harness asks a narrower question, the ceiling
of the tokeniser: the stem (`PatchEmbed3D` as `hlip-demo` builds it, with the tower's input normalisation and optional
`foreground_erosion`) -> each scan's strongest (or mean) token -> the maximum per sequence kind (`--pool kind`: 8
slots, as `bench_ablation.py`'s reference pools its statistics; or `any`: the maximum over all scans, kind unknown) ->
BatchNorm -> a linear 5-way head; or (`--pool scan_mlp`, kind unknown, the stem head `pretrain.warmup.stem_head:
scan_mlp` trains with) each scan's token -> BatchNorm -> a small MLP -> per-scan logits, the study's the maximum over
its scans. Each is trained with cross-entropy on the corpus generator's ground-truth class of the training studies and
scored (macro one-vs-rest AUC) after every epoch on a fixed fifth of the training studies held out by a hash of their
key (`--score-on heldout`, the default: design choices made with this harness never see the benchmark) or on the
benchmark's 140 test studies (`--score-on test`, fit on all 1,100).

Usage (from the repository root, after `dvc repro` has ingested the demo corpus):

    .venv/bin/python benchmarks/bench_stem_oracle.py --epochs 6 --erosion 0 3
    .venv/bin/python benchmarks/bench_stem_oracle.py --epochs 5 --erosion 3 --pool any scan_mlp   # session 40

prints one row per setting and epoch, side by side. Findings: docs/demo-model.md, sessions 23, 24 and 40.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hlip.numerics import pin_portable_cpu_numerics  # noqa: E402

pin_portable_cpu_numerics()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from numpy.typing import NDArray  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from hlip.data.deid import HashKey  # noqa: E402
from hlip.evaluation.thresholds import validation_split  # noqa: E402
from hlip.models.factory import get_model_config  # noqa: E402
from hlip.models.patch_embed import PatchEmbed3D  # noqa: E402
from hlip.models.stem_head import SCAN_MLP_HIDDEN  # noqa: E402
from hlip.models.visual import erode_foreground, zscore_foreground  # noqa: E402


def _ablation() -> Any:
    """`bench_ablation.py` (the study loader, ground truth and kinds), imported by path."""
    spec = importlib.util.spec_from_file_location("bench_ablation", Path(__file__).with_name("bench_ablation.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_ablation"] = module
    spec.loader.exec_module(module)
    return module


ba = _ablation()

Study = tuple[NDArray[np.uint8], list[int]]  # volumes [N, D, H, W] and each scan's kind slot (-1: not pooled)


def load_study(loader: Any, key: str) -> Study:
    rows = loader.chosen(key)
    volumes = np.stack([np.load(loader.part_dir / str(p)) for p in rows["path"]])
    kinds = [ba.reference_kind(k, b) for k, b in zip(rows["kind"], rows["b_value"], strict=True)]
    return volumes, [ba.REFERENCE_KINDS.index(k) if k in ba.REFERENCE_KINDS else -1 for k in kinds]


class StemProbe(nn.Module):
    """`hlip-demo`'s stem, a per-scan token reduction, and per-kind or any-kind max pooling with a linear head, or a
    per-scan MLP whose logits are max-pooled over the study's scans (`scan_mlp`)."""

    def __init__(self, erosion: int, pool: str, token: str) -> None:
        super().__init__()
        vision = get_model_config("hlip-demo").vision
        self.embed = PatchEmbed3D(
            vision.patch_size, vision.width, stem_channels=vision.stem_channels, stem_pool=vision.stem_pool
        )
        self.erosion, self.pool, self.token, self.width = erosion, pool, token, vision.width
        slots = len(ba.REFERENCE_KINDS) if pool == "kind" else 1
        self.norm = nn.BatchNorm1d(slots * vision.width)
        self.head: nn.Module = nn.Linear(slots * vision.width, len(ba.CLASSES))
        if pool == "scan_mlp":  # the widths of `hlip.models.stem_head.StemHead`'s scan_mlp form
            self.head = nn.Sequential(nn.Linear(vision.width, SCAN_MLP_HIDDEN), nn.GELU(),
                                      nn.Linear(SCAN_MLP_HIDDEN, len(ba.CLASSES)))  # fmt: skip

    def forward(self, batch: Sequence[Study]) -> Tensor:
        scans = torch.from_numpy(np.concatenate([v for v, _ in batch])).float().div_(255.0).unsqueeze(1)
        if self.erosion:
            scans = erode_foreground(scans, self.erosion)
        tokens = self.embed(zscore_foreground(scans)).flatten(1, 3)  # [S, T, C]
        per_scan = tokens.amax(1) if self.token == "max" else tokens.mean(1)
        if self.pool == "scan_mlp":
            logits, start, out = self.head(self.norm(per_scan)), 0, []
            for _, kinds in batch:
                out.append(logits[start : start + len(kinds)].amax(0))
                start += len(kinds)
            return torch.stack(out)
        rows, start = [], 0
        for _, kinds in batch:
            feats = per_scan[start : start + len(kinds)]
            start += len(kinds)
            if self.pool == "any":
                rows.append(feats.amax(0))
                continue
            absent = feats.new_zeros(self.width)
            slots = [
                feats[[i for i, k in enumerate(kinds) if k == slot]].amax(0) if slot in kinds else absent
                for slot in range(len(ba.REFERENCE_KINDS))
            ]
            rows.append(torch.cat(slots))
        return self.head(self.norm(torch.stack(rows)))


def macro_auc(model: StemProbe, studies: Sequence[Study], y: NDArray[np.int64]) -> float:
    model.eval()
    with torch.no_grad():
        probs = np.concatenate(
            [torch.softmax(model(studies[i : i + 16]), 1).numpy() for i in range(0, len(studies), 16)]
        )
    model.train()
    scored = [j for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]  # classes with positives and negatives
    return float(np.mean([roc_auc_score(y[:, j], probs[:, j]) for j in scored]))


def run(setting: dict[str, Any], fit: Sequence[Study], y_fit: NDArray[np.int64], test: Sequence[Study],
        y_test: NDArray[np.int64], epochs: int, lr: float, seed: int) -> list[tuple[float, float]]:  # fmt: skip
    """Train one setting; (training cross-entropy, test macro AUC) after each epoch."""
    torch.manual_seed(seed)
    model = StemProbe(**setting)
    steps = epochs * ((len(fit) + 7) // 8)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.05)
    rng, curve = np.random.default_rng(seed), []
    for epoch in range(epochs):
        order, total, started = rng.permutation(len(fit)), 0.0, time.perf_counter()
        for i in range(0, len(order), 8):
            idx = order[i : i + 8]
            loss = nn.functional.cross_entropy(model([fit[j] for j in idx]), torch.from_numpy(y_fit[idx]))
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        curve.append((total / len(fit), macro_auc(model, test, y_test)))
        print(f"  {setting}: epoch {epoch + 1}: train CE {curve[-1][0]:.3f}, test macro AUC {curve[-1][1]:.3f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--erosion", type=int, nargs="+", default=[0, 3], help="foreground_erosion values to compare")
    parser.add_argument("--pool", nargs="+", default=["kind"], choices=["kind", "any", "scan_mlp"])
    parser.add_argument("--token", nargs="+", default=["max"], choices=["max", "mean"])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score-on", choices=["heldout", "test"], default="heldout")
    parser.add_argument("--held-out", type=float, default=0.2, help="share of training studies scored (heldout)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N training studies (a quick check)")
    parser.add_argument("--corpus", type=Path, default=ROOT / "data")
    parser.add_argument("--ingest", type=Path, default=ROOT / "outputs/ingest")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    args = parser.parse_args()
    torch.set_num_threads(2)

    train_truth, bench_truth = ba.truth_by_key(args.corpus, HashKey.from_env("HLIP_DEID_KEY"), 20)
    train, bench = ba.StudyLoader(args.ingest / "train", 8), ba.StudyLoader(args.ingest / "benchmark", 8)
    train_ids = [k for k in sorted(train.scans) if k in train_truth.index][: args.limit or None]
    labels = lambda keys: list(train_truth.loc[keys, "label"].astype(str))  # noqa: E731
    unknown = sorted(set(labels(train_ids)) - set(ba.CLASSES))
    if unknown:
        raise SystemExit(f"training ground truth has classes {unknown} outside {ba.CLASSES}")
    if args.score_on == "heldout":
        scored = ba.held_out(train_ids, args.held_out)
        fit_ids, test_ids = [k for k in train_ids if k not in scored], [k for k in train_ids if k in scored]
        test, y_test = [load_study(train, k) for k in test_ids], ba.one_hot_classes(labels(test_ids))
    else:
        all_ids = [k for k in sorted(bench.scans) if k in bench_truth.index]
        y_all = ba.one_hot_classes([bench_truth[k] for k in all_ids])
        config = ba.EvaluateParams.load(args.params).config
        _, test_rows = validation_split(y_all, config.val_fraction, config.seed)  # evaluate's 140 test studies
        fit_ids, y_test = train_ids, y_all[test_rows]
        test = [load_study(bench, all_ids[i]) for i in test_rows]
    fit, y_fit = [load_study(train, k) for k in fit_ids], ba.one_hot_classes(labels(fit_ids)).argmax(1)
    print(f"{len(fit)} training studies, {len(test)} scored ({args.score_on})", flush=True)

    settings = [{"erosion": e, "pool": p, "token": t} for e in args.erosion for p in args.pool for t in args.token]
    curves = {str(s): run(s, fit, y_fit, test, y_test, args.epochs, args.lr, args.seed) for s in settings}
    print(f"\n| setting | {' | '.join(f'epoch {i + 1}' for i in range(args.epochs))} | best |")
    print(f"|---|{'---:|' * (args.epochs + 1)}")
    for name, curve in curves.items():
        aucs = [auc for _, auc in curve]
        print(f"| {name} | {' | '.join(f'{a:.3f}' for a in aucs)} | {max(aucs):.3f} |")


if __name__ == "__main__":
    main()
