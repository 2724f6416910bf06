"""A tiny synthetic ingest-like part folder for tests and benchmarks (no DICOM, no ingestion).

`write_synthetic_part(dir, n_studies)` writes `studies.parquet`, `scans.parquet`, `reports.parquet` and uint8
volumes `[D, H, W]` in the layout ingestion produces, plus the long labels table the label stage produces. A
study with finding `k` has a bright cube in its scans of kind `KINDS[k]` and says so in its report, so a model
can learn something in a few steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

KINDS = ("t1", "t2", "flair", "dwi")
FINDINGS = ("lesion_a", "lesion_b")
PLANES = ("axial", "coronal", "sagittal")


def write_synthetic_part(
    out: str | Path,
    n_studies: int = 12,
    *,
    shape: tuple[int, int, int] = (16, 32, 32),
    max_scans: int = 4,
    min_scans: int = 1,
    seed: int = 0,
) -> pd.DataFrame:
    """Write a part folder under `out` and return its long labels table (`study_key`, `finding`, `value`,
    `evidence`); study `i` has `min_scans + i % (max_scans - min_scans + 1)` scans, study 0 has no report, the
    last is not `ok`."""
    if not 1 <= min_scans <= max_scans:
        raise ValueError(f"need 1 <= min_scans <= max_scans, got {min_scans} and {max_scans}")
    out = Path(out)
    rng = np.random.default_rng(seed)
    studies, scans, reports, labels = [], [], [], []
    for i in range(n_studies):
        key = f"study{i:04d}"
        present = [bool((i >> k) & 1) for k in range(len(FINDINGS))]
        n = min_scans + i % (max_scans - min_scans + 1)
        for j in range(n):
            kind = KINDS[(i + j) % len(KINDS)]
            volume = rng.integers(0, 60, size=shape, dtype=np.uint8)
            for k, on in enumerate(present):
                if on and kind in (KINDS[k], KINDS[k + 2]):
                    d, h, w = (s // 4 for s in shape)
                    volume[d : 2 * d, h : 2 * h, w * (1 + k) : w * (2 + k)] = 250
            rel = Path("volumes") / key / f"scan{j}.npy"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            np.save(out / rel, volume)
            scans.append({"study_key": key, "series_key": f"{key}s{j}", "scan_key": f"{key}c{j}", "kind": kind,
                          "plane": PLANES[j % 3], "path": rel.as_posix(), "shape": list(shape)})  # fmt: skip
        studies.append({"study_key": key, "status": "ok" if i < n_studies - 1 else "failed", "n_scans": n,
                        "has_report": i != 0})  # fmt: skip
        words = [f"{name.replace('_', ' ')} {'present' if on else 'absent'}." for name, on in zip(FINDINGS, present,
                 strict=True)]  # fmt: skip
        if i != 0:
            text = f"Patient: [NAME]   MRN: [ID]\nFindings:\n{' '.join(w.capitalize() for w in words)}\n"
            reports.append({"study_key": key, "report_key": f"r{i}", "text": text + "Electronically [NAME]\n"})
        for name, on in zip(FINDINGS, present, strict=True):
            value = -1 if i % 5 == 4 and name == FINDINGS[0] else int(on)
            labels.append(
                {"study_key": key, "finding": name, "value": value, "evidence": "synthetic", "backend": "synthetic"}
            )
    out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(studies).to_parquet(out / "studies.parquet")
    pd.DataFrame(scans).to_parquet(out / "scans.parquet")
    pd.DataFrame(reports).to_parquet(out / "reports.parquet")
    return pd.DataFrame(labels)


def write_training_folder(
    root: str | Path,
    n_studies: int = 14,
    *,
    max_scans: int = 2,
    min_scans: int = 1,
    seed: int = 0,
    shape: tuple[int, int, int] = (16, 32, 32),
    tiny_bert: bool = True,
) -> Path:
    """What `pretrain` reads, under `root`: `ingest/train` (a synthetic part of `shape` volumes),
    `labels/train/labels.parquet` and, with `tiny_bert`, a tiny BERT in `bert/` (point
    `model_overrides.text.model_dir` at it). Returns `root`."""
    root = Path(root)
    labels = write_synthetic_part(root / "ingest" / "train", n_studies=n_studies, shape=shape, max_scans=max_scans,
                                  min_scans=min_scans, seed=seed)  # fmt: skip
    (root / "labels" / "train").mkdir(parents=True, exist_ok=True)
    labels.to_parquet(root / "labels" / "train" / "labels.parquet")
    if tiny_bert:
        from testkit.tiny_bert import write_tiny_bert

        write_tiny_bert(root / "bert")
    return root


def tiny_pretrain_block(folder: str | Path, out: str | Path, *, max_scans: int = 2, **overrides: Any) -> dict[str, Any]:
    """A `pretrain` params block for hlip-tiny on a `write_training_folder` folder: 2 + 2 epochs, batch 4, one
    thread, a checkpoint after every optimizer step; top-level keys in `overrides` replace the defaults."""
    folder = Path(folder)
    block: dict[str, Any] = {
        "model": "hlip-tiny",
        "model_overrides": {"text": {"model_dir": str(folder / "bert"), "context_length": 16}},
        "data": {
            "ingest_dir": str(folder / "ingest"),
            "labels_dir": str(folder / "labels"),
            "scans": {"mode": "max_n", "max_scans": max_scans},
        },
        "warmup": {"epochs": 2, "lr": 2e-3, "warmup_steps": 2, "stem_supervision": 1.0},  # the shipped stage A
        "contrastive": {"epochs": 2, "lr": 2e-3, "warmup_steps": 2},
        "batch_size": 4,
        "workers": 0,
        "threads": 1,
        "checkpoint_every": 1,
        "keep_last": 2,
        "out": str(out),
    }
    block.update(overrides)
    return block
