"""The linear probe: it learns what the embeddings carry, and falls back to a stated constant where it cannot."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from hlip.evaluation.linear_probe import out_of_fold_scores, probe_scores

CS = (0.01, 0.1, 1.0, 10.0)


def _clusters(n_per_class: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_classes, 16))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return centres[labels] + rng.normal(size=(labels.size, 16)), np.eye(n_classes)[labels]


def test_multiclass_probe_separates_separable_classes() -> None:
    x, y = _clusters(12, 4, seed=0)
    x_test, y_test = _clusters(12, 4, seed=0)
    x_test = x_test + np.random.default_rng(1).normal(scale=0.1, size=x_test.shape)
    result = probe_scores(x, y, x_test, "multiclass", CS)
    assert result.scores.shape == y_test.shape
    np.testing.assert_allclose(result.scores.sum(1), 1.0, atol=1e-6)
    assert roc_auc_score(y_test, result.scores, average="macro") > 0.95
    assert len(result.chosen_c) == 1
    assert result.chosen_c[0] in CS


def test_multiclass_class_absent_from_training_scores_zero() -> None:
    x, y = _clusters(8, 3, seed=2)
    y5 = np.zeros((len(y), 5))
    y5[:, [0, 1, 3]] = y
    scores = probe_scores(x, y5, x[:4], "multiclass", CS).scores
    assert np.all(scores[:, [2, 4]] == 0.0)
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-6)


def test_multiclass_with_no_class_of_two_rows_falls_back_to_prevalence() -> None:
    # Three validation studies of three different classes: no stratified split exists, sklearn would raise.
    x = np.random.default_rng(3).normal(size=(3, 8))
    y = np.eye(5)[[0, 1, 2]]
    result = probe_scores(x, y, x, "multiclass", CS)
    np.testing.assert_allclose(result.scores, np.tile([1 / 3, 1 / 3, 1 / 3, 0, 0], (3, 1)))
    assert result.chosen_c == ()


def test_multiclass_singleton_class_beside_larger_ones_is_still_fitted() -> None:
    x, y = _clusters(6, 3, seed=4)
    y_extra = np.zeros((1, 4))
    y_extra[0, 3] = 1
    y4 = np.vstack([np.hstack([y, np.zeros((len(y), 1))]), y_extra])
    x4 = np.vstack([x, x[:1] + 10.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = probe_scores(x4, y4, x4, "multiclass", CS)
    assert len(result.chosen_c) == 1
    assert result.scores[:, 3].max() > 0.0


def test_multilabel_rare_label_gets_its_training_prevalence() -> None:
    x, y = _clusters(10, 2, seed=5)
    rare = np.zeros((len(y), 1))
    rare[0] = 1
    result = probe_scores(x, np.hstack([y, rare]), x[:5], "multilabel", CS)
    np.testing.assert_allclose(result.scores[:, 2], 1 / len(y))
    assert np.isnan(result.chosen_c[2])
    assert result.chosen_c[0] in CS
    assert roc_auc_score(y[:, 0], probe_scores(x, y, x, "multilabel", CS).scores[:, 0]) > 0.95


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_out_of_fold_scores_never_see_their_own_row(task: str) -> None:
    # Pure noise: a probe scoring rows it was fitted on would separate them (it can memorise 16 features for 24 rows);
    # cross-fitted scores must not.
    rng = np.random.default_rng(6)
    x = rng.normal(size=(24, 16))
    y = np.eye(2)[rng.permutation(np.repeat([0, 1], 12))]
    in_sample = probe_scores(x, y, x, task, (1e4,)).scores[:, 1]
    held_out = out_of_fold_scores(x, y, task, (1e4,), folds=4)[:, 1]
    assert roc_auc_score(y[:, 1], in_sample) > 0.95
    assert roc_auc_score(y[:, 1], held_out) < 0.8
