"""Study shards read from `s3://`, against a real SeaweedFS S3 server on 127.0.0.1 started by the test."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from hlip.cli.main import app
from hlip.data.dataset import ScanPolicy, StudyDataset, make_loader
from hlip.data.pack import pack_part, upload_pack
from hlip.data.shards import ShardStudyDataset
from hlip.s3 import s3_client
from local_stack import SeaweedFS
from testkit.training_data import write_synthetic_part

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    with SeaweedFS(tmp_path_factory.mktemp("s3"), buckets=("packs",)) as server:
        yield server


@pytest.fixture
def s3_env(s3: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> SeaweedFS:
    """The server, with its endpoint and keys in this test's environment (where `hlip.s3.s3_client` reads them)."""
    for name, value in s3.client_env().items():
        monkeypatch.setenv(name, value)
    return s3


def test_s3_shards_give_the_same_items_and_batches_as_the_npy_files(s3_env: SeaweedFS, tmp_path: Path) -> None:
    part = tmp_path / "part"
    write_synthetic_part(part, n_studies=10, max_scans=4)
    pack_part(part, tmp_path / "pack", shard_bytes=40_000)
    uploaded = upload_pack(tmp_path / "pack", "s3://packs/runs/train")
    assert uploaded == len([p for p in (tmp_path / "pack").rglob("*") if p.is_file()])

    policy = ScanPolicy("max_n", 2)
    remote = ShardStudyDataset("s3://packs/runs/train", cache_dir=tmp_path / "cache", scans_policy=policy, seed=1)
    local = StudyDataset(part, scans_policy=policy, seed=1)
    assert remote.study_keys == local.study_keys
    for index in range(len(local)):
        assert torch.equal(remote[(2, index)]["image"], local[(2, index)]["image"])

    def batches(ds: StudyDataset, workers: int) -> list[tuple[list[str], torch.Tensor]]:
        loader = make_loader(ds, batch_size=3, workers=workers, seed=5, persistent_workers=False)
        loader.sampler.set_epoch(1)  # type: ignore[attr-defined]
        return [(b["study_key"], b["image"]) for b in loader]

    got, want = batches(remote, workers=2), batches(local, workers=0)  # each worker builds its own S3 client
    assert [k for k, _ in got] == [k for k, _ in want]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, want, strict=True))


def test_a_missing_s3_pack_is_a_clear_error(s3_env: SeaweedFS, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"s3://packs/nothing/here: cannot read index\.parquet"):
        ShardStudyDataset("s3://packs/nothing/here", cache_dir=tmp_path / "cache")


def test_hlip_pack_to_s3_uploads_each_shard_and_training_reads_them(s3_env: SeaweedFS, tmp_path: Path) -> None:
    """`hlip pack --to s3://... --drop-uploaded-shards`: the shards end up on S3 only, the small index and manifests
    in the local folder as well; what training reads from S3 equals the part's `.npy` files."""
    part = tmp_path / "part"
    write_synthetic_part(part, n_studies=8, max_scans=3)
    out = tmp_path / "pack"
    args = ["pack", str(part), str(out), "--shard-size", "30000", "--to", "s3://packs/cli/train"]
    result = CliRunner().invoke(app, [*args, "--drop-uploaded-shards"])
    assert result.exit_code == 0, result.output
    assert "pretrain.data.shards: s3://packs/cli/train" in result.output
    assert list((out / "shards").iterdir()) == []  # every shard left once uploaded
    assert {p.name for p in out.iterdir()} >= {"index.parquet", "shards.parquet", "scans.parquet", "studies.parquet"}

    client = s3_client()  # every shard on S3 with the size and sha256 the pack recorded
    recorded = pd.read_parquet(out / "shards.parquet")
    assert len(recorded) > 1
    for row in recorded.itertuples():
        body = client.get_object(Bucket="packs", Key=f"cli/train/{row.shard}")["Body"].read()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (row.bytes, row.sha256)

    policy = ScanPolicy("max_n", 3)
    remote = ShardStudyDataset("s3://packs/cli/train", cache_dir=tmp_path / "cache", scans_policy=policy, seed=2)
    local = StudyDataset(part, scans_policy=policy, seed=2)
    assert remote.study_keys == local.study_keys
    for index in range(len(local)):
        assert torch.equal(remote[(0, index)]["image"], local[(0, index)]["image"])


def test_an_unreachable_bucket_fails_packing_naming_the_object(s3_env: SeaweedFS, tmp_path: Path) -> None:
    part = tmp_path / "part"
    write_synthetic_part(part, n_studies=2, max_scans=2)
    with pytest.raises(OSError, match=r"cannot upload shards/shard-000000\.tar to s3://no-such-bucket/x"):
        pack_part(part, tmp_path / "pack", upload_to="s3://no-such-bucket/x")


def test_packing_into_a_prefix_that_holds_a_pack_is_refused_unless_overwritten(
    s3_env: SeaweedFS, tmp_path: Path
) -> None:
    """A second pack into the same prefix would replace shards that the first pack's index describes."""
    part = tmp_path / "part"
    write_synthetic_part(part, n_studies=3, max_scans=2)
    args = ["pack", str(part), str(tmp_path / "pack"), "--to", "s3://packs/twice/train"]
    assert CliRunner().invoke(app, args).exit_code == 0
    client = s3_client()
    before = client.head_object(Bucket="packs", Key="twice/train/index.parquet")["LastModified"]
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1
    assert "s3://packs/twice/train already holds a pack (index.parquet)" in again.output
    assert client.head_object(Bucket="packs", Key="twice/train/index.parquet")["LastModified"] == before
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert ShardStudyDataset("s3://packs/twice/train", cache_dir=tmp_path / "cache").study_keys == (
        StudyDataset(part).study_keys
    )
