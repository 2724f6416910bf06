"""Evaluation plots as PNG files (matplotlib, Agg backend) and the tables behind them (for DVC plots).

Every function takes plain arrays and a path, writes one PNG and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(width: float = 6.0, height: float = 5.0) -> Figure:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    return path


def roc_table(y_true: np.ndarray, scores: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """ROC points of every label with both classes present: columns `label, fpr, tpr, threshold`."""
    from sklearn.metrics import roc_curve

    frames = []
    for c, name in enumerate(labels):
        y = np.asarray(y_true)[:, c]
        if y.min() == y.max():
            continue
        fpr, tpr, thr = roc_curve(y, np.asarray(scores)[:, c])
        frames.append(pd.DataFrame({"label": name, "fpr": fpr, "tpr": tpr, "threshold": thr}))
    return (
        pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["label", "fpr", "tpr", "threshold"])
    )


def plot_roc(table: pd.DataFrame, aucs: Mapping[str, float], path: Path, title: str) -> Path:
    """One ROC curve per label (legend with its AUC) and the chance diagonal."""
    fig = _figure()
    ax = fig.add_subplot()
    for name, rows in table.groupby("label", sort=False):
        ax.plot(rows["fpr"], rows["tpr"], lw=1.5, label=f"{name} ({aucs.get(str(name), float('nan')):.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(fontsize=7, loc="lower right", title="AUC", title_fontsize=7)
    return _save(fig, path)


def plot_confusion(matrix: np.ndarray, labels: Sequence[str], path: Path, title: str) -> Path:
    """Confusion matrix with counts (rows: truth, columns: prediction)."""
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, labels, fontsize=8)
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in ticks:
        for j in ticks:
            ax.text(
                j,
                i,
                str(matrix[i, j]),
                ha="center",
                va="center",
                color="white" if matrix[i, j] > threshold else "black",
                fontsize=8,
            )
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return _save(fig, path)


def plot_recall_curves(curves: Mapping[str, Mapping[int, float]], path: Path, title: str) -> Path:
    """Recall@K against K, one line per retrieval direction (log-scaled K)."""
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot()
    for direction, values in curves.items():
        ks = sorted(values)
        ax.plot(ks, [values[k] for k in ks], marker="o", label=direction)
    ax.set_xscale("log")
    ax.set(xlabel="K", ylabel="Recall@K", ylim=(0, 1.02), title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def reliability_table(y_true: np.ndarray, probabilities: np.ndarray, bins: int) -> pd.DataFrame:
    """Reliability of probabilities pooled over labels: per equal-width bin, mean predicted probability
    (`confidence`), observed frequency of the label (`frequency`) and `count`; empty bins left out."""
    p = np.asarray(probabilities, np.float64).ravel()
    y = np.asarray(y_true, np.float64).ravel()
    index = np.clip((p * bins).astype(int), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        if members.any():
            rows.append(
                {"bin": b, "confidence": p[members].mean(), "frequency": y[members].mean(), "count": int(members.sum())}
            )
    return pd.DataFrame(rows, columns=["bin", "confidence", "frequency", "count"])


def expected_calibration_error(table: pd.DataFrame) -> float:
    """ECE: count-weighted mean |confidence - frequency| over the bins of `reliability_table`."""
    if table.empty:
        return float("nan")
    weights = table["count"] / table["count"].sum()
    return float((weights * (table["confidence"] - table["frequency"]).abs()).sum())


def plot_calibration(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Reliability diagram: observed frequency against mean predicted probability per bin."""
    fig = _figure(5.0, 5.0)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect")
    ax.plot(table["confidence"], table["frequency"], marker="o", label="model")
    ax.set(xlabel="predicted probability", ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)
