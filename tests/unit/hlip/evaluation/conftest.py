"""Fixtures of the evaluation tests: a synthetic benchmark and a tiny exported model (tiny BERT text tower)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from hlip.evaluation.benchmarks.base import Benchmark, Task
from testkit.threads import torch_threads

CLASSES = ("normal", "stroke", "glioma", "meningioma", "metastasis")
FINDINGS = ("stroke", "glioma", "meningioma", "metastasis")
WORDS = ("normal", "brain", "acute", "infarct", "mass", "lesion", "edema", "enhancement", "no", "the", "mri")


class SyntheticBenchmark(Benchmark):
    """Random small studies (1-3 scans of 16x32x32) with labels and reports; counts `load` calls.

    Args:
        n: Studies.
        task: "multiclass" (5 classes, balanced) or "multilabel" (4 findings, random).
        seed: Seed of labels, volumes and reports.
    """

    name: ClassVar[str] = "synthetic"
    prompts: ClassVar[str] = "brain_mri_demo"

    def __init__(self, n: int = 20, task: Task = "multiclass", seed: int = 0) -> None:
        self.task = task  # type: ignore[misc]
        self.rng_seed = seed
        rng = np.random.default_rng(seed)
        self.ids = [f"s{i:03d}" for i in range(n)]
        if task == "multiclass":
            y = np.eye(len(CLASSES), dtype=int)[np.arange(n) % len(CLASSES)]
            self._classes = CLASSES
        else:
            y = (rng.random((n, len(FINDINGS))) < 0.4).astype(int)
            y[: len(FINDINGS)] = np.eye(len(FINDINGS), dtype=int)  # every finding present at least once
            y[len(FINDINGS) : 2 * len(FINDINGS)] = 0  # and absent at least once
            self._classes = FINDINGS
        self._labels = pd.DataFrame(y, index=pd.Index(self.ids, name="study_id"), columns=list(self._classes))
        self._reports = pd.Series({i: " ".join(rng.choice(WORDS, size=8)) for i in self.ids})
        self._counts = {i: int(rng.integers(1, 4)) for i in self.ids}
        self.load_calls = 0

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    def study_ids(self) -> list[str]:
        return list(self.ids)

    def labels(self) -> pd.DataFrame:
        return self._labels.copy()

    def reports(self) -> pd.Series | None:
        return self._reports

    def load(self, study_id: str) -> np.ndarray:
        self.load_calls += 1
        rng = np.random.default_rng([self.rng_seed, self.ids.index(study_id)])
        return rng.random((self._counts[study_id], 16, 32, 32), dtype=np.float32)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An exported `hlip-tiny` model whose text tower is a tiny BERT (random weights, spread wide enough that the
    class prompts' text embeddings differ: at BERT's usual 0.02 they are collinear to 1e-6, and zero-shot tests of
    planted embeddings would rank by float noise)."""
    import torch

    from hlip.models import create_model
    from hlip.models.export import save_model
    from testkit.tiny_bert import write_tiny_bert

    torch.manual_seed(0)
    bert = write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"), initializer_range=0.5)
    model = create_model("hlip-tiny", overrides={"text": {"model_dir": str(bert)}})
    return save_model(model, tmp_path_factory.mktemp("model") / "model", metadata={"purpose": "tests"})


@pytest.fixture
def synthetic() -> type[SyntheticBenchmark]:
    """The synthetic benchmark class."""
    return SyntheticBenchmark
