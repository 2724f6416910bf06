"""A synthetic objective: checks a sweep's storage, workers and tracking in seconds, with no training.

`quadratic` reads every numeric override ``x`` as a coordinate and returns ``sum((x - 1)^2)`` plus one for every
categorical value that is not the first choice-like string ``"a"``; it reports ``loss + 1 / (step + 1)`` for
`QUADRATIC_STEPS` steps first, a learning curve that the median pruner can cut short. Minimise it: its optimum is
every numeric value at 1.
"""

from __future__ import annotations

import time
from typing import Any

from hlip.tuning.objective import Report

QUADRATIC_STEPS = 4


def quadratic(overrides: dict[str, Any], report: Report) -> float:
    """The synthetic objective (see the module docstring); deterministic in `overrides`."""
    loss = 0.0
    for value in overrides.values():
        if isinstance(value, bool) or not isinstance(value, int | float):
            loss += 0.0 if value == "a" else 1.0
        else:
            loss += (float(value) - 1.0) ** 2
    for step in range(QUADRATIC_STEPS):
        time.sleep(0.01)  # let the workers interleave
        report(step, loss + 1.0 / (step + 1))
    return loss
