"""Decision thresholds and the validation split they are chosen on.

A threshold is chosen per label on *validation* rows by the criterion of fVLM's `find_threshold` (also used by
HLIP's CT-RATE evaluation): the ROC point closest to the top-left corner, minimising
`sqrt((1 - TPR)^2 + FPR^2)`. The peers scan a fixed grid `linspace(0, 1, 100)` with `score > t`; here the
candidates are the validation scores themselves with `score >= t` (exact ROC points), which also works for
cosine scores outside [0, 1]. Under the peers' protocol the same rule runs on the test rows.
"""

from __future__ import annotations

import numpy as np

from hlip.evaluation.metrics import binary_counts


def roc_corner_threshold(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Threshold on `scores [N]` whose ROC point (FPR, TPR) is closest to (0, 1); 0.5 for a one-class label.

    Ties go to the larger threshold (fewer positives predicted).
    """
    y = np.asarray(y_true, bool)
    s = np.asarray(scores, np.float64)
    if y.all() or not y.any():
        return 0.5
    candidates = np.unique(s)[::-1]  # descending: first minimum = largest threshold
    pred = s[:, None] >= candidates[None, :]  # [N, T]
    tp, fp, fn, tn = binary_counts(np.repeat(y[:, None], len(candidates), 1), pred)
    distance = np.round(np.hypot(1.0 - tp / (tp + fn), fp / (fp + tn)), 12)  # exact ties -> larger threshold
    return float(candidates[int(np.argmin(distance))])


def choose_thresholds(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """One `roc_corner_threshold` per column of `[N, C]`."""
    return np.array([roc_corner_threshold(y_true[:, c], scores[:, c]) for c in range(y_true.shape[1])])


def validation_split(y_true: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded, stratified split of the rows of `y_true [N, C]` into disjoint (validation, test) index arrays.

    Rows are stratified by their rarest positive label (multiclass: their class; no positive: its own
    stratum); strata too small to split are pooled. Each stratum sends `round(val_fraction * size)` rows, at
    least one and never all, to validation.

    Raises:
        ValueError: Fewer than 4 rows.
    """
    y = np.asarray(y_true, bool)
    n = y.shape[0]
    if n < 4:
        raise ValueError(f"need at least 4 studies to split off a validation set, got {n}")
    prevalence = y.sum(0)
    strata = np.full(n, -1)
    for i in range(n):
        positives = np.flatnonzero(y[i])
        if positives.size:
            strata[i] = positives[np.argmin(prevalence[positives])]
    sizes = {s: int((strata == s).sum()) for s in np.unique(strata)}
    pooled = np.array([s if sizes[s] >= 2 else -2 for s in strata])
    rng = np.random.default_rng(seed)
    val: list[int] = []
    for s in np.unique(pooled):
        members = rng.permutation(np.flatnonzero(pooled == s))
        if len(members) < 2:
            continue
        k = min(max(1, round(val_fraction * len(members))), len(members) - 1)
        val.extend(members[:k].tolist())
    val_idx = np.sort(np.asarray(val, dtype=np.int64))
    test_idx = np.setdiff1d(np.arange(n), val_idx)
    return val_idx, test_idx
