"""``hlip demo``: generate the embedded demo corpus and look at it.

Heavy imports (numpy, pydicom, nilearn, matplotlib) happen inside the commands so that ``hlip --help`` stays fast.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from demo_corpus import CorpusSummary

app = typer.Typer(
    help="The demo corpus: a synthetic, uncurated brain-MRI PACS export with reports.", no_args_is_help=True
)


def _summary_table(summary: CorpusSummary, seconds: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"demo corpus: {summary.files} files, {summary.bytes / 1e6:.1f} MB, {seconds:.0f} s")
    table.add_column("what")
    table.add_column("count", justify="right")
    for part, n in summary.studies.items():
        labels = ", ".join(f"{k} {v}" for k, v in summary.labels[part].items())
        table.add_row(f"{part} studies", f"{n}  ({labels})")
        table.add_row(f"{part} reports.csv rows", str(summary.reports[part]))
    table.add_row("series", str(summary.series))
    for kind, n in summary.series_kinds.items():
        table.add_row(f"  series kind {kind}", str(n))
    for kind, n in summary.bad_files.items():
        table.add_row(f"  bad files: {kind}", str(n))
    Console().print(table)


@app.command("corpus")
def corpus(
    out: Annotated[
        Path, typer.Option("--out", help="Output folder: empty, or an earlier output of the same config.")
    ] = Path("data"),
    seed: Annotated[int | None, typer.Option("--seed", help="Seed (default: the embedded corpus's).")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 2,
    tiny: Annotated[bool, typer.Option("--tiny", help="A corpus of a few small studies, for smoke tests.")] = False,
) -> None:
    """Write the demo corpus (default: 1,100 training + 200 benchmark studies) and print a summary."""
    from demo_corpus import DemoCorpusConfig, generate_corpus
    from hlip.allocator import retain_freed_memory

    retain_freed_memory()  # this process writes studies too with --workers 1 (the pool's workers set it themselves)
    config = DemoCorpusConfig.tiny() if tiny else DemoCorpusConfig()
    if seed is not None:
        config = DemoCorpusConfig.from_dict({**config.to_dict(), "seed": seed})
    start = time.perf_counter()
    try:  # the generator reports its own progress (a bar on a terminal, a line every 30 s in a log)
        summary = generate_corpus(out, config, workers=workers)
    except FileExistsError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from err
    _summary_table(summary, time.perf_counter() - start)


@app.command("preview")
def preview(
    corpus: Annotated[Path, typer.Option("--corpus", help="A folder written by `hlip demo corpus`.")] = Path("data"),
    out: Annotated[Path, typer.Option("--out", help="Where the PNGs go.")] = Path("outputs/preview"),
) -> None:
    """Draw one PNG per series kind (mid-slice) and a contact sheet per finding class, read back from the DICOM."""
    from demo_corpus import render_preview

    if not (corpus / "ground_truth" / "series.csv").is_file():
        typer.secho(f"error: {corpus} is not a demo corpus (no ground_truth/series.csv)", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
    for path in render_preview(corpus, out):
        typer.echo(str(path))
