"""Configuration of the demo corpus: one frozen dataclass, whose default instance defines the embedded corpus."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from demo_corpus.vocabulary import CLASSES
from hlip.config import from_dict, to_dict


@dataclass(frozen=True)
class DemoCorpusConfig:
    """What the demo corpus generator writes. Equal configs give byte-identical corpora.

    Attributes:
        seed: Root of every random draw (per-study generators derive from ``(seed, part, index)``).
        n_train_studies: Studies in the uncurated training part.
        n_benchmark_studies: Studies in the held-out benchmark, balanced over the five classes.
        train_class_shares: Share of each class of ``CLASSES`` in the training part, in that order.
        follow_up_share: Share of studies that are a follow-up of an earlier study of the same patient.
        bad_file_share: Deliberately bad files as a share of all files (each defect kind appears at least once
            per part whatever the share).
        multiframe_share: Share of image series written as Enhanced MR Image Storage (one multi-frame file).
        template_resolution_mm: MNI152 template resolution the anatomy is sampled from (1 or 2 mm; 2 is faster
            and coarser, for tests).
        matrix_scale: Multiplies every in-plane acquisition matrix (below 1 for tiny test corpora).
        slice_spacing_scale: Multiplies every slice spacing (above 1 for tiny test corpora).
        report_anomalies: Add the RIS anomalies (a study with no report, an orphan report, an empty report) to
            the training part.
    """

    seed: int = 20261122
    n_train_studies: int = 1100
    n_benchmark_studies: int = 200
    train_class_shares: tuple[float, ...] = (0.30, 0.175, 0.175, 0.175, 0.175)
    follow_up_share: float = 0.12
    bad_file_share: float = 0.012
    multiframe_share: float = 0.55
    template_resolution_mm: int = 1
    matrix_scale: float = 1.0
    slice_spacing_scale: float = 1.0
    report_anomalies: bool = True

    def __post_init__(self) -> None:
        if self.n_train_studies < 0 or self.n_benchmark_studies < 0:
            raise ValueError("study counts must be >= 0")
        if len(self.train_class_shares) != len(CLASSES) or any(s < 0 for s in self.train_class_shares):
            raise ValueError(f"train_class_shares needs {len(CLASSES)} non-negative shares, one per {CLASSES}")
        if abs(sum(self.train_class_shares) - 1.0) > 1e-6:
            raise ValueError("train_class_shares must sum to 1")
        for name in ("follow_up_share", "bad_file_share", "multiframe_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")
        if self.template_resolution_mm not in (1, 2):
            raise ValueError("template_resolution_mm must be 1 or 2")
        if not 0.2 <= self.matrix_scale <= 2.0 or not 0.5 <= self.slice_spacing_scale <= 4.0:
            raise ValueError("matrix_scale must lie in [0.2, 2] and slice_spacing_scale in [0.5, 4]")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DemoCorpusConfig:
        """Build a config from plain data (YAML/JSON), rejecting keys the dataclass does not define.

        Raises:
            ValueError: On an unknown key or an invalid value.
        """
        return from_dict(cls, data, where="DemoCorpusConfig")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists instead of tuples), the inverse of `from_dict`."""
        return to_dict(self)

    @classmethod
    def tiny(cls, seed: int = 7, n_train_studies: int = 10, n_benchmark_studies: int = 5) -> DemoCorpusConfig:
        """A corpus of a few studies with small matrices, generated in seconds: for tests of other stages."""
        return cls(
            seed=seed,
            n_train_studies=n_train_studies,
            n_benchmark_studies=n_benchmark_studies,
            template_resolution_mm=2,
            matrix_scale=0.4,
            slice_spacing_scale=2.0,
        )
