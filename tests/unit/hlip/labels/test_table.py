from __future__ import annotations

import pandas as pd
import pytest

from hlip.labels.table import (
    LABEL_COLUMNS,
    Mention,
    check_label_table,
    decide,
    label_rows,
    make_label_table,
    to_matrix,
)


def test_decide_prefers_affirmed_then_uncertain_then_negated() -> None:
    neg, unc, pos = Mention("x", 0, "No x."), Mention("x", -1, "Possible x."), Mention("x", 1, "X is seen.")
    assert decide([neg, unc, pos]) == (1, "X is seen.")
    assert decide([neg, unc]) == (-1, "Possible x.")
    assert decide([neg]) == (0, "No x.")
    assert decide([]) == (0, "")


def test_rows_cover_every_finding_and_matrix_keeps_list_order() -> None:
    rows = label_rows("s2", {"b": (1, "B.")}, ["c", "b", "a"], "rules")
    rows += label_rows("s1", {"a": (-1, "A?")}, ["c", "b", "a"], "rules")
    table = make_label_table(rows)
    assert list(table.columns) == list(LABEL_COLUMNS)
    assert str(table["value"].dtype) == "int8"
    check_label_table(table, ["a", "b", "c"])
    matrix = to_matrix(table, ["c", "b", "a"])
    assert list(matrix.columns) == ["c", "b", "a"]
    assert list(matrix.index) == ["s1", "s2"]
    assert matrix.loc["s2", "b"] == 1
    assert matrix.loc["s1", "a"] == -1
    assert matrix.loc["s1", "b"] == 0
    assert (matrix.dtypes == "int8").all()


def test_incomplete_or_invalid_tables_are_refused() -> None:
    table = make_label_table(label_rows("s1", {}, ["a", "b"], "rules"))
    with pytest.raises(ValueError, match="no rows for finding"):
        to_matrix(table, ["a", "b", "c"])
    with pytest.raises(ValueError, match="exactly one row per finding"):
        check_label_table(table.iloc[:1], ["a", "b"])
    bad = table.assign(value=pd.Series([2, 0], dtype="int8"))
    with pytest.raises(ValueError, match="outside"):
        check_label_table(bad, ["a", "b"])
