"""Linear probe: logistic regression on frozen, normalised study embeddings.

Multiclass: one multinomial model. Multilabel: one binary model per label (one-vs-rest). The inverse
regularisation C is chosen by stratified K-fold cross-validation (log loss) on the training rows only
(`LogisticRegressionCV`). Where cross-validation cannot run, the score is the training prevalence, a constant: a
multilabel label whose training rows hold fewer than 2 of either class, and a multiclass fit where no class has 2
training rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ProbeResult:
    """Scores `[M, C]` of the evaluation rows and the C chosen per model (one entry, or one per label)."""

    scores: np.ndarray
    chosen_c: tuple[float, ...]


def probe_scores(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_eval: np.ndarray,
    task: str,
    cs: Sequence[float],
    folds: int = 5,
    seed: int = 0,
) -> ProbeResult:
    """Fit on `(x_train [N, E], y_train [N, C] 0/1)` and score `x_eval [M, E]`.

    Returns:
        Multiclass: class probabilities. Multilabel: per-label probability of presence.
    """
    y = np.asarray(y_train, bool)
    if task == "multiclass":
        target = y.argmax(1)
        counts = np.bincount(target, minlength=y.shape[1])
        scores = np.zeros((x_eval.shape[0], y.shape[1]))
        if np.count_nonzero(counts) < 2 or counts.max() < 2:
            scores[:] = counts / max(len(target), 1)
            return ProbeResult(scores, ())
        model = _fit(x_train, target, cs, folds, seed)
        scores[:, model.classes_] = model.predict_proba(x_eval)
        return ProbeResult(scores, (float(np.ravel(model.C_)[0]),))
    scores = np.zeros((x_eval.shape[0], y.shape[1]))
    chosen: list[float] = []
    for c in range(y.shape[1]):
        positives = int(y[:, c].sum())
        if min(positives, len(y) - positives) < 2:
            scores[:, c] = positives / max(len(y), 1)
            chosen.append(float("nan"))
            continue
        model = _fit(x_train, y[:, c].astype(int), cs, folds, seed)
        scores[:, c] = model.predict_proba(x_eval)[:, list(model.classes_).index(1)]
        chosen.append(float(np.ravel(model.C_)[0]))
    return ProbeResult(scores, tuple(chosen))


def out_of_fold_scores(
    x: np.ndarray, y: np.ndarray, task: str, cs: Sequence[float], folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Cross-fitted probe scores `[N, C]` of the training rows themselves (each row scored by a probe that did not
    see it), for choosing thresholds without touching test rows."""
    from sklearn.model_selection import KFold

    n_splits = max(2, min(folds, len(x) // 2))
    out = np.zeros(np.asarray(y).shape)
    for fit_rows, held_rows in KFold(n_splits, shuffle=True, random_state=seed).split(x):
        out[held_rows] = probe_scores(x[fit_rows], y[fit_rows], x[held_rows], task, cs, folds, seed).scores
    return out


def _fit(x: np.ndarray, target: np.ndarray, cs: Sequence[float], folds: int, seed: int):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    rarest = min(int(c) for c in np.bincount(target) if c > 0)
    n_splits = max(2, min(folds, rarest))
    model = LogisticRegressionCV(
        Cs=list(cs),
        cv=StratifiedKFold(n_splits, shuffle=True, random_state=seed),
        scoring="neg_log_loss",
        l1_ratios=(0.0,),
        use_legacy_attributes=False,
        max_iter=2000,
    )
    return model.fit(x, target)
