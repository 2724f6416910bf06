"""The CLIP model's output dict, temperature, SigLIP variant and the supervised warm-up classifier."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from hlip.models import create_classifier, create_loss, create_model, create_tokenizer
from hlip.models.stem_head import StemHead

Batch = Callable[..., tuple[torch.Tensor, torch.Tensor]]
SIZE = (16, 32, 32)


def test_forward_dict_goes_straight_into_the_loss(tiny_text: dict, study_batch: Batch) -> None:
    model = create_model("hlip-tiny", overrides=tiny_text)
    tokenizer = create_tokenizer("hlip-tiny", overrides=tiny_text)
    x, mask = study_batch([2, 1, 3], SIZE)
    text = tokenizer(["left lesion", "no acute finding", "edema of the brain"])
    out = model(x, text, scan_mask=mask)
    assert set(out) == {"image_features", "text_features", "logit_scale"}
    assert out["image_features"].shape == out["text_features"].shape == (3, 16)
    torch.testing.assert_close(out["image_features"].norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(out["logit_scale"], torch.tensor(1 / 0.07))
    loss = create_loss("clip")(**out)
    loss.backward()
    assert model.visual.blocks[0].attn.qkv.weight.grad is not None
    assert model.logit_scale.grad is not None
    assert model.text.proj.weight.grad is not None
    assert model.text.transformer.embeddings.word_embeddings.weight.grad is None  # hlip-tiny: frozen trunk


def test_encoders_and_temperature_clamp(tiny_text: dict, study_batch: Batch) -> None:
    model = create_model("hlip-tiny", overrides=tiny_text).eval()
    x, mask = study_batch([2, 1], SIZE)
    image = model.encode_image(x, mask, normalize=True)
    assert image.shape == (2, 16)
    assert model.encode_text(torch.tensor([[2, 5, 3]])).shape == (1, 16)
    with torch.no_grad():
        model.logit_scale.fill_(6.0)
    assert model(image=x, scan_mask=mask)["logit_scale"].item() == 100.0
    model.clamp_logit_scale_()
    assert math.isclose(model.logit_scale.item(), math.log(100), rel_tol=1e-6)


def test_siglip_variant(tiny_text: dict, study_batch: Batch) -> None:
    overrides = {**tiny_text, "init_logit_scale": math.log(10), "init_logit_bias": -10.0}
    model = create_model("hlip-tiny", overrides=overrides)
    x, mask = study_batch([1, 2], SIZE)
    out = model(x, torch.tensor([[2, 5, 3], [2, 6, 3]]), scan_mask=mask)
    assert out["logit_bias"].item() == -10.0
    torch.testing.assert_close(out["logit_scale"], torch.tensor(10.0))
    loss = create_loss("siglip")(**out)
    loss.backward()
    assert model.logit_bias is not None
    assert model.logit_bias.grad is not None


def test_warmup_classifier_shares_the_vision_tower(tiny_text: dict, study_batch: Batch) -> None:
    classifier = create_classifier("hlip-tiny", num_classes=5)
    x, mask = study_batch([3, 1], SIZE)
    out = classifier(x, mask)
    assert out["logits"].shape == (2, 5)
    labels = torch.tensor([[1, 0, -1, 0, 1], [0, -1, -1, 1, 0]])
    create_loss("bce")(**out, labels=labels).backward()
    assert classifier.visual.cls_token.grad is not None
    clip = create_model("hlip-tiny", overrides=tiny_text)
    visual_keys = {k for k in clip.state_dict() if k.startswith("visual.")}
    assert visual_keys == {k for k in classifier.state_dict() if k.startswith("visual.")}
    clip.load_state_dict({k: v for k, v in classifier.state_dict().items() if k.startswith("visual.")}, strict=False)
    with torch.no_grad():
        torch.testing.assert_close(clip.eval().encode_image(x, mask), classifier.eval().visual(x, mask))


def test_stem_head_classifies_the_stem_alone_and_starts_at_the_prior(tiny_text: dict, study_batch: Batch) -> None:
    """The stem head's loss reaches the stem and no attention block; both heads start at the label prior; the
    exported vision tower has the same keys with or without it."""
    plain = create_classifier("hlip-tiny", num_classes=3)
    classifier = create_classifier("hlip-tiny", num_classes=3, stem_head=True)
    classifier.init_prior_bias([0.1, 0.5, 0.8])
    prior = torch.log(torch.tensor([0.1, 0.5, 0.8]) / torch.tensor([0.9, 0.5, 0.2]))
    torch.testing.assert_close(classifier.classifier.bias, prior)
    assert classifier.stem_head is not None
    torch.testing.assert_close(classifier.stem_head.classifier.bias, prior)
    x, mask = study_batch([3, 1, 2], SIZE)
    out = classifier(x, mask)
    assert out["stem_logits"].shape == out["logits"].shape == (3, 3)
    labels = torch.tensor([[1, 0, -1], [0, -1, 1], [1, 1, 0]])
    create_loss("bce")(out["stem_logits"], labels).backward()
    assert classifier.visual.patch_embed.proj.weight.grad is not None
    assert classifier.visual.patch_embed.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in classifier.visual.blocks.parameters())  # no block on the stem's path
    assert classifier.classifier.weight.grad is None
    visual = {k for k in classifier.state_dict() if k.startswith("visual.")}
    assert visual == {k for k in plain.state_dict() if k.startswith("visual.")}
    assert set(classifier.state_dict()) - visual - set(plain.state_dict()) == {
        "stem_head.norm.weight", "stem_head.norm.bias", "stem_head.norm.running_mean", "stem_head.norm.running_var",
        "stem_head.norm.num_batches_tracked", "stem_head.classifier.weight", "stem_head.classifier.bias",
    }  # fmt: skip


def test_scan_mlp_stem_head_scores_each_scan_and_takes_the_studys_maximum(tiny_text: dict, study_batch: Batch) -> None:
    """`scan_mlp`: each study's logit of a finding is the largest of its own scans' MLP logits (multiple-instance);
    a change to one scan moves its study's logits and no other study's; its loss reaches the stem and no attention
    block; it starts at the label prior like the linear head."""
    torch.manual_seed(0)
    classifier = create_classifier("hlip-tiny", num_classes=3, stem_head=True, stem_head_kind="scan_mlp")
    classifier.init_prior_bias([0.1, 0.5, 0.8])
    head = classifier.stem_head
    assert head is not None
    assert head.hidden is not None
    prior = torch.log(torch.tensor([0.1, 0.5, 0.8]) / torch.tensor([0.9, 0.5, 0.2]))
    torch.testing.assert_close(head.classifier.bias, prior)
    counts = [3, 1, 2]
    x, mask = study_batch(counts, SIZE)
    x[~mask] = 50.0  # padding: would move a study's maximum if it were scored
    classifier.eval()
    with torch.no_grad():
        _, stem = classifier.visual.forward_with_stem(x, mask)
        per_scan = head.classifier(head.hidden(head.norm(stem.scans)))  # [6, 3]
        logits = classifier(x, mask)["stem_logits"]
        starts = [0, 3, 4]
        for b, n in enumerate(counts):
            torch.testing.assert_close(logits[b], per_scan[starts[b] : starts[b] + n].amax(0), rtol=0, atol=0)
        x2 = x.clone()
        x2[2, 1] = x2[2, 1].flip(-1) * 1.5  # study 2's second scan only
        moved = classifier(x2, mask)["stem_logits"]
    torch.testing.assert_close(moved[:2], logits[:2], rtol=0, atol=0)
    assert not torch.equal(moved[2], logits[2])
    classifier.train()
    out = classifier(x, mask)
    create_loss("bce")(out["stem_logits"], torch.tensor([[1, 0, -1], [0, -1, 1], [1, 1, 0]])).backward()
    assert classifier.visual.patch_embed.proj.weight.grad is not None
    assert classifier.visual.patch_embed.proj.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in classifier.visual.blocks.parameters())
    with pytest.raises(ValueError, match="stem head must be one of"):
        StemHead(8, 3, "scan")


def test_linear_and_scan_mlp_stem_heads_side_by_side_each_classify_and_start_at_the_prior(
    study_batch: Batch,
) -> None:
    """`linear_and_scan_mlp`: the logits are the `linear` head's (equal to a `linear` head built at the same seed)
    followed by a `scan_mlp` head's, both output layers start at the label prior, and a loss on the second set alone
    reaches the stem through the per-scan branch only."""
    x, mask = study_batch([3, 1, 2], SIZE)
    heads = {}
    for kind in ("linear", "linear_and_scan_mlp"):
        torch.manual_seed(0)
        heads[kind] = create_classifier("hlip-tiny", num_classes=3, stem_head=True, stem_head_kind=kind)
        heads[kind].init_prior_bias([0.1, 0.5, 0.8])
    both = heads["linear_and_scan_mlp"]
    assert both.stem_head is not None
    prior = torch.log(torch.tensor([0.1, 0.5, 0.8]) / torch.tensor([0.9, 0.5, 0.2]))
    for layer in both.stem_head.prior_layers():
        torch.testing.assert_close(layer.bias, prior)
    out = {kind: model(x, mask)["stem_logits"] for kind, model in heads.items()}
    assert out["linear_and_scan_mlp"].shape == (3, 6)
    torch.testing.assert_close(out["linear_and_scan_mlp"][:, :3], out["linear"], rtol=0, atol=0)
    create_loss("bce")(out["linear_and_scan_mlp"][:, 3:], torch.tensor([[1, 0, -1], [0, -1, 1], [1, 1, 0]])).backward()
    linear_grad = both.stem_head.classifier.weight.grad  # the linear head is not on this loss's path
    assert linear_grad is None or not linear_grad.any()
    assert both.stem_head.scan_classifier is not None
    assert both.stem_head.scan_classifier.weight.grad is not None
    assert both.visual.patch_embed.proj.weight.grad is not None
    assert both.visual.patch_embed.proj.weight.grad.abs().sum() > 0


def test_clip_model_with_a_stem_head_adds_its_logits_and_leaves_the_embeddings_as_they_were(
    tiny_text: dict, study_batch: Batch
) -> None:
    """Stage B's stem supervision: the same image and text features as without the head, plus the head's logits
    of the study's strongest stem response; dropping the head restores the plain model's keys."""
    torch.manual_seed(0)
    model = create_model("hlip-tiny", overrides=tiny_text).eval()
    keys = set(model.state_dict())
    x, mask = study_batch([3, 1, 2], SIZE)
    text = create_tokenizer("hlip-tiny", overrides=tiny_text)(["left lesion", "no acute finding", "edema"])
    with torch.no_grad():
        plain = model(x, text, mask)
        model.stem_head = StemHead(model.cfg.vision.width, 4).eval()
        out = model(x, text, mask)
        _, stem = model.visual.forward_with_stem(x, mask)
    assert "stem_logits" not in plain
    torch.testing.assert_close(out["image_features"], plain["image_features"], rtol=0, atol=0)
    torch.testing.assert_close(out["text_features"], plain["text_features"], rtol=0, atol=0)
    torch.testing.assert_close(out["stem_logits"], model.stem_head(stem), rtol=0, atol=0)
    torch.testing.assert_close(out["stem_logits"], model.stem_head.classifier(model.stem_head.norm(stem.study_max())))
    assert out["stem_logits"].shape == (3, 4)
    assert {k for k in model.state_dict() if k.startswith("stem_head.")}
    assert model.stem_head is not None
    model.stem_head = None
    assert set(model.state_dict()) == keys
