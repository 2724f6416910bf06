"""Study shards: packing is reproducible WebDataset, and the shard dataset gives the same items and order."""

from __future__ import annotations

import hashlib
import os
import tarfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from hlip.data.dataset import ScanPolicy, StudyDataset, TextPolicy, make_loader
from hlip.data.pack import pack_part
from hlip.data.shards import ShardStudyDataset
from hlip.labels.table import to_matrix
from testkit.files import sha_tree
from testkit.training_data import FINDINGS, write_synthetic_part


@pytest.fixture(scope="module")
def part(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("part")
    return out, write_synthetic_part(out, n_studies=12, max_scans=4)


@pytest.fixture(scope="module")
def pack(part: tuple[Path, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pack") / "train"
    pack_part(part[0], out, shard_bytes=40_000)  # a few studies per shard: several shards
    return out


def test_pack_is_webdataset_one_sample_per_study_with_the_volume_bytes(
    part: tuple[Path, pd.DataFrame], pack: Path
) -> None:
    folder, _ = part
    scans = pd.read_parquet(folder / "scans.parquet")
    shards = sorted((pack / "shards").glob("shard-*.tar"))
    assert len(shards) > 1
    members: dict[str, bytes] = {}
    studies_per_shard = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            names = tar.getnames()
            studies_per_shard.append({n.split(".", 1)[0] for n in names})  # WebDataset: key before the first dot
            for info in tar.getmembers():
                data = tar.extractfile(info)
                assert data is not None
                members[info.name] = data.read()
    assert set.intersection(*studies_per_shard) == set()  # a study never spans two shards
    expected = {f"{r.study_key}.{r.scan_key}.npy": (folder / r.path).read_bytes() for r in scans.itertuples()}
    assert members == expected


def test_packing_twice_gives_the_same_bytes(part: tuple[Path, pd.DataFrame], pack: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    summary = pack_part(part[0], again, shard_bytes=40_000)
    assert sha_tree(again) == sha_tree(pack)
    assert summary.scans == len(pd.read_parquet(part[0] / "scans.parquet"))
    assert summary.shards == len(list((pack / "shards").glob("*.tar")))
    table = pd.read_parquet(pack / "shards.parquet")  # what pins the shards' bytes when only small files are tracked
    assert {r.shard: r.sha256 for r in table.itertuples()} == {
        f"shards/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in (pack / "shards").glob("*.tar")
    }


def test_shard_items_equal_npy_items_for_every_epoch(part: tuple[Path, pd.DataFrame], pack: Path) -> None:
    folder, long = part
    kwargs = {"scans_policy": ScanPolicy("max_n", 2), "text_policy": TextPolicy(),
              "labels": to_matrix(long, FINDINGS).astype("float32"), "train": True, "seed": 7}  # fmt: skip
    npy, shards = StudyDataset(folder, **kwargs), ShardStudyDataset(pack, **kwargs)  # type: ignore[arg-type]
    assert shards.study_keys == npy.study_keys
    for epoch in (0, 1):
        for index in range(len(npy)):
            a, b = npy[(epoch, index)], shards[(epoch, index)]
            assert a["study_key"] == b["study_key"]
            assert torch.equal(a["image"], b["image"])
            assert a["report"] == b["report"]
            assert torch.equal(torch.nan_to_num(a["labels"], -9), torch.nan_to_num(b["labels"], -9))


def test_loader_order_and_resume_are_the_same_on_shards(part: tuple[Path, pd.DataFrame], pack: Path) -> None:
    folder, _ = part

    def keys(ds: StudyDataset, epoch: int, start: int = 0, workers: int = 0) -> list[str]:
        loader = make_loader(ds, batch_size=2, workers=workers, seed=3, persistent_workers=False)
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        loader.sampler.set_start(start)  # type: ignore[attr-defined]
        return [k for batch in loader for k in batch["study_key"]]

    npy, shards = StudyDataset(folder, seed=3), ShardStudyDataset(pack, seed=3)
    for epoch in (0, 1):
        assert keys(shards, epoch, workers=2) == keys(npy, epoch)
    full = keys(shards, 1)
    resumed = keys(shards, 1, start=4)  # a run resumed after 4 studies of epoch 1
    assert resumed == keys(npy, 1, start=4)
    assert resumed == full[4 : 4 + len(resumed)]
    assert keys(shards, 0) != keys(shards, 1)  # the order depends on the epoch


def test_a_missing_volume_stops_packing_and_names_it(part: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    folder = tmp_path / "part"
    write_synthetic_part(folder, n_studies=3, max_scans=2)
    (folder / "volumes" / "study0001" / "scan1.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"study0001/scan1\.npy"):
        pack_part(folder, tmp_path / "pack")


def test_a_folder_without_an_index_is_refused(part: tuple[Path, pd.DataFrame]) -> None:
    with pytest.raises(FileNotFoundError, match=r"index\.parquet"):
        ShardStudyDataset(part[0])


def test_a_shard_cut_or_missing_is_refused_when_the_dataset_is_made(
    part: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    out = tmp_path / "pack"
    pack_part(part[0], out, shard_bytes=40_000)
    shards = sorted((out / "shards").iterdir())
    assert len(shards) >= 3
    full = shards[1].stat().st_size
    shards[1].write_bytes(shards[1].read_bytes()[: full // 2])
    shards[2].unlink()
    with pytest.raises(OSError, match="not the ones this pack's index was written with") as err:
        ShardStudyDataset(out)
    assert f"{shards[1].relative_to(out)} has {full // 2} bytes, shards.parquet records {full}" in str(err.value)
    assert f"{shards[2].relative_to(out)} is missing" in str(err.value)
    (out / "shards.parquet").unlink()
    with pytest.raises(FileNotFoundError, match=r"no shards\.parquet"):
        ShardStudyDataset(out)


def test_a_shard_rewritten_after_the_dataset_was_made_fails_the_read(
    part: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    """A re-pack into the same folder under a running job: a process that opens the shard after it was replaced
    must not read the new bytes at the old index's offsets."""
    out = tmp_path / "pack"
    pack_part(part[0], out, shard_bytes=40_000)
    ds = ShardStudyDataset(out, train=False)
    first = ds[0]["image"]
    for shard in (out / "shards").iterdir():  # rewritten as a re-pack would: a new file, renamed into place
        replacement = tmp_path / "new.tar"
        replacement.write_bytes(bytes(shard.stat().st_size))  # the same size: only the file's identity tells
        os.replace(replacement, shard)
    with pytest.raises(OSError, match=r"cannot read scan volume .*changed since this dataset checked it"):
        ds[len(ds) - 1]
    assert torch.equal(ds[0]["image"], first)  # a shard this process opened before the change reads as it was


def test_a_pack_carries_the_parts_ingest_summary(part: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "part"
    shutil.copytree(part[0], folder)
    (folder / "summary.json").write_text('{"preprocess": {"size": [16, 32, 32]}}')
    pack_part(folder, tmp_path / "pack", shard_bytes=40_000)
    assert (tmp_path / "pack" / "summary.json").read_bytes() == (folder / "summary.json").read_bytes()


def test_a_part_folder_is_not_taken_for_an_s3_packs_manifests(part: tuple[Path, pd.DataFrame]) -> None:
    with pytest.raises(FileNotFoundError, match=r"index\.parquet.*s3://packs/train"):
        ShardStudyDataset("s3://packs/train", manifests=part[0])  # refused before any S3 request
