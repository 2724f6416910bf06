"""`hlip predict`: a registered model over a folder or `s3://` prefix of new studies -> one table.

The same stage as `python -m flows.predict` (without Prefect): the `predict:` block of `params.yaml`, with any
option given here taking its place. Heavy imports happen inside the command body so `hlip --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def predict(
    source: Annotated[
        str | None, typer.Option("--source", help="Folder or s3://bucket/prefix of new DICOM studies.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model URI, e.g. models:/hlip-demo@champion.")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    params: Annotated[Path, typer.Option("--params", help="Parameters file (its predict: block).")] = Path(
        "params.yaml"
    ),
) -> None:
    """Predict every study under SOURCE with MODEL; writes OUT/predictions.parquet and logs it to MLflow."""
    from hlip.config import ConfigError, from_dict, load_params
    from hlip.stages.predict import PredictParams, run

    try:
        block = load_params(params, "predict") if params.is_file() else {}
        overrides = {"source": source, "model": model, "out": str(out) if out else None}
        block.update({k: v for k, v in overrides.items() if v is not None})
        config = from_dict(PredictParams, block, where=f"{params}:predict")
        result = run(config)
    except (ConfigError, ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
    typer.echo(f"{result.model_version}: {result.n_studies} studies ({result.n_predicted} predicted now, "
               f"{result.n_errors} with an error) -> {result.table}")  # fmt: skip
    if result.quarantine:
        typer.echo("set aside by ingest: " + ", ".join(f"{k} {v}" for k, v in result.quarantine.items()))
