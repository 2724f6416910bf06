"""Zero-shot scoring rules on hand-made text embeddings (no model)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from hlip.evaluation.prompts import parse_prompt_set
from hlip.evaluation.zero_shot import ensemble_embedding, l2_normalize, zero_shot_scores

VECTORS = {
    "a.": [1.0, 0.0, 0.0],
    "A: a.": [0.0, 1.0, 0.0],
    "b.": [0.0, 0.0, 1.0],
    "A: b.": [0.0, 0.0, 2.0],
    "no a.": [-1.0, 0.0, 0.0],
    "A: no a.": [0.0, -1.0, 0.0],
}


def encode(texts: Sequence[str]) -> np.ndarray:
    return np.array([VECTORS[t] for t in texts])


PROMPTS = parse_prompt_set(
    {
        "version": 1,
        "templates": ["{}.", "A: {}."],
        "classes": {"x": ["a"], "y": ["b"]},
        "findings": {"x": {"positive": ["a"], "negative": ["no a"]}, "y": {"positive": ["b"]}},
    }
)


def test_template_ensemble_is_the_renormalised_mean_of_normalised_embeddings() -> None:
    got = ensemble_embedding(encode, PROMPTS, ["a"])
    assert np.allclose(got, [2**-0.5, 2**-0.5, 0.0])
    assert np.allclose(ensemble_embedding(encode, PROMPTS, ["b"]), [0, 0, 1])  # "A: b." normalised first


def test_multiclass_softmax_and_pair_and_positive_rules() -> None:
    image = l2_normalize(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    mc = zero_shot_scores(image, PROMPTS, ["x", "y"], "multiclass", encode, logit_scale=10.0)
    assert np.allclose(mc.scores.sum(1), 1.0)
    assert (mc.scores.argmax(1) == [0, 1]).all()
    ml = zero_shot_scores(image, PROMPTS, ["x", "y"], "multilabel", encode, logit_scale=10.0)
    assert ml.rule == "mixed"
    assert ml.probabilistic.tolist() == [True, False]
    # pair: sigmoid(scale * (cos_pos - cos_neg)); study 0: cos_pos = 1, cos_neg = -1
    assert ml.scores[0, 0] == pytest.approx(1 / (1 + np.exp(-20.0)))
    assert ml.scores[1, 0] == pytest.approx(0.5)
    assert ml.scores[:, 1] == pytest.approx([0.0, 1.0])  # positive only: the cosine
