"""Zero-shot classification from study embeddings and prompt embeddings (no training).

Three scoring rules, as in CLIP / CT-CLIP / HLIP:
- multiclass: one text embedding per class, `softmax(logit_scale * image @ classes.T)` over the classes;
- per-finding pairs: for each finding, `softmax(logit_scale * [cos(image, negative), cos(image, positive)])[1]`,
  i.e. `sigmoid(logit_scale * (cos_pos - cos_neg))`, a probability in [0, 1];
- single positive prompt (a finding with no negative phrasing): the cosine `cos(image, positive)` in [-1, 1].

A class's text embedding is a template ensemble: every phrasing under every template is encoded and
normalised, the mean is taken and re-normalised (open_clip's `build_zero_shot_classifier`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hlip.evaluation.prompts import FindingPrompts, PromptSet

TextEncoder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class ZeroShotScores:
    """Per-study, per-label zero-shot scores.

    Attributes:
        scores: `[N, C]` scores, higher = more likely present.
        probabilistic: `[C]` bool: True where the score is a probability (softmax), False for a cosine.
        rule: "multiclass", "pair", "positive" or "mixed".
    """

    scores: np.ndarray
    probabilistic: np.ndarray
    rule: str


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """`x / ||x||` along `axis` (zero vectors stay zero)."""
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return np.asarray(x / np.where(norm == 0, 1.0, norm), dtype=np.float32)


def ensemble_embedding(encode: TextEncoder, prompt_set: PromptSet, phrasings: Sequence[str]) -> np.ndarray:
    """Template ensemble `[E]`: mean of the normalised embeddings of every (phrasing, template), re-normalised."""
    sentences = prompt_set.render(phrasings)
    return l2_normalize(l2_normalize(encode(sentences)).mean(axis=0))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax."""
    z = logits - logits.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=axis, keepdims=True))


def multiclass_scores(image: np.ndarray, class_text: np.ndarray, logit_scale: float) -> np.ndarray:
    """Class probabilities `[N, C]` = softmax over classes of `logit_scale * image [N, E] @ class_text [C, E].T`."""
    return softmax(logit_scale * image @ class_text.T, axis=1)


def pair_scores(image: np.ndarray, negative: np.ndarray, positive: np.ndarray, logit_scale: float) -> np.ndarray:
    """Probability of presence `[N, C]`: softmax over (negative, positive) per finding; text rows `[C, E]`."""
    logits = np.stack([image @ negative.T, image @ positive.T], axis=-1) * logit_scale  # [N, C, 2]
    return softmax(logits, axis=-1)[..., 1]


def zero_shot_scores(
    image: np.ndarray,
    prompt_set: PromptSet,
    classes: Sequence[str],
    task: str,
    encode: TextEncoder,
    logit_scale: float,
) -> ZeroShotScores:
    """Zero-shot scores of normalised study embeddings `image [N, E]` for the benchmark's `classes`.

    Args:
        image: Study embeddings, L2-normalised.
        prompt_set: The prompts (its `classes` for multiclass, its `findings` for multilabel; a multilabel
            benchmark falls back to `classes` as single positive prompts when the set has no findings).
        classes: Label names in the benchmark's column order.
        task: "multiclass" or "multilabel".
        encode: Sentences -> text embeddings `[T, E]`.
        logit_scale: The model's temperature (exp'd).
    """
    if task == "multiclass":
        text = np.stack([ensemble_embedding(encode, prompt_set, p) for p in prompt_set.class_phrasings(classes)])
        return ZeroShotScores(multiclass_scores(image, text, logit_scale), np.ones(len(classes), bool), "multiclass")
    if task != "multilabel":
        raise ValueError(f"unknown task {task!r}; expected 'multiclass' or 'multilabel'")
    if prompt_set.findings:
        findings = prompt_set.finding_prompts(classes)
    else:
        findings = [FindingPrompts(p) for p in prompt_set.class_phrasings(classes)]
    scores = np.zeros((image.shape[0], len(classes)), np.float32)
    probabilistic = np.array([bool(f.negative) for f in findings])
    positive = np.stack([ensemble_embedding(encode, prompt_set, f.positive) for f in findings])  # [C, E]
    cosine = image @ positive.T  # [N, C]
    scores[:, ~probabilistic] = cosine[:, ~probabilistic]
    if probabilistic.any():
        negative = np.stack([ensemble_embedding(encode, prompt_set, f.negative) for f in findings if f.negative])
        scores[:, probabilistic] = pair_scores(image, negative, positive[probabilistic], logit_scale)
    rule = "pair" if probabilistic.all() else "positive" if not probabilistic.any() else "mixed"
    return ZeroShotScores(scores, probabilistic, rule)
