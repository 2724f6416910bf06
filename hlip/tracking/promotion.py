"""Champion/challenger promotion of registered model versions (MLflow aliases, no deprecated stages).

Every new version gets the alias `challenger`. The alias `champion` moves to it only when there is no champion
yet, or when the challenger beats the champion on the configured metric by more than the margin:
``challenger - champion > margin`` (``champion - challenger > margin`` when lower is better). The decision is
recorded either way, as `promotion.*` tags on the version and as a JSON file:

```json
{"name": "hlip-demo", "version": "3", "metric": "zero_shot.macro_auc", "margin": 0.0, "greater_is_better": true,
 "challenger_value": 0.71, "champion_version": "2", "champion_value": 0.74, "promoted": false,
 "reason": "challenger 0.7100 does not beat champion v2 0.7400 by more than 0.0000", "decided_at": "..."}
```

Metric values are read from the versions' `metric.<name>` tags (set at registration), so a decision needs nothing
but the registry. Values measured on different benchmarks are not compared: when both versions carry a
`benchmark.fingerprint` tag (the evaluated studies and labels, `hlip.evaluation.fingerprint`) and they differ, the
champion stays and the reason says so (evaluate the champion on the new benchmark, or move the alias by hand).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION, CHALLENGER = "champion", "challenger"
METRIC_TAG = "metric."
BENCHMARK_TAG = "benchmark.fingerprint"
TAG_PREFIX = "promotion."


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of one promotion gate.

    Attributes:
        name: Registered model name.
        version: The challenger version.
        metric: Metric compared.
        margin: Required improvement (strictly more than this).
        greater_is_better: Direction of the metric.
        challenger_value: The challenger's value.
        champion_version: The champion before the decision (None when there was none).
        champion_value: Its value (None when there was no champion or it has no value of `metric`).
        promoted: Whether `champion` now points at the challenger.
        reason: One readable sentence.
        decided_at: UTC time of the decision (ISO 8601).
    """

    name: str
    version: str
    metric: str
    margin: float
    greater_is_better: bool
    challenger_value: float
    champion_version: str | None
    champion_value: float | None
    promoted: bool
    reason: str
    decided_at: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)

    def tags(self) -> dict[str, str]:
        """`promotion.*` version tags (MLflow tag values are strings; absent values are "none")."""
        return {f"{TAG_PREFIX}{k}": "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in self.as_dict().items() if k not in ("name", "version")}  # fmt: skip


def decide(
    challenger: float, champion: float | None, margin: float, greater_is_better: bool = True, label: str = "champion"
) -> tuple[bool, str]:
    """The pure gate: (promote?, reason); `label` names the champion in the reason. No champion value: promote."""
    if champion is None:
        return True, f"{label} has no value to compare with: challenger {challenger:.4f} promoted"
    gain = challenger - champion if greater_is_better else champion - challenger
    if gain > margin and not math.isclose(gain, margin, rel_tol=0.0, abs_tol=1e-9):  # 0.75 - 0.70 is no win by 0.05
        return True, f"challenger {challenger:.4f} beats {label} {champion:.4f} by {gain:.4f} > margin {margin:.4f}"
    return False, f"challenger {challenger:.4f} does not beat {label} {champion:.4f} by more than {margin:.4f}"


def promote(
    name: str,
    version: str | int,
    metric: str,
    margin: float = 0.0,
    greater_is_better: bool = True,
    client: MlflowClient | None = None,
) -> PromotionDecision:
    """Alias `version` as challenger, run the gate against the current champion, move `champion` if it passes.

    Raises:
        ValueError: The challenger version has no `metric.<metric>` tag.
    """
    from mlflow import MlflowClient

    client = client or MlflowClient()
    version = str(version)
    challenger_tags = _tags(client, name, version)
    challenger = _metric(challenger_tags, metric)
    if challenger is None:
        raise ValueError(f"model {name} v{version} has no tag {METRIC_TAG}{metric}: cannot run the promotion gate")
    client.set_registered_model_alias(name, CHALLENGER, version)
    champion_version = _alias_version(client, name, CHAMPION)
    champion_tags = {} if champion_version is None else _tags(client, name, champion_version)
    champion = _metric(champion_tags, metric)
    benchmarks = [challenger_tags.get(BENCHMARK_TAG), champion_tags.get(BENCHMARK_TAG)]
    if champion_version is None:
        promoted, reason = True, f"no champion yet: v{version} ({challenger:.4f}) becomes champion"
    elif champion_version == version:
        promoted, reason = True, f"v{version} is already the champion"
    elif None not in benchmarks and benchmarks[0] != benchmarks[1]:
        promoted, reason = (
            False,
            (
                f"champion v{champion_version} was scored on benchmark {benchmarks[1]}, the challenger on "
                f"{benchmarks[0]}: {metric} values of different benchmarks are not compared; evaluate the champion "
                "on this benchmark, or move the alias by hand"
            ),
        )
    else:
        label = f"champion v{champion_version}"
        promoted, reason = decide(challenger, champion, margin, greater_is_better, label)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    decision = PromotionDecision(name, version, metric, margin, greater_is_better, challenger, champion_version,
                                 champion, promoted, reason, now)  # fmt: skip
    for key, value in decision.tags().items():
        client.set_model_version_tag(name, version, key, value)
    if promoted and champion_version != version:
        client.set_registered_model_alias(name, CHAMPION, version)
        if champion_version is not None:
            client.set_model_version_tag(name, champion_version, f"{TAG_PREFIX}superseded_by", version)
    return decision


def write_decision(decision: PromotionDecision, path: str | Path) -> Path:
    """Write the decision as JSON (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(decision.as_dict(), indent=2) + "\n")
    return path


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def _tags(client: MlflowClient, name: str, version: str) -> dict[str, str]:
    """A version's tags, read once per decision (one registry call)."""
    return dict(client.get_model_version(name, version).tags)


def _metric(tags: dict[str, str], metric: str) -> float | None:
    value = tags.get(f"{METRIC_TAG}{metric}")
    try:
        return None if value is None else float(value)
    except ValueError:
        return None
