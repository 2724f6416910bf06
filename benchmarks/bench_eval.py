"""Seconds to evaluate a model on a benchmark: computing the embeddings vs re-evaluating from the cache.

    .venv/bin/python benchmarks/bench_eval.py [--studies 100] [--model hlip-tiny] [--n-boot 1000]

A synthetic multiclass benchmark (1-4 scans of 32x64x64 per study, the demo's scan size) and a freshly
initialised model (random text tower of the config, exported to a temporary folder) are evaluated three times:
cold (embeddings computed), warm with new prompt templates (study embeddings cached, the new sentences
encoded) and warm with unchanged prompts (nothing computed, the model never loaded).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from hlip.evaluation.benchmarks.base import Benchmark, Task
from hlip.evaluation.config import EvaluateConfig
from hlip.evaluation.runner import run_evaluation

CLASSES = ("normal", "stroke", "glioma", "meningioma", "metastasis")


class RandomStudies(Benchmark):
    """`n` random studies, balanced over the demo classes, with short reports."""

    name: ClassVar[str] = "random"
    task: ClassVar[Task] = "multiclass"
    prompts: ClassVar[str] = "brain_mri_demo"

    def __init__(self, n: int, size: tuple[int, int, int]) -> None:
        self.ids = [f"s{i:04d}" for i in range(n)]
        self.size = size
        y = np.eye(len(CLASSES), dtype=int)[np.arange(n) % len(CLASSES)]
        self._labels = pd.DataFrame(y, index=self.ids, columns=list(CLASSES))
        self._reports = pd.Series(
            {i: f"Findings: {CLASSES[k % 5]} pattern in study {k}." for k, i in enumerate(self.ids)}
        )

    @property
    def classes(self) -> tuple[str, ...]:
        return CLASSES

    def study_ids(self) -> list[str]:
        return list(self.ids)

    def labels(self) -> pd.DataFrame:
        return self._labels.copy()

    def reports(self) -> pd.Series | None:
        return self._reports

    def load(self, study_id: str) -> np.ndarray:
        k = self.ids.index(study_id)
        rng = np.random.default_rng(k)
        return rng.random((1 + k % 4, *self.size), dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--model", default="hlip-tiny")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from hlip.models import create_model
    from hlip.models.export import save_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = create_model(args.model)
        model_dir = save_model(model, root / "model")
        size = model.cfg.vision.image_size if args.model == "hlip-tiny" else (32, 64, 64)
        del model
        base = EvaluateConfig(n_boot=args.n_boot, device="cpu")
        runs = [
            ("cold: embeddings computed", base),
            ("warm: new templates", EvaluateConfig(n_boot=args.n_boot, device="cpu", templates=("Brain MRI: {}.",))),
            ("warm: same prompts", EvaluateConfig(n_boot=args.n_boot, device="cpu", templates=("Brain MRI: {}.",))),
        ]
        rows = []
        for label, config in runs:
            bench = RandomStudies(args.studies, tuple(size))
            start = time.perf_counter()
            result = run_evaluation(model_dir, bench, config, root / "out", root / "cache")
            rows.append((label, time.perf_counter() - start, result.embeddings_cached))
    print(f"\n{args.studies} studies, model {args.model}, n_boot {args.n_boot}, {args.threads} threads\n")
    print(f"| {'run':28s} | seconds | embeddings |")
    print(f"|{'-' * 30}|---------|------------|")
    for label, seconds, cached in rows:
        print(f"| {label:28s} | {seconds:7.1f} | {'cached' if cached else 'computed':10s} |")


if __name__ == "__main__":
    main()
