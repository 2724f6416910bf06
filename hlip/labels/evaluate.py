"""Quality of silver labels against reference labels, per finding and macro-averaged.

Scores and decisions:
- AUC: the label as a score (1 -> 1.0, -1 -> 0.5, 0 -> 0.0) against the reference finding being present
  (reference 1 or -1); NaN when the reference has one class only (left out of the macro mean).
- precision / recall / F1: a finding counts as reported when its value is not 0 (1 or -1), on both sides, so an
  uncertain mention of a present finding is a hit and a hedge about an absent one is a false positive.
- agreement: share of studies whose value equals the reference value exactly (1, 0 and -1 told apart).
- n_pos: studies where the reference has the finding; n_uncertain: studies labelled -1.
Only studies present in both the table and the reference are scored (n_studies).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hlip.labels.table import UNCERTAIN, to_matrix

METRICS = ("auc", "f1", "precision", "recall", "agreement")


@dataclass(frozen=True)
class ReferenceConfig:
    """Where reference labels come from (``params.yaml:label.reference``).

    Attributes:
        path: CSV with one row per study and a 0/1 column per finding.
        uid_column: Column with the raw StudyInstanceUID, hashed into study keys as ingest does.
        findings: Finding columns the reference has (a subset of the finding list).
        uncertain_column: Optional column naming the findings reported with uncertainty (reference value -1).
        parts: Parts (``train``) the reference covers.
        key_env: Environment variable holding the de-identification secret.
        hash_length: Length of study keys (as in ``ingest.deid.hash_length``).
    """

    path: str
    uid_column: str = "study_instance_uid"
    findings: tuple[str, ...] = ()
    uncertain_column: str | None = None
    parts: tuple[str, ...] = ("train",)
    key_env: str = "HLIP_DEID_KEY"
    hash_length: int = 20


def load_reference(config: ReferenceConfig) -> pd.DataFrame:
    """Reference matrix (index study_key, columns `config.findings`, values 1/0/-1) from a CSV keyed by raw UID.

    Raises:
        FileNotFoundError: When the CSV does not exist.
        ValueError: When a named column is missing or a value is not 0/1.
    """
    from hlip.data.deid import HashKey

    path = Path(config.path)
    if not path.is_file():
        raise FileNotFoundError(f"reference labels not found: {path}")
    frame = pd.read_csv(path, dtype={config.uid_column: str})
    wanted = [config.uid_column, *config.findings] + ([config.uncertain_column] if config.uncertain_column else [])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; it has {list(frame.columns)}")
    key = HashKey.from_env(config.key_env)
    values = frame[list(config.findings)]
    if not values.isin([0, 1]).all().all():
        raise ValueError(f"{path}: finding columns {list(config.findings)} must hold 0 or 1")
    matrix = values.astype("int8").copy()
    if config.uncertain_column:
        hedged = frame[config.uncertain_column].fillna("").astype(str)
        for name in config.findings:
            flagged = hedged.str.split(r"[;,|\s]+").apply(lambda names, n=name: n in names)
            matrix.loc[flagged & (matrix[name] == 1), name] = UNCERTAIN
    matrix.index = pd.Index([key.hash("study", uid, config.hash_length) for uid in frame[config.uid_column]])
    matrix.index.name = "study_key"
    return matrix


@dataclass
class QualityReport:
    """Per-finding quality (one row per finding, columns `METRICS` + n_pos, n_uncertain) and macro means."""

    per_finding: pd.DataFrame
    macro: dict[str, float]
    n_studies: int
    backend: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN -> None)."""
        rows = {
            name: {k: _json_float(v) for k, v in row.items()} for name, row in self.per_finding.to_dict("index").items()
        }
        return {
            "backend": self.backend,
            "n_studies": self.n_studies,
            "macro": {k: _json_float(v) for k, v in self.macro.items()},
            "per_finding": rows,
            **self.extra,
        }

    def to_markdown(self) -> str:
        """A Markdown table: one row per finding, then the macro mean."""
        head = ["finding", *METRICS, "n_pos", "n_uncertain"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, row in self.per_finding.iterrows():
            cells = [_fmt(row[m]) for m in METRICS] + [str(int(row["n_pos"])), str(int(row["n_uncertain"]))]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("| **macro** | " + " | ".join(_fmt(self.macro[m]) for m in METRICS) + " | | |")
        return f"Backend `{self.backend}` on {self.n_studies} studies.\n\n" + "\n".join(lines) + "\n"


def evaluate_labels(table: pd.DataFrame, reference: pd.DataFrame, findings: Sequence[str]) -> QualityReport:
    """Score a label table against a reference matrix on `findings` (those the reference has).

    Args:
        table: Label table (`hlip.labels.table` columns).
        reference: Matrix, index study_key, a 1/0/-1 column per finding.
        findings: Findings to score; each must be a column of `reference` and a finding of `table`.
    """
    missing = [f for f in findings if f not in reference.columns]
    if missing:
        raise ValueError(f"reference has no column(s) {missing}")
    predicted = to_matrix(table, findings)
    common = predicted.index.intersection(reference.index)
    predicted, truth = predicted.loc[common], reference.loc[common, list(findings)]
    rows = {name: _finding_metrics(predicted[name].to_numpy(), truth[name].to_numpy()) for name in findings}
    per_finding = pd.DataFrame.from_dict(rows, orient="index")
    macro = {m: float(np.nanmean(per_finding[m])) if per_finding[m].notna().any() else math.nan for m in METRICS}
    backend = str(table["backend"].iloc[0]) if len(table) else ""
    return QualityReport(per_finding, macro, len(common), backend)


def _finding_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    present = ref != 0
    score = np.select([pred == 1, pred == UNCERTAIN], [1.0, 0.5], 0.0)
    auc = float(roc_auc_score(present, score)) if 0 < present.sum() < len(present) else math.nan
    reported = pred != 0
    tp = float(np.sum(reported & present))
    precision = tp / reported.sum() if reported.sum() else math.nan
    recall = tp / present.sum() if present.sum() else math.nan
    f1 = 2 * tp / (reported.sum() + present.sum()) if (reported.sum() + present.sum()) else math.nan
    return {
        "auc": auc,
        "f1": float(f1),
        "precision": float(precision),
        "recall": float(recall),
        "agreement": float(np.mean(pred == ref)) if len(ref) else math.nan,
        "n_pos": float(present.sum()),
        "n_uncertain": float(np.sum(pred == UNCERTAIN)),
    }


def _json_float(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else round(float(value), 4)
    return value


def _fmt(value: float) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"
