"""Packing checks every volume before it packs it; `hlip pack` reports what it wrote or why it stopped."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from hlip.cli.main import app
from hlip.cli.pack import parse_size
from hlip.data.dataset import StudyDataset
from hlip.data.pack import pack_part, upload_pack
from hlip.data.shards import ShardStudyDataset
from testkit.files import sha_tree
from testkit.training_data import write_synthetic_part


@pytest.fixture(scope="module")
def part(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("part")
    write_synthetic_part(out, n_studies=6, max_scans=3)
    return out


def _damaged(part: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the part and the path of one of its volumes, to damage."""
    folder = tmp_path / "part"
    shutil.copytree(part, folder)
    rel = pd.read_parquet(folder / "scans.parquet")["path"].iloc[3]
    return folder, folder / rel


def test_a_truncated_volume_stops_packing_and_names_it(part: Path, tmp_path: Path) -> None:
    folder, volume = _damaged(part, tmp_path)
    volume.write_bytes(volume.read_bytes()[:-100])
    rel = volume.relative_to(folder).as_posix()
    with pytest.raises(ValueError, match=rf"volume {rel} of study \w+ is damaged: .*re-run ingest"):
        pack_part(folder, tmp_path / "pack")


@pytest.mark.parametrize("array", [np.zeros((4, 8, 8), np.float32), np.zeros((8, 8), np.uint8)])
def test_a_volume_training_cannot_read_stops_packing(part: Path, tmp_path: Path, array: np.ndarray) -> None:
    folder, volume = _damaged(part, tmp_path)
    np.save(volume, array)
    with pytest.raises(ValueError, match=r"not uint8 \[D, H, W\]; re-run ingest"):
        pack_part(folder, tmp_path / "pack")


def test_the_command_packs_what_the_library_packs(part: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["pack", str(part), str(tmp_path / "cli"), "--shard-size", "40000"])
    assert result.exit_code == 0, result.output
    summary = pack_part(part, tmp_path / "lib", shard_bytes=40_000)
    assert sha_tree(tmp_path / "cli") == sha_tree(tmp_path / "lib")
    assert summary.shards > 1
    assert f"packed 6 studies, {summary.scans} scans into {summary.shards} shard(s)" in result.output
    assert f"pretrain.data.shards: {tmp_path / 'cli'}" in result.output
    assert ShardStudyDataset(tmp_path / "cli").study_keys == StudyDataset(part).study_keys


def test_the_command_fails_naming_a_folder_that_is_no_ingest_output(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["pack", str(tmp_path / "empty"), str(tmp_path / "pack")])
    assert result.exit_code == 1
    assert "scans.parquet is missing" in result.output
    assert not (tmp_path / "pack").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "/tmp/somewhere"], "--to must be an s3://bucket/prefix URI"),
        (["--drop-uploaded-shards"], "--drop-uploaded-shards needs --to"),
        (["--shard-size", "1 parsec"], "is not a size"),
    ],
)
def test_the_command_refuses_bad_options(part: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["pack", str(part), str(tmp_path / "pack"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "pack").exists()


@pytest.mark.parametrize(
    ("text", "size"), [("1GiB", 1 << 30), ("256mib", 256 << 20), ("40000", 40_000), ("1.5 MB", 1_500_000)]
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0", "0.1B", "-5", "1 XB", ""])
def test_sizes_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter):
        parse_size(text)


def test_upload_pack_refuses_a_shard_whose_bytes_changed_since_packing(tmp_path: Path) -> None:
    """A shard damaged on the local disk (same size, other bytes) is named before anything is uploaded."""
    part = tmp_path / "part"
    write_synthetic_part(part, n_studies=4, max_scans=2)
    pack_part(part, tmp_path / "pack", shard_bytes=40_000)
    shard = sorted((tmp_path / "pack" / "shards").iterdir())[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    never = object()  # no S3 request may be made: the client has no methods
    with pytest.raises(ValueError, match=rf"shard shards/{shard.name} has sha256 .*shards\.parquet records"):
        upload_pack(tmp_path / "pack", "s3://packs/x", client=never)
