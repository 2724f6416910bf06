"""Training from study shards (`pretrain.data.shards`) gives the weights training from the part's `.npy` volumes gives.

The part is packed into several WebDataset shards (the `pack` fixture); a run reading the pack is killed with SIGKILL
in stage B and resumed, and a run reads the pack from `s3://` on a real SeaweedFS server started here. Each must end
with the `.npy` run's weights bit for bit. (DDP reading the pack: `test_distributed.py`.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from hlip.data.pack import upload_pack
from hlip.training.checkpoint import latest_checkpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory, harness: Any) -> Path:
    """An uninterrupted run on the part's `.npy` volumes."""
    root = tmp_path_factory.mktemp("npy")
    harness.run_to_end(harness.tiny_block(corpus, root / "out"), root / "run")
    return root / "out"


def assert_same_weights(harness: Any, expected_out: Path, actual_out: Path) -> None:
    expected, actual = harness.final_weights(expected_out), harness.final_weights(actual_out)
    assert expected.keys() == actual.keys()
    different = [k for k in expected if not torch.equal(expected[k], actual[k])]
    assert not different, f"weights differ: {different[:5]}"
    summary = {p: json.loads((p / "summary.json").read_text()) for p in (expected_out, actual_out)}
    assert summary[expected_out]["data_digest"] == summary[actual_out]["data_digest"]  # the same manifests


def test_a_killed_and_resumed_run_from_a_local_pack_ends_with_the_npy_runs_weights(
    corpus: Path, pack: Path, reference: Path, tmp_path: Path, harness: Any
) -> None:
    out = tmp_path / "out"
    block = harness.shard_block(corpus, out, str(pack))
    killed_at = harness.kill_after_step(block, tmp_path / "run1", step=16)  # stage B: steps 13-24
    assert 12 < killed_at < 24
    checkpoint = latest_checkpoint(out)
    assert checkpoint is not None
    harness.run_to_end(block, tmp_path / "run2")
    resumed = harness.read_metrics(tmp_path / "run2")
    assert min(r["step"] for r in resumed) == int(checkpoint.stem.split("-")[1]) + 1  # resumed, not restarted
    assert_same_weights(harness, reference, out)


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from local_stack import SeaweedFS

    with SeaweedFS(tmp_path_factory.mktemp("s3"), buckets=("packs",)) as server:
        yield server


def test_a_run_reading_the_pack_from_s3_ends_with_the_npy_runs_weights(
    corpus: Path, pack: Path, reference: Path, s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    harness: Any,
) -> None:  # fmt: skip
    for name, value in s3.client_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the manifests' download cache lives under it
    upload_pack(pack, "s3://packs/runs/train")
    out = tmp_path / "out"
    harness.run_to_end(harness.shard_block(corpus, out, "s3://packs/runs/train"), tmp_path / "run")
    assert_same_weights(harness, reference, out)
    cached = tmp_path / "home/.cache/hlip/packs/packs/runs/train"
    assert sorted(p.name for p in cached.iterdir()) == ["index.parquet", "reports.parquet", "scans.parquet",
                                                        "shards.parquet", "studies.parquet"]  # fmt: skip  # no shard


def test_a_path_that_is_not_a_pack_fails_before_training(corpus: Path, tmp_path: Path, harness: Any) -> None:
    block = harness.tiny_block(corpus, tmp_path / "out")
    block["data"]["shards"] = str(corpus / "ingest" / "train")  # a part folder, not a pack
    proc = harness.start_training(block, tmp_path / "run")
    output = proc.communicate(timeout=300)[0].decode()
    assert proc.returncode != 0
    assert f"{corpus / 'ingest' / 'train'}: no index.parquet; is it a pack folder" in output
    assert not (tmp_path / "out" / "checkpoints").exists()
