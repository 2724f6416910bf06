"""Training unit tests: a tiny synthetic part with labels and a tiny BERT, built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.threads import torch_threads


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testkit.training_data import write_training_folder

    return write_training_folder(tmp_path_factory.mktemp("training"), n_studies=14, max_scans=2)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture
def block(corpus: Path, tmp_path: Path) -> dict[str, Any]:
    """A `pretrain` block for hlip-tiny on the synthetic part (one epoch per stage, no workers)."""
    return {
        "model": "hlip-tiny",
        "model_overrides": {"text": {"model_dir": str(corpus / "bert"), "context_length": 16}},
        "data": {"ingest_dir": str(corpus / "ingest"), "labels_dir": str(corpus / "labels"), "scans": {"max_scans": 2}},
        "warmup": {"epochs": 1, "lr": 1e-3, "warmup_steps": 1},
        "contrastive": {"epochs": 2, "lr": 1e-3, "warmup_steps": 1},
        "batch_size": 4,
        "workers": 0,
        "out": str(tmp_path / "out"),
    }
