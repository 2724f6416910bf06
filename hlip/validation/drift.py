"""Distribution drift of categorical manifest columns against the last accepted run.

A profile is, per tracked column, the share of each category (e.g. scan kinds, planes, quarantine reasons).
Drift between two profiles is the total variation distance, 0 (identical) to 1 (disjoint), per column.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

Profile = dict[str, dict[str, float]]


def profile(tables: Mapping[str, pd.DataFrame], columns: Mapping[str, tuple[str, ...]]) -> Profile:
    """Category shares of `columns` (table -> column names) as ``{"table.column": {category: share}}``."""
    out: Profile = {}
    for table, names in columns.items():
        frame = tables.get(table)
        if frame is None:
            continue
        for name in names:
            if name in frame.columns and len(frame):
                shares = frame[name].astype(str).value_counts(normalize=True).sort_index()
                out[f"{table}.{name}"] = {str(k): round(float(v), 6) for k, v in shares.items()}
    return out


def total_variation(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Total variation distance between two categorical distributions."""
    keys = set(a) | set(b)
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in keys)


@dataclass(frozen=True)
class Drift:
    """Drift of one column against the baseline."""

    column: str
    distance: float
    baseline: dict[str, float]
    current: dict[str, float]


def compare(current: Profile, baseline: Profile) -> list[Drift]:
    """Per-column drift for columns present in both profiles, largest first."""
    shared = [c for c in current if c in baseline]
    drifts = [Drift(c, round(total_variation(current[c], baseline[c]), 6), baseline[c], current[c]) for c in shared]
    return sorted(drifts, key=lambda d: -d.distance)


def load_profile(path: Path) -> Profile | None:
    """The saved baseline profile, or None when there is no accepted run yet."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return {str(k): {str(c): float(s) for c, s in v.items()} for k, v in data.items()}


def save_profile(path: Path, prof: Profile) -> None:
    """Save `prof` as the new baseline."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(prof, indent=2, sort_keys=True) + "\n")
