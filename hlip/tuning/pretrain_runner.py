"""The real sweep objective: a short pre-training run scored by a quick zero-shot evaluation.

This module is the only place where the sweep meets `hlip.training` and `hlip.evaluation`, both imported lazily.
Each trial trains from scratch into a folder of its own (``<pretrain.out>/sweep/<hash of the overrides>-<random>``:
two trials with the same values never share or resume each other's checkpoints) with
`hlip.training.pretrain.run_pretrain`, scored every `pretrain.eval_every` epochs of the contrastive stage by
`hlip.evaluation.quick.make_quick_evaluator` (zero-shot on the benchmark's validation split, never its test rows).
Only evaluated epochs reach Optuna (the training loop reports nothing after the others); the last evaluated
value is the trial's result. The trial's checkpoints are removed when it ends (a trial never resumes); its model
and ``summary.json`` stay. ``sweep.objective: quadratic`` checks the sweep's plumbing alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlip.config import ConfigError
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
        from hlip.training.checkpoint import checkpoint_dir
        from hlip.training.config import PretrainConfig
        from hlip.training.pretrain import run_pretrain

        params = apply_overrides(self.base_params, overrides)
        block = dict(params["pretrain"])
        if int(block.get("eval_every", 1)) < 1:
            raise ConfigError("params.yaml:pretrain.eval_every: the sweep scores trials in the loop; set it >= 1")
        tag = hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:12]
        root = Path(block.get("out", "outputs/pretrain")) / "sweep"
        root.mkdir(parents=True, exist_ok=True)
        block["out"] = tempfile.mkdtemp(prefix=f"{tag}-", dir=root)
        config = PretrainConfig.from_params(block)
        last: list[float] = []

        def record(epoch: int, value: float) -> None:  # called on evaluated epochs only (hlip.training.loop)
            last.append(float(value))
            report(epoch, value)

        try:
            run_pretrain(config, evaluator=self._evaluator(params, config), report=record, report_metric=self.metric,
                         progress=False)  # fmt: skip
        finally:
            shutil.rmtree(checkpoint_dir(config.out), ignore_errors=True)
        if not last:
            raise RuntimeError(
                f"the trial reported no {self.metric}: the contrastive stage must run at least pretrain.eval_every "
                f"({config.eval_every}) epochs (it has {config.contrastive.epochs})"
            )
        return last[-1]

    def _evaluator(self, params: dict[str, Any], config: Any) -> Any:
        from hlip.evaluation.quick import make_quick_evaluator
        from hlip.training.pretrain import study_contract

        contract = study_contract(config, (params.get("ingest") or {}).get("preprocess"))
        return make_quick_evaluator(params, contract, metric=self.metric)


def make_pretrain_runner(base_params: dict[str, Any], metric: str = "zero_shot.macro_auc") -> PretrainRunner:
    """The sweep's real objective over `base_params` (the whole `params.yaml`)."""
    return PretrainRunner(base_params=base_params, metric=metric)
