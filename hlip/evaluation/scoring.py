"""Turn one set of scores (zero-shot or probe) into metrics with bootstrap intervals, tables and plots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hlip.evaluation.bootstrap import bootstrap_ci
from hlip.evaluation.config import EvaluateConfig
from hlip.evaluation.metrics import auc_per_label, confusion, headline, per_label, slug
from hlip.evaluation.plots import (
    expected_calibration_error,
    plot_calibration,
    plot_confusion,
    plot_roc,
    reliability_table,
    roc_table,
)

HEADLINE = ("macro_auc", "balanced_accuracy", "f1", "precision", "recall")


@dataclass
class ScoredMethod:
    """Everything one method (e.g. `zero_shot`) contributes to the evaluation's outputs."""

    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    per_label: pd.DataFrame = field(default_factory=pd.DataFrame)
    roc: pd.DataFrame = field(default_factory=pd.DataFrame)
    calibration: pd.DataFrame = field(default_factory=pd.DataFrame)
    plots: list[Path] = field(default_factory=list)


def score_method(
    name: str,
    y_true: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray | None,
    labels: Sequence[str],
    task: str,
    config: EvaluateConfig,
    plot_dir: Path,
    probabilistic: np.ndarray | None = None,
) -> ScoredMethod:
    """Metrics of `scores [N, C]` against `y_true [N, C]` on the evaluation rows, with bootstrap CIs.

    Args:
        name: Method name, the prefix of its metric keys (`zero_shot`, `linear_probe`).
        thresholds: Per-label thresholds (multilabel; chosen beforehand, fixed during the bootstrap).
        probabilistic: `[C]` True where scores are probabilities (only those enter the calibration plot).
    """
    y = np.asarray(y_true).astype(int)
    s = np.asarray(scores, np.float64)
    point = headline(y, s, task, thresholds)
    aucs = auc_per_label(y, s)

    def statistic(rows: np.ndarray) -> dict[str, float]:
        values = headline(y[rows], s[rows], task, thresholds)
        values.update(
            {f"auc.{slug(lbl)}": float(a) for lbl, a in zip(labels, auc_per_label(y[rows], s[rows]), strict=True)}
        )
        return values

    cis = bootstrap_ci(statistic, len(y), config.n_boot, config.seed, config.ci)
    out = ScoredMethod(name)
    for key, value in point.items():
        out.metrics[f"{name}.{key}"] = value
        if key in cis:
            out.metrics[f"{name}.{key}_ci_low"], out.metrics[f"{name}.{key}_ci_high"] = cis[key]
    table = per_label(y, s, labels, thresholds)
    rows = []
    for label, auc in zip(labels, aucs, strict=True):
        key = f"auc.{slug(label)}"
        out.metrics[f"{name}.{key}"] = float(auc)
        low, high = cis.get(key, (float("nan"), float("nan")))
        rows.append({"method": name, "label": label, **table[label], "auc_ci_low": low, "auc_ci_high": high})
    out.per_label = pd.DataFrame(rows)
    out.metrics[f"{name}.n"] = float(len(y))

    out.roc = roc_table(y, s, labels).assign(method=name)
    auc_by_label = {lbl: float(a) for lbl, a in zip(labels, aucs, strict=True)}
    out.plots.append(plot_roc(out.roc, auc_by_label, plot_dir / f"{name}_roc.png", f"{name}: ROC"))
    if task == "multiclass":
        matrix = confusion(y, s)
        out.plots.append(plot_confusion(matrix, labels, plot_dir / f"{name}_confusion.png", f"{name}: confusion"))
    prob = np.ones(len(labels), bool) if probabilistic is None else np.asarray(probabilistic, bool)
    if prob.any():
        if task == "multiclass":  # confidence of the predicted class vs. whether it is right
            conf = s.max(1)
            hit = (s.argmax(1) == y.argmax(1)).astype(float)
            out.calibration = reliability_table(hit, conf, config.calibration_bins)
        else:
            out.calibration = reliability_table(y[:, prob], s[:, prob], config.calibration_bins)
        out.calibration = out.calibration.assign(method=name)
        out.metrics[f"{name}.ece"] = expected_calibration_error(out.calibration)
        out.plots.append(
            plot_calibration(out.calibration, plot_dir / f"{name}_calibration.png", f"{name}: reliability")
        )
    return out
