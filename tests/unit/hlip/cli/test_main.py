"""The `hlip` entry point: fast start-up (no heavy imports), version and help."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from hlip import __version__
from hlip.cli.main import app

HEAVY = ("torch", "monai", "transformers", "mlflow", "prefect", "great_expectations", "nilearn", "matplotlib")


def test_cli_import_does_not_load_heavy_libraries() -> None:
    code = f"import sys, hlip.cli.main; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"loaded at CLI import time: {out.stdout.strip()}"


def test_version_and_help_list_every_registered_command() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"hlip {__version__}"
    help_text = runner.invoke(app, ["--help"]).output
    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    for name in names:
        assert name
        assert name in help_text
