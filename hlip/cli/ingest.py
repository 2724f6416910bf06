"""`hlip ingest`: raw DICOM studies + reports -> volumes and manifest tables, with a progress bar and a summary.

Heavy imports (pydicom, pyarrow, scipy) happen inside the command so `hlip --help` stays instant.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from hlip.data.config import IngestConfig


def _load_config(path: Path | None, workers: int | None = None) -> IngestConfig:
    """The library settings of the `ingest:` block (its stage inputs `parts`/`out` are the flow's business)."""
    from hlip.config import load_params
    from hlip.data.config import IngestConfig, split_ingest_block

    try:
        config = split_ingest_block(load_params(path, "ingest"))[2] if path is not None else IngestConfig()
        return config if workers is None else dataclasses.replace(config, workers=workers)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def ingest(
    source: Annotated[str, typer.Argument(help="Local folder or s3://bucket/prefix of raw DICOM files.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (volumes/ and the manifest tables).")],
    reports: Annotated[str | None, typer.Option("--reports", help="RIS reports CSV (path or s3:// URI).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="Processes (default: params or 2).")] = None,
    params: Annotated[Path | None, typer.Option("--params", exists=True, dir_okay=False, help="params.yaml.")] = None,
    contract_of: Annotated[
        Path | None,
        typer.Option(
            "--contract-of",
            exists=True,
            file_okay=False,
            help="Exported or imported model folder: preprocess as its study contract says (grid, spacing, "
            "intensity handling), e.g. to evaluate released upstream weights on your own studies.",
        ),
    ] = None,
) -> None:
    """Ingest raw DICOM studies: group, de-identify, classify, build and preprocess volumes, write manifests."""
    from rich.console import Console
    from rich.table import Table

    from hlip.data.ingest import ingest as run_ingest
    from hlip.data.source import SourceError

    logging.getLogger("pydicom").setLevel(logging.ERROR)  # pydicom warns per odd element; quarantine says it all
    config = _load_config(params, workers)
    console = Console(stderr=True)
    if contract_of is not None:
        config = _with_contract_of(config, contract_of, console)
    try:  # ingest reports its own progress (a bar on a terminal, a line every 30 s in a log)
        summary = run_ingest(source, out, reports=reports, config=config)
    except SourceError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    # the summary is the command's result: stdout (progress and errors stay on stderr)
    _print_summary(Console(), summary, Table, config.series.min_slices)


def _with_contract_of(config: IngestConfig, model_dir: Path, console: Any) -> IngestConfig:
    """`config` with the preprocessing of the study contract `model_dir` carries (exit 2 when it carries none)."""
    from hlip.data.contract import ContractError, StudyContract

    try:
        contract = StudyContract.of_model(model_dir)
    except (ContractError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"preprocessing as the study contract of {model_dir} says: {contract.to_dict()['preprocess']}")
    return dataclasses.replace(config, preprocess=contract.preprocess)


def _print_summary(console: Any, summary: dict[str, Any], table_cls: Any, min_slices: int) -> None:
    head = table_cls(title="ingest summary", show_header=False)
    for key in ("files_listed", "files_used", "files_quarantined", "studies", "studies_with_scans",
                "studies_with_report", "studies_processed", "studies_unchanged", "scans", "reports",
                "seconds"):  # fmt: skip
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
    short = summary["quarantined_by_reason"].get("series:too_short", 0)
    if short:  # the most common surprise on a new collection: say which setting decides it
        console.print(
            f"{short} series (parts) had fewer than {min_slices} slices: quarantined as too_short "
            "(params.yaml ingest.series.min_slices)"
        )
    if summary.get("key_source") == "demo":
        console.print("[yellow]HLIP_DEID_KEY unset: keys use the public demo key (fine for the demo corpus only)")


def locate(
    label: Annotated[str, typer.Argument(help="A path label from files/quarantine tables (a keyed hash).")],
    source: Annotated[str, typer.Option("--source", help="The source the tables were ingested from.")],
    params: Annotated[Path | None, typer.Option("--params", exists=True, dir_okay=False, help="params.yaml.")] = None,
) -> None:
    """Print the raw source path behind a hashed path label (on this terminal only; never logged or stored)."""
    from hlip.data.deid import HashKey
    from hlip.data.ingest import locate as find
    from hlip.data.source import safe_name

    config = _load_config(params)
    found = find(source, label, config, HashKey.from_env(config.deid.key_env))
    if not found:
        typer.echo(f"no file under {source} has label {label} (same HLIP_DEID_KEY and params as the ingest?)", err=True)
        raise typer.Exit(1)
    for path in found:
        typer.echo(safe_name(path))  # a name that is not valid UTF-8 prints escaped
