"""Retrieval metrics on hand-built embeddings."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from hlip.evaluation.retrieval import ctclip_map_at_k, mean_average_precision, recall_at_k, usable_ks


def _unit(angles_deg: list[float]) -> np.ndarray:
    a = np.deg2rad(angles_deg)
    return np.stack([np.cos(a), np.sin(a)], axis=1).astype(np.float64)


def test_recall_at_k_counts_where_the_paired_item_ranks() -> None:
    gallery = _unit([0, 90, 180, 270])
    # query i should retrieve gallery item i
    query = _unit([5, 150, 300, 275])
    got = recall_at_k(query, gallery, [1, 2, 3])
    # ranks of own item: q0 -> 0, q1 -> 1 (item 2 is closer), q2 -> 2 (items 3 and 0 are closer), q3 -> 0
    assert got == {1: 0.5, 2: 0.75, 3: 1.0}


def test_ctclip_map_at_k_on_a_hand_built_example() -> None:
    # 4 studies on a line of angles; labels over 2 findings; study 3 has no finding (not in the gallery).
    emb = _unit([0, 10, 30, 5])
    labels = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    got = ctclip_map_at_k(emb, labels, [1, 2])
    # K=1 neighbours within gallery {0,1,2} minus self: q0 -> 1 (J=1/2), q1 -> 0 (1/2), q2 -> 1 (1/2), q3 -> 0 (0)
    assert got[1] == pytest.approx((0.5 + 0.5 + 0.5 + 0.0) / 4)
    # K=2: q0 -> 1, 2 (1/2, 0); q1 -> 0, 2 (1/2, 1/2); q2 -> 1, 0 (1/2, 0); q3 -> 0, 1 (0, 0)
    assert got[2] == pytest.approx((0.25 + 0.5 + 0.25 + 0.0) / 4)
    with_self = ctclip_map_at_k(emb, labels, [1], exclude_self=False)
    assert with_self[1] == pytest.approx((1 + 1 + 1 + 0.0) / 4)  # CT-CLIP's own code: top-1 is the query itself


def test_standard_map_matches_sklearn_average_precision() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(12, 4))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = np.eye(3, dtype=int)[np.arange(12) % 3]
    got = mean_average_precision(emb, labels, [3])
    aps = []
    for q in range(12):
        others = np.delete(np.arange(12), q)
        relevant = labels[others].argmax(1) == labels[q].argmax()
        aps.append(average_precision_score(relevant, emb[others] @ emb[q]))
    assert got["map"] == pytest.approx(np.mean(aps))
    assert 0.0 <= got["map_at_3"] <= 1.0


def test_usable_ks_drops_trivial_k() -> None:
    assert usable_ks([1, 5, 10, 50, 100], 20) == [1, 5, 10]
    assert usable_ks([5], 3) == [1]
