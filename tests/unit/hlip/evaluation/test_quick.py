"""The training-time zero-shot evaluator scores only the validation split, with the current weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from hlip.evaluation.metrics import auc_per_label, macro
from hlip.evaluation.quick import QuickZeroShot
from hlip.evaluation.thresholds import validation_split


def test_quick_evaluator_loads_only_validation_rows_and_matches_a_direct_computation(
    tiny_model_dir: Path, synthetic: type
) -> None:
    import torch

    from hlip.evaluation.model_handle import ModelHandle
    from hlip.evaluation.prompts import load_prompt_set
    from hlip.evaluation.zero_shot import zero_shot_scores

    bench = synthetic(n=20, task="multiclass")
    quick = QuickZeroShot(bench, val_fraction=0.3, seed=0)
    labels = bench.labels().to_numpy()
    val, _test = validation_split(labels, 0.3, 0)
    assert bench.load_calls == len(val)  # the test rows are never loaded
    assert 0 < len(val) < len(labels)

    handle = ModelHandle(tiny_model_dir, device="cpu")
    model = handle.model
    metrics = quick(model, step=0)
    assert set(metrics) == {"zero_shot.macro_auc", "zero_shot.balanced_accuracy"}

    # The same scores computed independently through the evaluation's own pieces.
    from hlip.evaluation.embeddings import encode_texts

    ids = bench.study_ids()
    with torch.no_grad():
        image = torch.cat(
            [model.encode_image(torch.from_numpy(bench.load(ids[i]))[None, :, None], normalize=True) for i in val]
        ).numpy()
    scores = zero_shot_scores(
        image,
        load_prompt_set(bench.prompts),
        bench.classes,
        bench.task,
        lambda texts: encode_texts(handle, texts),
        float(model.logit_scale.exp()),
    ).scores
    assert metrics["zero_shot.macro_auc"] == pytest.approx(macro(auc_per_label(labels[val], scores)), abs=1e-5)

    # Other weights give other scores: the evaluator reads the model it is handed, not a cached copy.
    with torch.no_grad():
        for p in model.visual.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    assert quick(model, step=1) != metrics
