"""Tiny text models for tests: a BERT of a few thousand parameters saved to a local directory.

Tests never touch a hub; they build this model with `save_pretrained` and load it back through the same
local-directory code path (`TextConfig.model_dir`) that real BiomedBERT / CXR-BERT directories use.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_WORDS = (
    "no",
    "acute",
    "finding",
    "lesion",
    "mass",
    "edema",
    "hemorrhage",
    "infarct",
    "normal",
    "brain",
    "chest",
    "left",
    "right",
    "enhancement",
    "diffusion",
    "restricted",
    "the",
    "a",
    "of",
    "is",
    "there",
    "study",
    "shows",
    "mri",
    "ct",
    ".",
    ",",
)


def write_tiny_bert(
    path: str | Path, words: tuple[str, ...] = DEFAULT_WORDS, hidden_size: int = 16, initializer_range: float = 0.02
) -> Path:
    """Save a randomly initialised 2-layer BERT and its word-level tokenizer to `path`.

    Args:
        path: Directory to create (or fill).
        words: Vocabulary besides the special tokens.
        hidden_size: BERT width (2 heads).
        initializer_range: Std of the random weights (BERT's 0.02 makes every text's CLS embedding nearly the
            same direction, cosine about 0.999999; larger values make texts of other words point elsewhere).

    Returns:
        The directory, usable as `TextConfig.model_dir`.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab=str(vocab_file)).save_pretrained(path)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * hidden_size,
        max_position_embeddings=512,  # as BERT-base, BiomedBERT and CXR-BERT
        pad_token_id=0,
        initializer_range=initializer_range,
    )
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(path)
    return path
