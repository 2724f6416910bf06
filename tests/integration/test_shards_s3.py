"""Study shards read from `s3://`, against a real SeaweedFS S3 server on 127.0.0.1 started by the test."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import hlip.data.shards as shards
from hlip.cli.main import app
from hlip.data.dataset import ScanPolicy, StudyDataset, make_loader
from hlip.data.pack import pack_part, upload_pack
from hlip.data.shards import ShardStudyDataset, pack_folder
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


def assert_same_images(remote: ShardStudyDataset, local: StudyDataset, epoch: int) -> None:
    """The pack read from S3 gives the part's studies, in its order, with the same images in `epoch`."""
    assert remote.study_keys == local.study_keys
    for index in range(len(local)):
        assert torch.equal(remote[(epoch, index)]["image"], local[(epoch, index)]["image"])


def test_s3_shards_give_the_same_items_and_batches_as_the_npy_files(s3_env: SeaweedFS, tmp_path: Path) -> None:
    part = tmp_path / "part"
    write_synthetic_part(part, n_studies=10, max_scans=4)
    pack_part(part, tmp_path / "pack", shard_bytes=40_000)
    uploaded = upload_pack(tmp_path / "pack", "s3://packs/runs/train")
    assert uploaded == len([p for p in (tmp_path / "pack").rglob("*") if p.is_file()])

    policy = ScanPolicy("max_n", 2)
    remote = ShardStudyDataset("s3://packs/runs/train", cache_dir=tmp_path / "cache", scans_policy=policy, seed=1)
    local = StudyDataset(part, scans_policy=policy, seed=1)
    assert_same_images(remote, local, epoch=2)

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
        stored = client.get_object(Bucket="packs", Key=f"cli/train/{row.shard}")
        body = stored["Body"].read()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (row.bytes, row.sha256)
        assert stored["Metadata"] == {"sha256": row.sha256}  # what readers pin the object by

    policy = ScanPolicy("max_n", 3)
    remote = ShardStudyDataset("s3://packs/cli/train", cache_dir=tmp_path / "cache", scans_policy=policy, seed=2)
    local = StudyDataset(part, scans_policy=policy, seed=2)
    assert_same_images(remote, local, epoch=0)


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


def test_an_s3_pack_whose_manifests_were_fetched_is_not_fetched_again(
    s3_env: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training digests the manifests `pack_folder` fetched, then builds each stage's dataset on those same files:
    a pack re-uploaded mid-run must not change what the digest describes (and one download per run suffices)."""
    part = tmp_path / "part"
    write_synthetic_part(part, n_studies=4, max_scans=2)
    pack_part(part, tmp_path / "pack", upload_to="s3://packs/once/train")
    manifests = pack_folder("s3://packs/once/train", tmp_path / "cache")

    def no_download(*args: object, **kwargs: object) -> Path:
        raise AssertionError(f"manifests fetched again: {args}")

    monkeypatch.setattr(shards, "pack_folder", no_download)
    remote = ShardStudyDataset("s3://packs/once/train", manifests=manifests, scans_policy=ScanPolicy("all"))
    local = StudyDataset(part, scans_policy=ScanPolicy("all"))
    assert_same_images(remote, local, epoch=0)  # read from S3


def test_an_s3_pack_whose_shards_are_not_its_own_is_refused(s3_env: SeaweedFS, tmp_path: Path) -> None:
    """Shards of another pack under this pack's names (a re-pack of the prefix, or one in progress), a shard cut
    short, a shard missing: each is named when the dataset is made, before any training step reads a byte."""
    first, second = tmp_path / "first", tmp_path / "second"
    write_synthetic_part(first, n_studies=6, max_scans=2)
    write_synthetic_part(second, n_studies=6, max_scans=2, seed=1)
    pack_part(first, tmp_path / "pack1", shard_bytes=40_000, upload_to="s3://packs/mixed/train")
    pack_part(second, tmp_path / "pack2", shard_bytes=40_000)
    ShardStudyDataset("s3://packs/mixed/train", cache_dir=tmp_path / "cache")  # its own shards: accepted
    recorded = pd.read_parquet(tmp_path / "pack1" / "shards.parquet")
    other = pd.read_parquet(tmp_path / "pack2" / "shards.parquet").set_index("shard")
    same_size = next(r for r in recorded.itertuples() if r.shard in other.index and other.bytes[r.shard] == r.bytes)
    client = s3_client()
    upload_pack(tmp_path / "pack2", "s3://packs/other/train")  # the second pack, whole, elsewhere
    client.copy_object(  # its shard of the same name and size over the first pack's (metadata copied along)
        Bucket="packs",
        Key=f"mixed/train/{same_size.shard}",
        CopySource={"Bucket": "packs", "Key": f"other/train/{same_size.shard}"},
    )
    cut = next(r for r in recorded.itertuples() if r.shard != same_size.shard)
    body = client.get_object(Bucket="packs", Key=f"mixed/train/{cut.shard}")["Body"].read()
    client.put_object(Bucket="packs", Key=f"mixed/train/{cut.shard}", Body=body[: len(body) // 2])
    gone = next(r for r in recorded.itertuples() if r.shard not in (same_size.shard, cut.shard))
    client.delete_object(Bucket="packs", Key=f"mixed/train/{gone.shard}")
    with pytest.raises(OSError, match="not the ones this pack's index was written with") as err:
        ShardStudyDataset("s3://packs/mixed/train", cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert f"{same_size.shard} was uploaded with sha256 {other.sha256[same_size.shard][:12]}" in message
    assert f"{cut.shard} has {len(body) // 2} bytes, shards.parquet records {cut.bytes}" in message
    assert f"{gone.shard} is missing" in message


def test_an_s3_shard_replaced_under_a_running_job_fails_the_read(s3_env: SeaweedFS, tmp_path: Path) -> None:
    """Every range read names the ETag the dataset checked: an object uploaded again since (even with the same
    bytes count and no metadata) is an error, never other bytes at the old offsets."""
    part = tmp_path / "part"
    write_synthetic_part(part, n_studies=4, max_scans=2)
    pack_part(part, tmp_path / "pack", upload_to="s3://packs/live/train")
    ds = ShardStudyDataset("s3://packs/live/train", cache_dir=tmp_path / "cache", train=False)
    assert ds[0]["image"].shape[0] > 0  # read before the change
    client = s3_client()
    for row in pd.read_parquet(tmp_path / "pack" / "shards.parquet").itertuples():
        client.put_object(Bucket="packs", Key=f"live/train/{row.shard}", Body=bytes(row.bytes))
    with pytest.raises(OSError, match=r"cannot read scan volume .*changed on S3 since this dataset checked it"):
        ds[0]
