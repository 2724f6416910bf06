"""Upstream HLIP's evaluation protocols: its CT-RATE labels and prompts, test-tuned thresholds (flagged), balanced
accuracy, 144-slice resampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from hlip.evaluation.upstream_protocols import (
    CT_RATE_DROPPED,
    balanced_accuracy,
    ct_rate_prompt_set,
    evaluate_multilabel,
    fvlm_threshold,
    get_protocol,
    resize_slices,
)

CT_RATE_18 = [
    "Medical material", "Arterial wall calcification", "Cardiomegaly", "Pericardial effusion",
    "Coronary artery wall calcification", "Hiatal hernia", "Lymphadenopathy", "Emphysema", "Atelectasis",
    "Lung nodule", "Lung opacity", "Pulmonary fibrotic sequela", "Pleural effusion", "Mosaic attenuation pattern",
    "Peribronchial thickening", "Consolidation", "Bronchiectasis", "Interlobular septal thickening",
]  # fmt: skip


def test_ct_rate_prompts_are_upstreams_16_pairs_in_the_volume_template() -> None:
    prompts = ct_rate_prompt_set()
    assert len(prompts.findings) == 16
    assert not set(CT_RATE_DROPPED) & set(prompts.findings)
    assert set(prompts.findings) < set(CT_RATE_18)
    assert prompts.templates == ("The volume shows: {}.",)
    assert prompts.templates[0].format(prompts.findings["Emphysema"].negative[0]) == "The volume shows: Not emphysema."


def test_fvlm_threshold_picks_the_largest_grid_point_at_the_roc_corner() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert fvlm_threshold(y, s) == pytest.approx(np.linspace(0, 1, 100)[69])  # last grid point below 0.7


def test_ct_rate_protocol_scores_16_labels_and_flags_test_tuned_thresholds() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=(60, 18))
    y[0], y[1] = 0, 1  # both classes in every label
    scores = np.where(y == 1, 0.8, 0.2) + rng.uniform(-0.1, 0.1, size=y.shape)
    for dropped in CT_RATE_DROPPED:  # perfectly wrong on the labels upstream drops: they must not count
        scores[:, CT_RATE_18.index(dropped)] = 1.0 - scores[:, CT_RATE_18.index(dropped)]
    out = evaluate_multilabel(get_protocol("hlip_ct_rate"), y, scores, CT_RATE_18)
    assert out["macro_auc"] == pytest.approx(1.0)
    assert out["accuracy_tuned_on_test"] == pytest.approx(1.0)
    assert "tuned on the test labels" in str(out["warning"])
    assert get_protocol("hlip_ct_rate").tuned_on_test
    assert not get_protocol("hlip_rsna_ich").tuned_on_test
    with pytest.raises(ValueError, match="Emphysema"):
        evaluate_multilabel(get_protocol("hlip_ct_rate"), y[:, 1:], scores[:, 1:], CT_RATE_18[1:7] + ["x"] * 11)
    with pytest.raises(KeyError, match="hlip_cq500"):
        get_protocol("ct_rate")


def test_balanced_accuracy_equals_sklearns_and_brain_protocols_use_144_slices() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 5, size=80)
    scores = rng.normal(size=(80, 5)) + 2 * np.eye(5)[y] * rng.integers(0, 2, size=(80, 1))
    assert balanced_accuracy(y, scores) == pytest.approx(balanced_accuracy_score(y, scores.argmax(axis=1)))
    assert get_protocol("hlip_pub_brain_5").metric == "balanced_accuracy"
    assert {get_protocol(n).slices for n in ("hlip_pub_brain_5", "hlip_rsna_ich", "hlip_cq500")} == {144}


def test_resize_slices_repeats_slices_nearest_and_keeps_the_plane() -> None:
    volume = torch.arange(48, dtype=torch.uint8)[:, None, None].expand(48, 4, 5).clone()
    out = resize_slices(volume[None, None])  # [1, 1, 144, 4, 5]
    assert out.shape == (1, 1, 144, 4, 5)
    assert out.dtype == torch.uint8
    assert torch.equal(out[0, 0, :, 2, 3], torch.arange(48, dtype=torch.uint8).repeat_interleave(3))
