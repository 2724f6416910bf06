"""Fixtures of the model-library tests: a tiny BERT directory and tiny study batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from testkit.tiny_bert import write_tiny_bert


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT + word tokenizer saved with save_pretrained (loaded back through the local-dir path)."""
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture
def tiny_text(tiny_bert_dir: Path) -> dict[str, dict[str, str]]:
    """Overrides that point a config's text tower at the tiny BERT."""
    return {"text": {"model_dir": str(tiny_bert_dir)}}


def _study_batch(counts: list[int], size: tuple[int, int, int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    n = max(counts)
    x = torch.randn(len(counts), n, 1, *size, generator=gen)
    mask = torch.arange(n)[None, :] < torch.tensor(counts)[:, None]
    return x, mask


@pytest.fixture
def study_batch() -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """`study_batch(counts, size, seed)`: random padded batch `[B, max(counts), 1, *size]` and scan mask."""
    return _study_batch
