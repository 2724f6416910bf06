"""Stage B with a frozen text trunk and fixed report texts: the trunk runs once per study (`TextFeatureTable`),
and training with the table is the training without it, up to the last bits of the trunk's batched arithmetic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from hlip.data.dataset import StudyDataset
from hlip.data.sampling import TextPolicy
from hlip.models.clip import HLIP
from hlip.models.factory import create_tokenizer, get_model_config
from hlip.models.weights import load_state_dict_file
from hlip.training import pretrain
from hlip.training.config import PretrainConfig
from hlip.training.pretrain import run_pretrain
from hlip.training.text_features import TextFeatureTable, table_applies

from .test_pretrain import Recorder, assert_same_weights, interrupt_after_the_first_epoch

FIXED = {"shuffle_sentences": False, "single_sentence_prob": 0.0}


def _fixed_text(block: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**block, "deterministic": True, "data": {**block["data"], "text": FIXED}, **extra}


def _tiny(corpus: Path) -> tuple[HLIP, Any]:
    cfg = get_model_config("hlip-tiny", {"text": {"model_dir": str(corpus / "bert"), "context_length": 16}})
    torch.manual_seed(0)
    return HLIP(cfg).eval(), create_tokenizer(cfg)


def _dataset(corpus: Path, policy: TextPolicy) -> StudyDataset:
    return StudyDataset(corpus / "ingest" / "train", text_policy=policy, train=True, seed=0)


def test_the_table_holds_each_studys_trunk_output_under_its_key(corpus: Path) -> None:
    model, tokenizer = _tiny(corpus)
    dataset = _dataset(corpus, TextPolicy(**FIXED))
    table = TextFeatureTable.build(model.text, tokenizer, dataset, batch_size=3, device=torch.device("cpu"),
                                   progress=False)  # fmt: skip
    assert len(table) == len(dataset) > 3
    keys = list(reversed(dataset.study_keys))
    with torch.no_grad():
        alone = torch.cat([model.text.pooled(tokenizer([dataset.training_text(i)])) for i in range(len(dataset))])
    assert torch.allclose(table.lookup(keys), alone.flip(0), atol=1e-5)
    # the text __getitem__ returns in training is the one the table encoded, every epoch
    for epoch in (0, 3):
        dataset.set_epoch(epoch)
        assert [dataset[i]["report"] for i in range(len(dataset))] == [
            dataset.training_text(i) for i in range(len(dataset))
        ]


def test_a_lookup_returns_the_rows_of_the_keys_in_batch_order() -> None:
    table = TextFeatureTable(["s0", "s1", "s2"], torch.arange(6.0).reshape(3, 2))
    assert table.lookup(["s2", "s0", "s2"]).tolist() == [[4.0, 5.0], [0.0, 1.0], [4.0, 5.0]]
    with pytest.raises(KeyError, match="no row"):
        table.lookup(["s0", "not-a-study"])
    with pytest.raises(ValueError, match="repeat"):
        TextFeatureTable(["s0", "s0"], torch.zeros(2, 2))
    with pytest.raises(ValueError, match="do not match"):
        TextFeatureTable(["s0"], torch.zeros(2, 2))


def test_the_table_applies_only_to_a_frozen_trunk_and_fixed_texts(corpus: Path) -> None:
    model, _ = _tiny(corpus)
    assert model.text.frozen
    assert table_applies(model.text, _dataset(corpus, TextPolicy(**FIXED)))
    shuffled = _dataset(corpus, TextPolicy(shuffle_sentences=True))
    assert not table_applies(model.text, shuffled)
    with pytest.raises(ValueError, match="changes between epochs"):
        shuffled.training_text(0)
    assert not table_applies(
        model.text, _dataset(corpus, TextPolicy(shuffle_sentences=False, single_sentence_prob=0.3))
    )
    model.text.frozen = False  # a trunk that trains changes its output every step
    assert not table_applies(model.text, _dataset(corpus, TextPolicy(**FIXED)))


def test_text_pooled_gives_the_text_features_of_the_tokens(corpus: Path) -> None:
    model, tokenizer = _tiny(corpus)
    tokens = tokenizer(["a first report.", "another one, longer than the first report."])
    with torch.no_grad():
        direct = model(text=tokens)["text_features"]
        pooled = model(text_pooled=model.text.pooled(tokens))["text_features"]
    assert torch.equal(direct, pooled)
    with pytest.raises(ValueError, match="not both"):
        model(text=tokens, text_pooled=model.text.pooled(tokens))


def test_stage_b_with_the_table_runs_the_trunk_once_per_study_and_trains_as_without_it(
    block: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = HLIP.__init__

    def counting_init(self: HLIP, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.text.transformer.register_forward_hook(lambda module, inputs, output: calls.append(1))

    monkeypatch.setattr(HLIP, "__init__", counting_init)
    fixed = _fixed_text(block)
    with_table = Recorder()
    run_pretrain(PretrainConfig.from_params({**fixed, "out": fixed["out"] + "-table"}), logger=with_table,
                 progress=False)  # fmt: skip
    table_calls = list(calls)
    # 12 studies with reports, batch 4, 2 epochs: one pass of 3 chunks, not 3 steps x 2 epochs
    assert len(table_calls) == 3

    calls.clear()
    monkeypatch.setattr(pretrain, "table_applies", lambda tower, dataset: False)  # the same run, trunk every step
    without = Recorder()
    run_pretrain(PretrainConfig.from_params({**fixed, "out": fixed["out"] + "-tokens"}), logger=without,
                 progress=False)  # fmt: skip
    assert len(calls) == 6

    def losses(recorder: Recorder) -> list[float]:
        return [m["contrastive/loss"] for _, m in recorder.metrics if "contrastive/loss" in m]

    assert len(losses(with_table)) == 6
    assert losses(with_table) == pytest.approx(losses(without), abs=1e-4)
    assert len(set(losses(with_table))) > 1
    a = load_state_dict_file(Path(fixed["out"] + "-table") / "model" / "model.safetensors")
    b = load_state_dict_file(Path(fixed["out"] + "-tokens") / "model" / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)


def test_a_run_with_the_table_interrupted_in_stage_b_resumes_to_the_same_weights(block: dict[str, Any]) -> None:
    """The table is rebuilt on resume from the same weights and reports, in the same chunks: bit for bit."""
    fixed = _fixed_text(block)
    reference = run_pretrain(PretrainConfig.from_params({**fixed, "out": fixed["out"] + "-ref"}), progress=False)
    config = PretrainConfig.from_params(fixed)
    interrupt_after_the_first_epoch(config)  # stops after stage B's first epoch
    result = run_pretrain(config, logger=Recorder(), progress=False)
    assert_same_weights(reference, result)
