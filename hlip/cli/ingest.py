"""`hlip ingest`: raw DICOM studies + reports -> volumes and manifest tables, with a progress bar and a summary.

Heavy imports (pydicom, pyarrow, MONAI) happen inside the command so `hlip --help` stays instant.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer


def _load_params(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    block = data.get("ingest", {}) if isinstance(data, dict) else {}
    if not isinstance(block, dict):
        raise typer.BadParameter(f"the 'ingest' block of {path} is not a mapping")
    return block


def ingest(
    source: Annotated[str, typer.Argument(help="Local folder or s3://bucket/prefix of raw DICOM files.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (volumes/ and the manifest tables).")],
    reports: Annotated[str | None, typer.Option("--reports", help="RIS reports CSV (path or s3:// URI).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Processes (default: params or 2).")] = None,
    params: Annotated[Path | None, typer.Option("--params", exists=True, dir_okay=False, help="params.yaml.")] = None,
) -> None:
    """Ingest raw DICOM studies: group, de-identify, classify, build and preprocess volumes, write manifests."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from hlip.data.config import IngestConfig
    from hlip.data.ingest import ingest as run_ingest
    from hlip.data.source import SourceError

    logging.getLogger("pydicom").setLevel(logging.ERROR)  # pydicom warns per odd element; quarantine says it all
    block = _load_params(params)
    if workers is not None:
        block = {**block, "workers": workers}
    try:
        config = IngestConfig.from_dict(block)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                name = "reading headers" if stage == "headers" else "ingesting studies"
                tasks[stage] = bar.add_task(name, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        try:
            summary = run_ingest(source, out, reports=reports, config=config, progress=progress)
        except SourceError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
    _print_summary(console, summary, Table)


def _print_summary(console: Any, summary: dict[str, Any], table_cls: Any) -> None:
    head = table_cls(title="ingest summary", show_header=False)
    for key in ("studies", "studies_with_scans", "studies_with_report", "studies_processed", "studies_unchanged",
                "scans", "files", "files_used", "files_quarantined", "reports", "seconds"):  # fmt: skip
        head.add_row(key, str(summary.get(key, "")))
    console.print(head)
    kinds = table_cls("kind", "scans", title="scans by kind")
    for kind, n in summary["scans_by_kind"].items():
        kinds.add_row(kind, str(n))
    console.print(kinds)
    reasons = table_cls("level:reason", "count", title="quarantined by reason")
    for reason, n in summary["quarantined_by_reason"].items():
        reasons.add_row(reason, str(n))
    console.print(reasons)
    if summary.get("key_source") == "demo":
        console.print("[yellow]HLIP_DEID_KEY unset: keys use the public demo key (fine for the demo corpus only)")
