"""The label table every backend returns, and the study x finding matrix training reads.

Long format, one row per (study, finding) for every finding of the list:

| column | type | meaning |
|---|---|---|
| study_key | str | keyed hash of the study (ingest's key) |
| finding | str | finding name |
| value | int8 | 1 present, 0 absent or not mentioned, -1 uncertain |
| evidence | str | the sentence that decided the value; "" when the finding is not mentioned |
| backend | str | ``rules``, ``llm`` ... |

Reports that could not be labelled are not in it: they are rows of the failures table (study_key, reason,
attempts, backend).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

LABEL_COLUMNS = ("study_key", "finding", "value", "evidence", "backend")
FAILURE_COLUMNS = ("study_key", "reason", "attempts", "backend")
PRESENT, ABSENT, UNCERTAIN = 1, 0, -1
VALUES = frozenset({PRESENT, ABSENT, UNCERTAIN})


@dataclass(frozen=True)
class Mention:
    """One mention of a finding in a report, after context.

    Attributes:
        finding: Finding name.
        value: 1 affirmed and current, 0 negated (or historical, hypothetical, family), -1 uncertain.
        sentence: The sentence it occurs in.
    """

    finding: str
    value: int
    sentence: str


def decide(mentions: Iterable[Mention]) -> tuple[int, str]:
    """One finding's value from its mentions in one report: any affirmed -> 1; else any uncertain -> -1; else 0.

    Returns:
        The value and the sentence that decided it ("" when there is no mention; the first negated sentence when
        every mention is negated).
    """
    first: dict[int, str] = {}
    for mention in mentions:
        first.setdefault(mention.value, mention.sentence)
    for value in (PRESENT, UNCERTAIN, ABSENT):
        if value in first:
            return value, first[value]
    return ABSENT, ""


def label_rows(
    study_key: str, decided: Mapping[str, tuple[int, str]], findings: Sequence[str], backend: str
) -> list[tuple[str, str, int, str, str]]:
    """Rows of the label table for one study: every finding of the list, in order (not mentioned -> 0, "")."""
    return [(study_key, name, *decided.get(name, (ABSENT, "")), backend) for name in findings]


def make_label_table(rows: Iterable[tuple[str, str, int, str, str]]) -> pd.DataFrame:
    """The label table from rows ``(study_key, finding, value, evidence, backend)`` with its exact dtypes."""
    table = pd.DataFrame(list(rows), columns=list(LABEL_COLUMNS))
    return table.astype({"study_key": str, "finding": str, "value": "int8", "evidence": str, "backend": str})


def make_failure_table(rows: Iterable[tuple[str, str, int, str]]) -> pd.DataFrame:
    """The failures table from rows ``(study_key, reason, attempts, backend)``."""
    table = pd.DataFrame(list(rows), columns=list(FAILURE_COLUMNS))
    return table.astype({"study_key": str, "reason": str, "attempts": "int64", "backend": str})


def check_label_table(table: pd.DataFrame, findings: Sequence[str]) -> None:
    """Raise ValueError unless `table` has the label columns, valid values and every finding once per study."""
    missing = [c for c in LABEL_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"label table lacks column(s) {missing}; expected {list(LABEL_COLUMNS)}")
    bad = sorted(set(table["value"].astype(int)) - VALUES)
    if bad:
        raise ValueError(f"label table has value(s) {bad} outside {{1, 0, -1}}")
    expected = sorted(findings)
    wrong = [key for key, group in table.groupby("study_key")["finding"] if sorted(group) != expected]
    if wrong:
        raise ValueError(f"{len(wrong)} studies do not carry exactly one row per finding (e.g. {wrong[0]!r})")


def to_matrix(table: pd.DataFrame, findings: Sequence[str]) -> pd.DataFrame:
    """Study x finding matrix (index study_key, columns `findings` in order, int8 values 1/0/-1) for training.

    Raises:
        ValueError: When the table lacks one of `findings` or a study lacks a finding.
    """
    absent = sorted(set(findings) - set(table["finding"]))
    if absent and len(table):
        raise ValueError(f"label table has no rows for finding(s) {absent}")
    matrix = table.pivot(index="study_key", columns="finding", values="value")
    matrix = matrix.reindex(columns=list(findings))
    if matrix.isna().any().any():
        raise ValueError("label table lacks some (study, finding) rows; every study needs every finding")
    matrix.columns.name = None
    return matrix.astype("int8").sort_index()
