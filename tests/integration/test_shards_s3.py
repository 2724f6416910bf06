"""Study shards read from `s3://`, against a real SeaweedFS S3 server on 127.0.0.1 started by the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from hlip.data.dataset import ScanPolicy, StudyDataset, make_loader
from hlip.data.shards import ShardStudyDataset, pack_part, upload_pack
from local_stack import SeaweedFS
from testkit.training_data import write_synthetic_part

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    with SeaweedFS(tmp_path_factory.mktemp("s3"), buckets=("packs",)) as server:
        yield server


def test_s3_shards_give_the_same_items_and_batches_as_the_npy_files(
    s3: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = tmp_path / "part"
    write_synthetic_part(part, n_studies=10, max_scans=4)
    pack_part(part, tmp_path / "pack", shard_bytes=40_000)
    for name, value in s3.client_env().items():
        monkeypatch.setenv(name, value)
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


def test_a_missing_s3_pack_is_a_clear_error(s3: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3.client_env().items():
        monkeypatch.setenv(name, value)
    with pytest.raises(FileNotFoundError, match=r"s3://packs/nothing/here: cannot read index\.parquet"):
        ShardStudyDataset("s3://packs/nothing/here", cache_dir=tmp_path / "cache")
