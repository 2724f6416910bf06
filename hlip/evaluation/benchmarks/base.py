"""The interface every benchmark adapter implements.

An adapter reads a public benchmark (or the demo benchmark) in the layout its owners distribute and serves studies
as model-ready scans, with labels and, where the benchmark has them, reports. Evaluation code only sees this
interface, so a new benchmark is one new adapter.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

import numpy as np
import pandas as pd

Task = Literal["multilabel", "multiclass"]


class Benchmark(ABC):
    """A labelled set of studies.

    Class attributes:
        name: Registry name (`hlip evaluate --benchmark NAME`).
        task: "multilabel" (independent findings, per-label AUC) or "multiclass" (exactly one class per study).
        prompts: Name of the prompt set in `hlip/evaluation/prompts/` used for zero-shot classification.
    """

    name: ClassVar[str]
    task: ClassVar[Task]
    prompts: ClassVar[str]

    @property
    @abstractmethod
    def classes(self) -> tuple[str, ...]:
        """Label names, in the column order of `labels()`."""

    @abstractmethod
    def study_ids(self) -> list[str]:
        """Study identifiers (de-identified or the benchmark's own public ids), sorted."""

    @abstractmethod
    def labels(self) -> pd.DataFrame:
        """0/1 label matrix: index = study id, columns = `classes` (multiclass: exactly one 1 per row)."""

    def reports(self) -> pd.Series | None:
        """Report text per study id (for retrieval), or None when the benchmark has no reports."""
        return None

    @abstractmethod
    def load(self, study_id: str) -> np.ndarray:
        """Preprocessed scans of one study: float32 `[N, D, H, W]` in [0, 1], N >= 1."""
