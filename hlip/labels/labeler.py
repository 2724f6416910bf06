"""One interface over the label backends: reports in, the same label table out.

`read_reports` gathers each study's report text from ingest's ``reports.parquet`` (several reports of one study
are joined; an empty text is a failure, not a study without findings). `label_reports` runs the configured
backend and returns a `LabelResult`: the label table, the failures table and the backend's stats.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from hlip.labels.config import LabelConfig
from hlip.labels.finding_list import FindingList
from hlip.labels.table import make_failure_table


@dataclass
class LabelResult:
    """The output of one labelling run."""

    table: pd.DataFrame
    failures: pd.DataFrame
    stats: dict[str, Any] = field(default_factory=dict)


def read_reports(path: str | Path) -> tuple[dict[str, str], list[str]]:
    """Report texts per study from a ``reports.parquet`` (study_key, text).

    Returns:
        ``{study_key: text}`` for studies with text (several reports of a study joined by a blank line), and the
        keys of studies whose report is empty.

    Raises:
        FileNotFoundError: When the file does not exist.
        ValueError: When it lacks the study_key or text column.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reports table not found: {path}; run the ingest stage first")
    frame = pd.read_parquet(path)
    missing = [c for c in ("study_key", "text") if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}")
    frame = frame.assign(text=frame["text"].fillna("").astype(str))
    joined = frame.groupby("study_key", sort=True)["text"].agg(lambda t: "\n\n".join(s for s in t if s.strip()))
    empty = [str(k) for k, text in joined.items() if not text.strip()]
    return {str(k): text for k, text in joined.items() if text.strip()}, empty


def label_reports(reports: Mapping[str, str], findings: FindingList, config: LabelConfig) -> LabelResult:
    """Label ``{study_key: text}`` with the backend `config.backend`.

    Raises:
        hlip.labels.llm.EndpointUnavailableError: llm backend, when the endpoint cannot be reached at all.
    """
    if config.backend == "rules":
        from hlip.labels.rules import RulesLabeler

        start = time.perf_counter()
        table = RulesLabeler(findings, config.rules).label(reports)
        seconds = time.perf_counter() - start
        stats = {"reports": len(reports), "labelled": len(reports), "failed": 0, "seconds": round(seconds, 3)}
        return LabelResult(table, make_failure_table([]), stats)
    from hlip.labels.llm import LLMLabeler

    table, failures, llm_stats = LLMLabeler(findings, config.llm).label(reports)
    return LabelResult(table, failures, llm_stats.as_dict())


def with_empty_reports(result: LabelResult, empty: list[str], backend: str) -> LabelResult:
    """Add studies with an empty report to the failures table (reason ``empty_report``)."""
    if not empty:
        return result
    rows = make_failure_table((key, "empty_report", 0, backend) for key in empty)
    failures = pd.concat([result.failures, rows], ignore_index=True) if len(result.failures) else rows
    return LabelResult(result.table, failures, {**result.stats, "empty_reports": len(empty)})


def label_part(reports_path: str | Path, findings: FindingList, config: LabelConfig) -> LabelResult:
    """Label one ingest part's ``reports.parquet``; studies with an empty report become failures."""
    reports, empty = read_reports(reports_path)
    return with_empty_reports(label_reports(reports, findings, config), empty, config.backend)
