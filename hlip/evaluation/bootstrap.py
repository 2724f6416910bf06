"""Percentile bootstrap confidence intervals over studies.

Each resample draws N study rows with replacement (seeded) and recomputes the statistic; thresholds stay fixed
(chosen once, before resampling). Resamples where the statistic is undefined (e.g. AUC of a label with no
positive drawn) are ignored by the percentiles.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bootstrap_ci(
    statistic: Callable[[np.ndarray], dict[str, float]],
    n: int,
    n_boot: int,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of every value `statistic(rows)` returns.

    Args:
        statistic: Takes row indices `[N]` (with repeats) and returns named values.
        n: Number of rows (studies).
        n_boot: Resamples; 0 returns NaN intervals.
        seed: Seed of the resampling.
        ci: Confidence level, e.g. 0.95 for the 2.5th and 97.5th percentiles.

    Returns:
        `{name: (low, high)}`.
    """
    names = list(statistic(np.arange(n)))
    if n_boot <= 0 or n == 0:
        return {name: (float("nan"), float("nan")) for name in names}
    rng = np.random.default_rng(seed)
    draws = np.full((n_boot, len(names)), np.nan)
    for b in range(n_boot):
        values = statistic(rng.integers(0, n, size=n))
        draws[b] = [values[name] for name in names]
    alpha = (1.0 - ci) / 2.0
    out: dict[str, tuple[float, float]] = {}
    for j, name in enumerate(names):
        column = draws[:, j][np.isfinite(draws[:, j])]
        if column.size == 0:
            out[name] = (float("nan"), float("nan"))
        else:
            low, high = np.percentile(column, [100 * alpha, 100 * (1 - alpha)])
            out[name] = (float(low), float(high))
    return out
