"""Flow `validate`: the `hlip.stages.validate` stage; a critical failure stops the pipeline (exit code 1).

The report (JSON + HTML) is a stage output and an MLflow artifact. When the validation passes, its profile becomes
the drift baseline for the next run.
"""

from __future__ import annotations

import sys
from typing import Any

from prefect import flow

from flows.common import prefect_runner, publish_summary
from hlip.stages import validate as stage
from hlip.stages.validate import ValidationFailedError

__all__ = ["ValidationFailedError", "validate_flow"]


@flow(name="validate", log_prints=True)
def validate_flow(params: str | None = None) -> dict[str, Any]:
    """Validate the manifests; raises `ValidationFailedError` (after saving the report) on critical failures."""
    try:
        result = stage.run(stage.ValidateParams.load(params), prefect_runner())
    except ValidationFailedError as exc:
        print(exc)
        raise
    counts = result.report.as_dict()["counts"]
    publish_summary("validate", "Validation", {"verdict": "passed", **counts, "report": str(result.html)},
                    result.run_id)  # fmt: skip
    print(result.report.as_text())
    return result.report.as_dict()


if __name__ == "__main__":
    try:
        validate_flow()
    except ValidationFailedError:
        sys.exit(1)
