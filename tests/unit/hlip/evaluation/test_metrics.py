"""Classification metrics, thresholds, validation split and bootstrap against sklearn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from hlip.evaluation.bootstrap import bootstrap_ci
from hlip.evaluation.metrics import auc_per_label, confusion, headline, multiclass_metrics, thresholded_metrics
from hlip.evaluation.thresholds import choose_thresholds, roc_corner_threshold, validation_split


def test_auc_matches_sklearn_with_ties_and_nan_for_one_class_labels() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((60, 3)) < 0.4).astype(int)
    s = np.round(rng.random((60, 3)), 1)  # many ties
    y[:, 2] = 0
    auc = auc_per_label(y, s)
    for c in range(2):
        assert auc[c] == pytest.approx(roc_auc_score(y[:, c], s[:, c]))
    assert np.isnan(auc[2])


def test_auc_of_a_hand_computed_example() -> None:
    # positives 0.8, 0.4; negatives 0.6, 0.2: pairs (0.8>0.6, 0.8>0.2, 0.4<0.6, 0.4>0.2) -> 3/4
    assert auc_per_label(np.array([[1], [0], [1], [0]]), np.array([[0.8], [0.6], [0.4], [0.2]]))[0] == 0.75


def test_thresholded_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random((50, 2)) < 0.5).astype(int)
    s = rng.random((50, 2))
    thresholds = np.array([0.3, 0.6])
    got = thresholded_metrics(y, s, thresholds)
    for c in range(2):
        pred = (s[:, c] >= thresholds[c]).astype(int)
        assert got["f1"][c] == pytest.approx(f1_score(y[:, c], pred))
        assert got["precision"][c] == pytest.approx(precision_score(y[:, c], pred))
        assert got["recall"][c] == pytest.approx(recall_score(y[:, c], pred))
        assert got["balanced_accuracy"][c] == pytest.approx(balanced_accuracy_score(y[:, c], pred))


def test_multiclass_metrics_match_sklearn_and_confusion_counts() -> None:
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 4, 40)
    y = np.eye(4, dtype=int)[truth]
    s = rng.random((40, 4)) + 0.8 * y  # mostly right
    got = multiclass_metrics(y, s)
    pred = s.argmax(1)
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(truth, pred))
    assert got["macro_f1"] == pytest.approx(f1_score(truth, pred, average="macro"))
    matrix = confusion(y, s)
    assert matrix.sum() == 40
    assert np.trace(matrix) == (pred == truth).sum()


def test_roc_corner_threshold_picks_the_point_closest_to_top_left() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.7, 0.6, 0.8, 0.9])
    # t=0.6 -> TPR 1, FPR 1/3 (d=0.333); t=0.8 -> TPR 2/3, FPR 0 (d=0.333); t=0.7 -> TPR 2/3, FPR 1/3; ties -> larger t
    assert roc_corner_threshold(y, s) == 0.8
    assert roc_corner_threshold(np.array([1, 1]), np.array([0.2, 0.3])) == 0.5  # one class: default


def test_validation_split_is_disjoint_seeded_and_stratified() -> None:
    y = np.eye(5, dtype=int)[np.arange(50) % 5]
    val, test = validation_split(y, 0.3, seed=3)
    assert not set(val) & set(test)
    assert sorted([*val, *test]) == list(range(50))
    assert (y[val].sum(0) == 3).all()  # 30% of each class of 10
    again, _ = validation_split(y, 0.3, seed=3)
    other, _ = validation_split(y, 0.3, seed=4)
    assert np.array_equal(val, again)
    assert not np.array_equal(val, other)


def test_thresholds_chosen_on_validation_rows_ignore_test_rows() -> None:
    rng = np.random.default_rng(5)
    y = (rng.random((40, 3)) < 0.5).astype(int)
    y[:6, :] = np.tile([[1], [0]], (3, 3))
    s = rng.random((40, 3))
    val, test = validation_split(y, 0.5, seed=0)
    before = choose_thresholds(y[val], s[val])
    s_changed = s.copy()
    s_changed[test] = 1.0 - s_changed[test]  # anything on the test rows
    assert np.array_equal(before, choose_thresholds(y[val], s_changed[val]))
    assert not np.array_equal(before, choose_thresholds(y[test], s_changed[test]))


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_n() -> None:
    def widths(n: int) -> tuple[float, float, float]:
        rng = np.random.default_rng(n)
        y = (rng.random((n, 1)) < 0.5).astype(int)
        s = rng.random((n, 1)) + 0.7 * y
        point = headline(y, s, "multilabel", np.array([0.8]))["macro_auc"]
        ci = bootstrap_ci(lambda rows: headline(y[rows], s[rows], "multilabel", np.array([0.8])), n, 300, seed=0)
        low, high = ci["macro_auc"]
        return point, low, high

    point, low, high = widths(60)
    assert low <= point <= high
    _, low_big, high_big = widths(1200)
    assert high_big - low_big < (high - low) / 2  # ~ 1/sqrt(n): 20x the studies, ~4.5x narrower
    seeded = bootstrap_ci(lambda rows: {"m": float(rows.mean())}, 30, 50, seed=7)
    assert seeded == bootstrap_ci(lambda rows: {"m": float(rows.mean())}, 30, 50, seed=7)
