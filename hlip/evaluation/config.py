"""Evaluation settings: the `evaluate` block of `params.yaml` (less its paths), as a frozen dataclass.

Build it with `hlip.config.from_dict(EvaluateConfig, block)`; unknown keys fail loudly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Protocol = Literal["validation", "test_set (peers)"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)


@dataclass(frozen=True)
class EvaluateConfig:
    """How a model is evaluated on one benchmark.

    Attributes:
        prompts: Prompt set name (`hlip/evaluation/prompts/<name>.yaml`) or a YAML path; None uses the
            benchmark's own set (`Benchmark.prompts`).
        templates: Templates that replace the prompt set's own (each holds one `{}`); None keeps the set's.
        protocol: Where decision thresholds are chosen. "validation": on a validation split that never
            overlaps the test rows (a seeded stratified split of the benchmark when it has no validation
            split of its own); every zero-shot and probe metric is then computed on the test rows only.
            "test_set (peers)": thresholds tuned on the test set itself, as the CT-CLIP / fVLM / HLIP code
            does; comparable with their tables, optimistic. The protocol is written into every result.
        val_fraction: Share of studies held out for validation when the benchmark has no validation split.
        n_boot: Bootstrap resamples (of test studies) for confidence intervals; 0 disables them.
        ci: Confidence level of the percentile intervals.
        seed: Seed of the validation split, the bootstrap and the linear probe's folds.
        batch_size: Studies per forward pass when computing embeddings.
        device: "cpu", "cuda" or "auto" (cuda when available).
        retrieval_ks: K of report<->study Recall@K (values >= the gallery size are dropped).
        map_ks: K of study->study MAP@K (CT-CLIP definition) and of the standard mAP@K.
        linear_probe: Also fit a logistic-regression probe on frozen study embeddings.
        probe_cs: Inverse regularisation strengths searched by cross-validation for the probe.
        probe_folds: Cross-validation folds (capped by the rarest class) for choosing the probe's C.
        calibration_bins: Bins of the reliability plot.
    """

    prompts: str | None = None
    templates: tuple[str, ...] | None = None
    protocol: str = "validation"
    val_fraction: float = 0.3
    n_boot: int = 1000
    ci: float = 0.95
    seed: int = 0
    batch_size: int = 4
    device: str = "auto"
    retrieval_ks: tuple[int, ...] = (1, 5, 10, 50, 100)
    map_ks: tuple[int, ...] = (1, 5, 10, 50)
    linear_probe: bool = True
    probe_cs: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
    probe_folds: int = 5
    calibration_bins: int = 10

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"evaluate.protocol must be one of {list(PROTOCOLS)}, got {self.protocol!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"evaluate.val_fraction must lie in (0, 1), got {self.val_fraction}")
        if self.n_boot < 0:
            raise ValueError(f"evaluate.n_boot must be >= 0, got {self.n_boot}")
        if not 0.0 < self.ci < 1.0:
            raise ValueError(f"evaluate.ci must lie in (0, 1), got {self.ci}")
        if self.batch_size < 1:
            raise ValueError(f"evaluate.batch_size must be >= 1, got {self.batch_size}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"evaluate.device must be auto, cpu or cuda[:i], got {self.device!r}")
        if any(k < 1 for k in (*self.retrieval_ks, *self.map_ks)):
            raise ValueError("evaluate.retrieval_ks and evaluate.map_ks must be positive")
        if self.templates is not None and any(t.count("{}") != 1 for t in self.templates):
            raise ValueError(f"evaluate.templates: every template needs exactly one '{{}}', got {list(self.templates)}")

    @property
    def peers_protocol(self) -> bool:
        """True when thresholds are tuned on the test set (the peers' protocol)."""
        return self.protocol == "test_set (peers)"
