from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from demo_corpus import CorpusSummary
from hlip.cli.main import app


def test_demo_commands_are_registered() -> None:
    result = CliRunner().invoke(app, ["demo", "--help"])
    assert result.exit_code == 0
    assert "corpus" in result.output
    assert "preview" in result.output


def test_corpus_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("not the generator's")
    result = CliRunner().invoke(app, ["demo", "corpus", "--tiny", "--out", str(tmp_path), "--workers", "1"])
    assert result.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_preview_command_writes_pngs(tmp_path: Path, tiny_corpus: tuple[Path, CorpusSummary]) -> None:
    root, _ = tiny_corpus
    result = CliRunner().invoke(app, ["demo", "preview", "--corpus", str(root), "--out", str(tmp_path / "png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "png" / "series_flair.png").is_file()
    assert CliRunner().invoke(app, ["demo", "preview", "--corpus", str(tmp_path)]).exit_code == 1
