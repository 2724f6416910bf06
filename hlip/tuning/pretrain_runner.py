"""The real sweep objective: a short pre-training run scored by a quick zero-shot evaluation.

This module is the only place where the sweep meets `hlip.training` and `hlip.evaluation`, both imported lazily.
Each trial trains into its own folder (``<pretrain.out>/sweep/<hash of the overrides>``) with
`hlip.training.pretrain.run_pretrain`, scored after every epoch of the contrastive stage by
`hlip.evaluation.quick.make_quick_evaluator` (zero-shot on the benchmark's validation split, never its test rows);
the last reported value is the trial's result. ``sweep.objective: quadratic`` checks the sweep's plumbing alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlip.tuning.objective import Report
from hlip.tuning.space import apply_overrides


@dataclass
class PretrainRunner:
    """Picklable `TrialRunner`: overrides -> short pre-training -> quick zero-shot metric.

    Attributes:
        base_params: The whole `params.yaml` (nested); each trial applies its overrides to a copy.
        metric: The evaluator's metric reported after each evaluation and returned, e.g. ``zero_shot.macro_auc``.
    """

    base_params: dict[str, Any]
    metric: str = "zero_shot.macro_auc"

    def __call__(self, overrides: dict[str, Any], report: Report) -> float:
        from hlip.training.config import PretrainConfig
        from hlip.training.pretrain import run_pretrain

        params = apply_overrides(self.base_params, overrides)
        block = dict(params["pretrain"])
        tag = hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:12]
        block["out"] = str(Path(block.get("out", "outputs/pretrain")) / "sweep" / tag)
        config = PretrainConfig.from_params(block)
        last: list[float] = []

        def record(step: int, value: float) -> None:
            last.append(float(value))
            report(step, value)

        run_pretrain(config, evaluator=self._evaluator(params), report=record, report_metric=self.metric,
                     progress=False)  # fmt: skip
        if not last:
            raise RuntimeError(f"the trial reported no {self.metric}: set pretrain.eval_every so it evaluates")
        return last[-1]

    def _evaluator(self, params: dict[str, Any]) -> Any:
        from hlip.evaluation.quick import make_quick_evaluator

        return make_quick_evaluator(params, metric=self.metric)


def make_pretrain_runner(base_params: dict[str, Any], metric: str = "zero_shot.macro_auc") -> PretrainRunner:
    """The sweep's real objective over `base_params` (the whole `params.yaml`)."""
    return PretrainRunner(base_params=base_params, metric=metric)
