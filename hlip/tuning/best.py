"""The sweep's result as a reviewable YAML file (``outputs/sweep/best_params.yaml``); params.yaml is never edited.

The file maps dotted `params.yaml` keys to the best trial's values, with the metric, the trial number and the
study, under a header that says how to apply them (by hand after review, or as a DVC experiment with ``-S``).
When the sweep is disabled the file still exists (DVC declares it as an output) with ``status: skipped``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from hlip.tuning.config import SweepConfig, resolve_storage

if TYPE_CHECKING:
    import optuna

BEST_PARAMS_FILE = "best_params.yaml"


def best_params_record(study: optuna.Study | None, config: SweepConfig, status: str = "completed") -> dict[str, Any]:
    """The content of the best-params file: ``status``, study, metric, direction, trial, value, params."""
    from_study = study is not None and status == "completed"
    record: dict[str, Any] = {
        "status": status,
        "study": config.study_name,
        "metric": config.metric,
        "direction": config.direction,
        "trial": None,
        "value": None,
        "params": {},
    }
    if from_study:
        assert study is not None
        from hlip.tuning.tracking import trial_counts

        record["trials"] = trial_counts(study)
        if record["trials"]["complete"] == 0:
            record["status"] = "no_completed_trial"
        else:
            best = study.best_trial
            record.update(trial=best.number, value=best.value, params=dict(best.params))
    return record


def write_best_params(record: dict[str, Any], path: Path, config: SweepConfig) -> Path:
    """Write `record` (see `best_params_record`) to `path` with the how-to-apply header; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_header(record, config) + yaml.safe_dump(record, sort_keys=False))
    return path


def _header(record: dict[str, Any], config: SweepConfig) -> str:
    lines = [f"# Optuna sweep result: study {config.study_name!r}, storage {_redact(resolve_storage(config))}."]
    if record["status"] == "skipped":
        lines.append("# The sweep is disabled (params.yaml: sweep.enabled: false): nothing to apply.")
    elif not record["params"]:
        lines.append("# No trial completed: nothing to apply. See the sweep's MLflow run for the failures.")
    else:
        sets = " ".join(f"-S {key}={value}" for key, value in record["params"].items())
        lines += [
            f"# Best trial {record['trial']}: {config.metric} = {record['value']} ({config.direction}).",
            "# Nothing was applied. Review, then either copy each dotted key into params.yaml",
            "# (pretrain.contrastive.lr: X  ->  pretrain: {contrastive: {lr: X}}) and commit, or try them first as",
            f"# a DVC experiment:  dvc exp run {sets}",
        ]
    return "\n".join(lines) + "\n"


def _redact(url: str) -> str:
    """A storage URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url
