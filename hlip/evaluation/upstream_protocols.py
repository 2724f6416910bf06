"""Upstream HLIP's evaluation protocols, restated from its zero-shot scripts, as named options next to ours.

Our default protocol (thresholds chosen on a validation split, bootstrap intervals) stays the default everywhere;
these options exist so a number can be compared with a number upstream reports, on upstream's terms:

- `hlip_ct_rate`: CT-RATE with upstream's 16 labels (its 18 minus `Medical material` and `Lymphadenopathy`), each
  scored by a 2-way softmax over ("Not X", "X") wrapped in "The volume shows: {}.", macro AUC; the accuracy-type
  metrics use a per-label threshold searched **on the test set itself** (the fVLM search upstream copies: 100
  thresholds in [0, 1], the one closest to the ROC corner), which is optimistic and is flagged as such.
- `hlip_pub_brain_5`: Pub-Brain-5, balanced accuracy of the argmax (and AUC), brain studies resized to 144 slices.
- `hlip_rsna_ich`, `hlip_cq500`: macro AUC, head studies resized to 144 slices.

Upstream evaluates one study at a time (batch 1). `resize_slices` restates its slice resampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hlip.evaluation.metrics import auc_per_label, binary_counts, macro
from hlip.evaluation.prompts import FindingPrompts, PromptSet

#: Upstream's CT-RATE labels and their (absent, present) phrases (zeroshot_metadata_ct_rate.py).
CT_RATE_PROMPTS: dict[str, tuple[str, str]] = {
    "Emphysema": ("Not emphysema", "Emphysema"),
    "Atelectasis": ("Not atelectatic", "Atelectasis"),
    "Lung nodule": ("Not nodule", "Nodule"),
    "Lung opacity": ("Not opacity", "Opacity"),
    "Pulmonary fibrotic sequela": ("Not pulmonary fibrotic sequela", "Pulmonary fibrotic sequela"),
    "Pleural effusion": ("Not pleural effusion", "Pleural effusion"),
    "Mosaic attenuation pattern": ("Not mosaic attenuation pattern", "Mosaic attenuation pattern"),
    "Peribronchial thickening": ("Not peribronchial thickening", "Peribronchial thickening"),
    "Consolidation": ("Not consolidation", "Consolidation"),
    "Bronchiectasis": ("Not bronchiectasis", "Bronchiectasis"),
    "Interlobular septal thickening": ("Not interlobular septal thickening", "Interlobular septal thickening"),
    "Cardiomegaly": ("Not cardiomegaly", "Cardiomegaly"),
    "Pericardial effusion": ("Not pericardial effusion", "Pericardial effusion"),
    "Coronary artery wall calcification": (
        "Not coronary artery wall calcification",
        "Coronary artery wall calcification",
    ),
    "Hiatal hernia": ("Not hiatal hernia", "Hiatal hernia"),
    "Arterial wall calcification": ("Not arterial wall calcification", "Arterial wall calcification"),
}
CT_RATE_DROPPED = ("Medical material", "Lymphadenopathy")
VOLUME_TEMPLATE = "The volume shows: {}."
EVAL_SLICES = 144


@dataclass(frozen=True)
class UpstreamProtocol:
    """One of upstream's evaluation protocols.

    Attributes:
        name: Option name (`hlip_<benchmark>`).
        benchmark: Our benchmark adapter it runs on.
        metric: Headline metric: `macro_auc` or `balanced_accuracy`.
        labels: Labels evaluated (empty: all of the benchmark's).
        slices: Slices every scan is resized to at evaluation (None: the model's contract size).
        thresholds: `test_set_search` (tuned on the test set: optimistic) or `none` (threshold-free metrics only).
    """

    name: str
    benchmark: str
    metric: str
    labels: tuple[str, ...] = ()
    slices: int | None = None
    thresholds: str = "none"

    @property
    def tuned_on_test(self) -> bool:
        """True when some reported metric used thresholds chosen on the very labels it is scored on."""
        return self.thresholds == "test_set_search"


PROTOCOLS: dict[str, UpstreamProtocol] = {
    p.name: p
    for p in (
        UpstreamProtocol("hlip_ct_rate", "ct_rate", "macro_auc", tuple(CT_RATE_PROMPTS), None, "test_set_search"),
        UpstreamProtocol("hlip_pub_brain_5", "pub_brain_5", "balanced_accuracy", (), EVAL_SLICES),
        UpstreamProtocol("hlip_rsna_ich", "rsna_ich", "macro_auc", (), EVAL_SLICES),
        UpstreamProtocol("hlip_cq500", "cq500", "macro_auc", (), EVAL_SLICES),
    )
}


def get_protocol(name: str) -> UpstreamProtocol:
    """The protocol named `name`.

    Raises:
        KeyError: Unknown name (the message lists the known ones).
    """
    if name not in PROTOCOLS:
        raise KeyError(f"unknown upstream protocol {name!r}; known: {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


def ct_rate_prompt_set() -> PromptSet:
    """Upstream's CT-RATE prompts in our prompt-set form: per label, softmax over ("Not X", "X") in the template."""
    findings = {k: FindingPrompts(positive=(pos,), negative=(neg,)) for k, (neg, pos) in CT_RATE_PROMPTS.items()}
    return PromptSet(
        name="hlip_ct_rate",
        version=1,
        templates=(VOLUME_TEMPLATE,),
        findings=findings,
        description="Upstream HLIP's CT-RATE prompts (16 labels, 'Not X' vs 'X', 'The volume shows: {}.')",
    )


def fvlm_threshold(y_true: np.ndarray, scores: np.ndarray, steps: int = 100) -> float:
    """The threshold of `steps` in [0, 1] closest to the ROC corner (FPR 0, TPR 1); ties go to the larger one.

    This is the search upstream copies from fVLM. Applied to test labels it tunes on the test set.
    """
    best, best_distance = 0.0, math.inf
    positives, negatives = max(int(y_true.sum()), 1), max(int((1 - y_true).sum()), 1)
    for threshold in np.linspace(0.0, 1.0, steps):
        predicted = scores > threshold
        tpr = float((predicted & (y_true == 1)).sum()) / positives
        fpr = float((predicted & (y_true == 0)).sum()) / negatives
        distance = math.hypot(1.0 - tpr, fpr)
        if distance <= best_distance:
            best, best_distance = float(threshold), distance
    return best


def evaluate_multilabel(
    protocol: UpstreamProtocol, y_true: np.ndarray, scores: np.ndarray, labels: list[str]
) -> dict[str, object]:
    """Upstream's numbers for a multi-label benchmark: macro AUC over the protocol's labels, plus (for a
    `test_set_search` protocol) accuracy, F1, precision and recall at test-tuned thresholds, flagged.

    Args:
        protocol: The protocol.
        y_true: `[N, C]` 0/1 labels of the benchmark's label order `labels`.
        scores: `[N, C]` present-probabilities (the softmax over the prompt pair).
        labels: The benchmark's label names.

    Raises:
        ValueError: A protocol label is not among `labels`.
    """
    keep = list(protocol.labels) or labels
    missing = [label for label in keep if label not in labels]
    if missing:
        raise ValueError(f"{protocol.name}: labels {missing} are not in the benchmark's labels {labels}")
    cols = [labels.index(label) for label in keep]
    y, s = y_true[:, cols], scores[:, cols]
    aucs = auc_per_label(y, s)
    out: dict[str, object] = {"protocol": protocol.name, "labels": keep, "macro_auc": macro(aucs)}
    if protocol.tuned_on_test:
        thresholds = np.array([fvlm_threshold(y[:, j], s[:, j]) for j in range(len(keep))])
        tp, fp, fn, tn = binary_counts(y, (s > thresholds).astype(int))
        with np.errstate(divide="ignore", invalid="ignore"):
            out.update(
                {
                    "accuracy_tuned_on_test": float(np.mean((tp + tn) / (tp + fp + fn + tn))),
                    "f1_tuned_on_test": float(np.nanmean(2 * tp / (2 * tp + fp + fn))),
                    "precision_tuned_on_test": float(np.nanmean(tp / (tp + fp))),
                    "recall_tuned_on_test": float(np.nanmean(tp / (tp + fn))),
                }
            )
        out["warning"] = "thresholds were tuned on the test labels (upstream's protocol): optimistic"
    return out


def balanced_accuracy(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mean per-class recall of the argmax of `scores [N, K]` against class indices `y_true [N]`."""
    predicted = scores.argmax(axis=1)
    recalls = [float((predicted[y_true == k] == k).mean()) for k in np.unique(y_true)]
    return float(np.mean(recalls))


def resize_slices(volume: torch.Tensor, slices: int = EVAL_SLICES) -> torch.Tensor:
    """`[..., D, H, W]` -> `[..., slices, H, W]`: nearest-exact along the slice axis, in-plane kept (upstream's
    brain evaluation resamples every scan to 144 slices)."""
    lead, (d, h, w) = volume.shape[:-3], volume.shape[-3:]
    flat = volume.reshape(-1, 1, d, h, w).float()
    out = F.interpolate(flat, size=(slices, h, w), mode="nearest-exact")  # [M, 1, slices, H, W]
    return out.reshape(*lead, slices, h, w).to(volume.dtype)
