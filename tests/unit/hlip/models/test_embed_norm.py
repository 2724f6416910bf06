"""The batch-normalised study embedding (`embed_norm`) and the warm-up head's prior-bias start."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from hlip.models import create_classifier, create_model
from hlip.models.embed_norm import EmbedBatchNorm

Batch = Callable[..., tuple[torch.Tensor, torch.Tensor]]
SIZE = (16, 32, 32)
BN = {"vision": {"embed_norm": "batchnorm"}}


def test_training_batch_is_standardised_and_running_stats_serve_evaluation() -> None:
    norm = EmbedBatchNorm(4)
    x = torch.randn(64, 4) * 5.0 + 3.0
    y = norm.train()(x)
    torch.testing.assert_close(y.mean(dim=0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=0, unbiased=False), torch.ones(4), atol=1e-3, rtol=0)
    assert torch.all(norm.running_mean > 0.1)  # moved towards the batch mean (3.0)
    single = x[:1]
    running = (norm.running_mean.clone(), norm.running_var.clone())
    out = norm(single)  # one study in training: running statistics, left unchanged
    torch.testing.assert_close(norm.running_mean, running[0])
    torch.testing.assert_close(norm.running_var, running[1])
    torch.testing.assert_close(out, norm.eval()(single))


def test_embedding_varies_across_studies_at_init(study_batch: Batch) -> None:
    """The point of the option: a fresh tower's embeddings are nearly identical; standardised they are not."""
    x, mask = study_batch([2, 1, 3, 2, 1, 2, 3, 1], SIZE)
    spread = {}
    for name, overrides in (("none", None), ("batchnorm", BN)):
        torch.manual_seed(0)
        visual = create_classifier("hlip-tiny", 1, overrides).visual.train()
        with torch.no_grad():
            emb = visual(x, mask)
        spread[name] = float(emb.std(dim=0).norm() / emb.mean(dim=0).norm().clamp(min=1e-12))
    assert spread["none"] < 0.3
    assert spread["batchnorm"] > 10 * spread["none"]


def test_batchnorm_tower_carries_over_from_warmup_to_clip(tiny_text: dict, study_batch: Batch) -> None:
    classifier = create_classifier("hlip-tiny", 3, BN)
    x, mask = study_batch([3, 1, 2], SIZE)
    classifier.train()(x, mask)  # updates the running statistics
    overrides = {**tiny_text, **BN}
    clip = create_model("hlip-tiny", overrides=overrides)
    visual = {k: v for k, v in classifier.state_dict().items() if k.startswith("visual.")}
    assert "visual.embed_norm.running_mean" in visual
    missing, unexpected = clip.load_state_dict(visual, strict=False)
    assert not unexpected
    assert not any(k.startswith("visual.") for k in missing)
    with torch.no_grad():
        torch.testing.assert_close(clip.eval().encode_image(x, mask), classifier.eval().visual(x, mask))


def test_unknown_embed_norm_is_refused() -> None:
    with pytest.raises(ValueError, match="embed_norm must be one of"):
        create_classifier("hlip-tiny", 1, {"vision": {"embed_norm": "layernorm"}})


def test_prior_bias_starts_each_logit_at_its_prevalence(study_batch: Batch) -> None:
    classifier = create_classifier("hlip-tiny", 3)
    classifier.init_prior_bias([0.15, 0.5, 0.0])
    bias = classifier.classifier.bias.detach()
    assert bias[0].item() == pytest.approx(math.log(0.15 / 0.85), rel=1e-5)
    assert bias[1].item() == pytest.approx(0.0, abs=1e-6)
    assert bias[2].item() == pytest.approx(math.log(1e-3 / (1 - 1e-3)), rel=1e-4)  # clamped, finite
    x, mask = study_batch([2, 1], SIZE)
    mean_prob = torch.sigmoid(classifier.eval()(x, mask)["logits"]).mean(dim=0)
    assert abs(mean_prob[0].item() - 0.15) < 0.05  # the tiny initial weights hardly move it
    with pytest.raises(ValueError, match="2 prevalences for 3 findings"):
        classifier.init_prior_bias([0.1, 0.2])
