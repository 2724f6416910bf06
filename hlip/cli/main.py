"""Entry point of the `hlip` console script.

Each concept has its own module under `hlip.cli` with a Typer sub-app or command; this file only wires them.
"""

from __future__ import annotations

import logging

import typer

from hlip import __version__

app = typer.Typer(
    name="hlip",
    help="HLIP pipeline: raw DICOM studies + reports -> hierarchical 3D language-image models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"hlip {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """HLIP pipeline command line."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


# --- sub-commands (one line each; modules keep heavy imports inside the command bodies) ---
from hlip.cli import model as _model  # noqa: E402

app.add_typer(_model.app, name="model")
from hlip.cli import ingest as _ingest  # noqa: E402

app.command("ingest")(_ingest.ingest)
app.command("locate")(_ingest.locate)
from hlip.cli import pack as _pack  # noqa: E402

app.command("pack")(_pack.pack)

from hlip.cli import demo as _demo  # noqa: E402

app.add_typer(_demo.app, name="demo")
from hlip.cli import evaluate as _evaluate  # noqa: E402

app.command("evaluate")(_evaluate.evaluate)
from hlip.cli import lineage as _lineage  # noqa: E402

app.command("lineage")(_lineage.lineage)
from hlip.cli import predict as _predict  # noqa: E402

app.command("predict")(_predict.predict)
