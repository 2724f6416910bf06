"""`hlip ingest` ends with its summary on stdout: files listed, used, quarantined per reason, studies, scans."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from typer.testing import CliRunner

from hlip.cli.main import app
from tests.unit.hlip.data.conftest import write_series  # noqa: F401  (the fixture)


def test_ingest_prints_its_summary_on_stdout(tmp_path: Path, write_series: Callable[..., list[Path]]) -> None:  # noqa: F811
    write_series(tmp_path / "raw" / "long", n=6)
    write_series(tmp_path / "raw" / "short", n=3)
    (tmp_path / "raw" / "notes.txt").write_text("not a DICOM file\n" * 10)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"ingest": {"workers": 1, "series": {"min_slices": 5}}}))
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "raw"), "--out", str(tmp_path / "out"),
                                      "--params", str(params)])  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "files_listed" in out
    for row, value in (("files_listed", 10), ("files_used", 6), ("files_quarantined", 4), ("scans", 1)):
        assert any(row in line and f" {value} " in line for line in out.splitlines()), (row, out)
    assert "series:too_short" in out
    assert "file:not_dicom" in out
    assert "fewer than 5 slices" in out
