"""`hlip lineage models:/<name>/<version>`: what a registered model was made from (code, data, params, runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from hlip.tracking.lineage import Lineage


def lineage(
    model_uri: Annotated[str, typer.Argument(help="models:/<name>/<version> or models:/<name>@<alias>.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the lineage as JSON.")] = False,
    repo: Annotated[Path, typer.Option("--repo", help="The git repository holding dvc.lock and params.yaml.")] = Path(
        "."
    ),
    tracking_uri: Annotated[
        str | None,
        typer.Option("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the embedded one)."),
    ] = None,
) -> None:
    """Print the git commit, dvc.lock stage hashes, data.dvc md5, params, stage runs and validation of a model."""
    from mlflow import MlflowClient

    from hlip.tracking.lineage import LineageError, resolve_lineage
    from hlip.tracking.runs import DEFAULT_TRACKING_DIR
    from hlip.tracking.runs import tracking_uri as default_uri

    uri = tracking_uri or default_uri(repo / DEFAULT_TRACKING_DIR)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        typer.echo(f"error: no MLflow store at {uri} (set --tracking-uri or MLFLOW_TRACKING_URI)", err=True)
        raise typer.Exit(code=1)
    try:
        result = resolve_lineage(model_uri, repo, MlflowClient(uri, registry_uri=uri))
    except LineageError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        print_lineage(result)


def print_lineage(result: Lineage) -> None:
    """Rich tables: the model and its tags, dvc.lock stages, stage runs, validation, params, warnings."""
    import yaml
    from rich.console import Console
    from rich.table import Table

    console = Console()
    head = Table(title=f"Lineage of {result.model_uri}", show_header=False)
    aliases = f" (aliases: {', '.join(result.aliases)})" if result.aliases else ""
    for key, value in [
        ("model", f"{result.name} version {result.version}{aliases}"),
        ("source run", result.source_run_id or "-"),
        ("git commit", f"{result.git_commit} (dirty: {result.git_dirty})"),
        ("lineage commit", result.lineage_commit or "- (the lock and data are read at the git commit)"),
        ("data.dvc md5", f"{result.data_md5} (tag); {result.data_dvc_md5 or '-'} (data.dvc in {result.source})"),
        ("params sha256", result.params_sha256),
        ("read from", result.source),
    ]:
        head.add_row(key, value)
    console.print(head)
    stages = Table(title="dvc.lock stages")
    for column in ("stage", "cmd", "path", "kind", "md5"):
        stages.add_column(column)
    for stage in result.stages:
        rows = [("dep", p, h) for p, h in stage.deps.items()] + [("out", p, h) for p, h in stage.outs.items()]
        for i, (kind, path, md5) in enumerate(rows or [("", "", "")]):
            stages.add_row(stage.name if i == 0 else "", stage.cmd if i == 0 else "", path, kind, md5)
    console.print(stages)
    runs = Table(title="MLflow runs (same commit and data)")
    for column in ("stage", "experiment", "run", "status", "started"):
        runs.add_column(column)
    for run in result.runs:
        runs.add_row(run.stage, run.experiment, run.run_id, run.status, run.start_time)
    console.print(runs)
    if result.validation:
        check = result.validation
        outs = ", ".join(f"{p} {h}" for p, h in check.outputs.items()) or "-"
        report = ", ".join(check.artifacts) or "-"
        console.print(f"[bold]validation[/bold]: outputs {outs}; run {check.run_id or '-'} ({check.status or '-'}); "
                      f"report {report}", highlight=False)  # fmt: skip
    else:
        console.print("[bold]validation[/bold]: none found (no validate stage in dvc.lock, no validate run)")
    console.print(f"[bold]params[/bold] ({result.params_source}):")
    console.print(yaml.safe_dump(result.params, sort_keys=False).rstrip() or "{}", markup=False, highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
