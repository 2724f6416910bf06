"""Training integration tests: a synthetic part folder, its labels and a tiny BERT, plus a subprocess runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

DRIVER = Path(__file__).with_name("train_driver.py")
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`ingest/train` (synthetic studies), `labels/train/labels.parquet` and `bert/` under one folder."""
    from testkit.training_data import write_training_folder

    return write_training_folder(tmp_path_factory.mktemp("training"), n_studies=26, max_scans=3)


@pytest.fixture(scope="session")
def pack(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus's part packed as study shards (`hlip.data.pack.pack_part`), several shards."""
    from hlip.data.pack import pack_part

    out = tmp_path_factory.mktemp("pack") / "train"
    pack_part(corpus / "ingest" / "train", out, shard_bytes=40_000)
    assert len(list((out / "shards").glob("*.tar"))) > 2  # studies in several shards: reads cross shard files
    return out


def tiny_block(corpus: Path, out: Path, **overrides: Any) -> dict[str, Any]:
    """A `pretrain` block for hlip-tiny on the synthetic corpus, deterministic, one thread."""
    from testkit.training_data import tiny_pretrain_block

    return tiny_pretrain_block(
        corpus, out, **{"max_scans": 3, "patch_dropout": 0.25, "deterministic": True, **overrides}
    )


def start_training(block: dict[str, Any], workdir: Path, sleep_s: float = 0.0, torchrun: int = 0,
                   port: int = 0) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start the driver on `block` in a subprocess (under torchrun with `torchrun` processes when > 0)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.json"
    config.write_text(json.dumps(block))
    metrics = workdir / "metrics.jsonl"
    args = [str(DRIVER), str(config), str(metrics), str(sleep_s)]
    if torchrun:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node",
                    str(torchrun), "--master-addr", "127.0.0.1", "--master-port", str(port)]  # fmt: skip
        cmd = launcher + args
    else:
        cmd = [sys.executable, *args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    return subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def read_metrics(workdir: Path) -> list[dict[str, float]]:
    """The metric records the driver logged."""
    path = workdir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def run_to_end(block: dict[str, Any], workdir: Path) -> None:
    """Train `block` start to end in a subprocess; fail with its output when it fails."""
    proc = start_training(block, workdir)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output.decode()[-3000:]


def kill_after_step(block: dict[str, Any], workdir: Path, step: int) -> int:
    """Start training, SIGKILL it once it has logged `step`; return the last step it logged."""
    proc = start_training(block, workdir, sleep_s=0.25)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        records = read_metrics(workdir)
        if records and max(r["step"] for r in records) >= step:
            break
        assert proc.poll() is None, proc.communicate()[0].decode()[-3000:]
        time.sleep(0.05)
    proc.kill()  # SIGKILL: no handler, no cleanup
    proc.wait(timeout=30)
    assert proc.returncode == -9
    return int(max(r["step"] for r in read_metrics(workdir)))


def shard_block(corpus: Path, out: Path, shards: str, **overrides: Any) -> dict[str, Any]:
    """`tiny_block` reading `shards`, with no part folder to fall back to: the pack is the only source."""
    block = tiny_block(corpus, out, **overrides)
    block["data"].update(shards=shards, ingest_dir=str(out.parent / "no-ingest-folder"))
    return block


def final_weights(out: Path) -> dict[str, Any]:
    """The exported model's state dict of a finished run."""
    from hlip.models.weights import load_state_dict_file

    return dict(load_state_dict_file(out / "model" / "model.safetensors"))


class TrainingHarness:
    """The helpers above, handed to tests as the `harness` fixture (tests cannot import conftest)."""

    tiny_block = staticmethod(tiny_block)
    shard_block = staticmethod(shard_block)
    start_training = staticmethod(start_training)
    read_metrics = staticmethod(read_metrics)
    run_to_end = staticmethod(run_to_end)
    kill_after_step = staticmethod(kill_after_step)
    final_weights = staticmethod(final_weights)


@pytest.fixture(scope="session")
def harness() -> type[TrainingHarness]:
    """Subprocess training helpers."""
    return TrainingHarness
