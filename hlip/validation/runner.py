"""Run the checks with great_expectations on the manifest tables (pandas), in an ephemeral context."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from hlip.progress import ProgressReporter
from hlip.validation.checks import Check, CheckResult

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# Values that may be shown as "observed": aggregate statistics, never row values.
_SAFE_OBSERVED = (int, float, bool, type(None))


def run_checks(
    tables: Mapping[str, pd.DataFrame], checks: Iterable[Check], key_columns: Mapping[str, str]
) -> list[CheckResult]:
    """Run `checks` against `tables`.

    Args:
        tables: Table name -> data frame.
        checks: The checks; a check on a table that is absent fails (a missing table is a broken contract).
        key_columns: Table name -> the column whose values identify offending rows in the result (hashed keys).

    Returns:
        One result per check, in order.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("manifests")
    batches: dict[str, Any] = {}
    results = []
    checks = list(checks)
    with ProgressReporter("validate: checks", len(checks), unit="checks") as bar:
        for check in bar.track(checks):
            frame = tables.get(check.table)
            if frame is None:
                results.append(CheckResult(check, success=False, observed=f"table '{check.table}' is missing"))
                continue
            if check.table not in batches:
                asset = source.add_dataframe_asset(name=check.table)
                definition = asset.add_batch_definition_whole_dataframe("all")
                batches[check.table] = definition.get_batch(batch_parameters={"dataframe": frame})
            expectation = getattr(gx.expectations, check.expectation)(**check.kwargs)
            outcome = batches[check.table].validate(expectation, result_format="SUMMARY")
            results.append(_result(check, outcome.success, outcome.result, frame, key_columns.get(check.table)))
    return results


def _result(check: Check, success: bool, raw: Mapping[str, Any], frame: pd.DataFrame, key: str | None) -> CheckResult:
    observed = raw.get("observed_value")
    if not isinstance(observed, _SAFE_OBSERVED) and not _is_column_list(check, observed):
        observed = "(not shown)"
    rows = raw.get("partial_unexpected_index_list") or []
    keys = []
    if key and key in frame.columns:
        keys = [str(frame[key].iloc[int(i)]) for i in rows if isinstance(i, int) and i < len(frame)]
    return CheckResult(
        check,
        success=bool(success),
        observed=observed,
        unexpected_count=int(raw.get("unexpected_count") or 0),
        element_count=int(raw.get("element_count") or len(frame)),
        unexpected_keys=keys,
    )


def _is_column_list(check: Check, observed: Any) -> bool:
    # Column names of a schema check are schema, not data, and safe to show.
    return check.expectation.startswith("ExpectTableColumns") and isinstance(observed, list)
