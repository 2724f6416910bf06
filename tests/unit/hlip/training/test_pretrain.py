"""run_pretrain in process on hlip-tiny: stages, export, hooks, resumption of a finished run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from hlip.config import ConfigError
from hlip.models import create_loss
from hlip.models.export import load_model, read_export
from hlip.models.weights import load_state_dict_file
from hlip.training.checkpoint import latest_checkpoint, load_checkpoint
from hlip.training.config import PretrainConfig
from hlip.training.pretrain import PretrainResult, _stem_bce, run_pretrain


class Recorder:
    """A TrainingLogger keeping what it gets."""

    def __init__(self) -> None:
        self.metrics: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics: Any, step: int) -> None:
        self.metrics.append((step, dict(metrics)))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def set_tags(self, tags: Any) -> None:
        pass


class StopHereError(Exception):
    """Raised by `interrupt_after_the_first_epoch`'s report hook."""


def assert_same_weights(expected: PretrainResult, actual: PretrainResult) -> None:
    """Both runs exported a model, with the same weights bit for bit."""
    assert expected.model_dir is not None
    assert actual.model_dir is not None
    want = load_state_dict_file(expected.model_dir / "model.safetensors")
    got = load_state_dict_file(actual.model_dir / "model.safetensors")
    assert want.keys() == got.keys()
    assert [k for k in want if not torch.equal(want[k], got[k])] == []


def interrupt_after_the_first_epoch(config: PretrainConfig) -> None:
    """Run `config` until the first epoch that reports (after its checkpoint) and stop it there, unfinished."""

    def report(epoch: int, value: float) -> None:
        raise StopHereError(f"epoch {epoch}")

    with pytest.raises(StopHereError):
        run_pretrain(config, report=report, progress=False)


def test_two_stages_train_and_export(block: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    config = PretrainConfig.from_params(block)
    recorder = Recorder()
    calls: list[int] = []

    def evaluator(model: nn.Module, step: int) -> dict[str, float]:
        assert not model.training
        calls.append(step)
        return {"auc": 0.5 + 0.01 * len(calls)}

    reports: list[tuple[int, float]] = []
    with caplog.at_level(logging.INFO, logger="hlip.training.pretrain"):
        result = run_pretrain(config, evaluator=evaluator, report=lambda e, v: reports.append((e, v)),
                              logger=recorder, progress=False)  # fmt: skip
    # stage B says how many training reports the text context cuts (the synthetic ones exceed its 16 tokens)
    overflow = [r.getMessage() for r in caplog.records if "longer than the text tower" in r.getMessage()]
    assert len(overflow) == 1
    assert "16-token context: 0 of 12 (0 %" in overflow[0]
    # 13 ok studies / 4 -> 3 warm-up steps; 12 with reports / 4 -> 3 contrastive steps per epoch
    assert result.summary["stages"]["warmup"]["steps"] == 3
    assert result.summary["stages"]["contrastive"]["steps"] == 6
    assert calls == [6, 9]
    assert reports == [(1, 0.51), (2, 0.52)]
    steps = [s for s, m in recorder.metrics if "contrastive/loss" in m]
    assert steps == [4, 5, 6, 7, 8, 9]
    assert all("contrastive/logit_scale" in m for s, m in recorder.metrics if "contrastive/loss" in m)
    _, metadata = read_export(result.model_dir)  # type: ignore[arg-type]
    assert metadata["findings"] == ["lesion_a", "lesion_b"]
    assert metadata["contract"]["preprocess"]["size"] == [16, 32, 32]  # the study contract: the part's scans
    assert metadata["contract"]["scans"] == {"mode": config.data.scans.mode, "max_scans": config.data.scans.max_scans,
                                             "kinds": list(config.data.scans.kinds)}  # fmt: skip
    assert metadata["stage_a"]["steps"] == 3
    model = load_model(result.model_dir)  # type: ignore[arg-type]
    warm = load_state_dict_file(Path(config.out) / "warmup" / "classifier.safetensors")  # stage A's weights
    assert not torch.equal(model.state_dict()["visual.head.weight"], warm["visual.head.weight"])
    assert json.loads((Path(config.out) / "summary.json").read_text())["config_hash"] == config.training_hash()

    # A finished run is history: a second call (DVC re-running the stage after a code fix) retrains from step 1...
    again = Recorder()
    run_pretrain(config, logger=again, progress=False)
    assert again.metrics[0][0] == 1
    assert max(step for step, _ in again.metrics) == max(step for step, _ in recorder.metrics)

    # ...and a changed param starts afresh instead of failing on the previous run's checkpoints.
    other = PretrainConfig.from_params({**block, "contrastive": {**block["contrastive"], "lr": 1e-4}})
    run_pretrain(other, logger=Recorder(), progress=False)
    latest = latest_checkpoint(Path(other.out))
    assert latest is not None
    assert load_checkpoint(latest, other.training_hash())["config_hash"] == other.training_hash()


def test_an_interrupted_run_of_the_same_config_resumes(block: dict[str, Any]) -> None:
    config = PretrainConfig.from_params({**block, "warmup": {"enabled": False}})

    interrupt_after_the_first_epoch(config)  # stops after epoch 1's checkpoint, not finished
    resumed = Recorder()
    run_pretrain(config, logger=resumed, progress=False)
    assert resumed.metrics[0][0] == 4  # continues at the step after the checkpoint (3 steps per epoch)


def test_an_interrupted_run_on_changed_data_starts_afresh(block: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    import pandas as pd

    ingest = Path(shutil.copytree(block["data"]["ingest_dir"], tmp_path / "ingest"))
    config = PretrainConfig.from_params({**block, "data": {**block["data"], "ingest_dir": str(ingest)},
                                         "warmup": {"enabled": False}})  # fmt: skip

    interrupt_after_the_first_epoch(config)  # interrupted after epoch 1's checkpoint
    reports = pd.read_parquet(ingest / "train" / "reports.parquet")
    reports.loc[0, "text"] = "Addendum: new finding. " + str(reports.loc[0, "text"])  # a report corrected since
    reports.to_parquet(ingest / "train" / "reports.parquet")
    restarted = Recorder()
    run_pretrain(config, logger=restarted, progress=False)
    assert restarted.metrics[0][0] == 1  # not step 4: the old checkpoints belong to other data


def test_report_exception_propagates_after_the_checkpoint(block: dict[str, Any]) -> None:
    config = PretrainConfig.from_params({**block, "warmup": {"enabled": False}})

    class PrunedError(Exception):
        pass

    def report(epoch: int, value: float) -> None:
        raise PrunedError(f"epoch {epoch}")

    with pytest.raises(PrunedError, match="epoch 1"):
        run_pretrain(config, report=report, progress=False)
    latest = latest_checkpoint(Path(config.out))
    assert latest is not None
    assert latest.name == "step-000000003.pt"  # the epoch's checkpoint was written before the hook ran


def test_warmup_true_without_labels_is_an_error(block: dict[str, Any], tmp_path: Path) -> None:
    data = {**block["data"], "labels_dir": str(tmp_path / "none")}
    config = PretrainConfig.from_params({**block, "data": data, "warmup": {"enabled": True}})
    with pytest.raises(FileNotFoundError, match=r"labels\.parquet"):
        run_pretrain(config, progress=False)


def test_epochs_between_evaluations_report_nothing(block: dict[str, Any]) -> None:
    """A pruner must see the metric only: with `eval_every` 2, epoch 1's training loss is not reported as it."""
    config = PretrainConfig.from_params({**block, "warmup": {"enabled": False}, "eval_every": 2})
    reports: list[tuple[int, float]] = []
    run_pretrain(config, evaluator=lambda model, step: {"auc": 0.75}, report=lambda e, v: reports.append((e, v)),
                 progress=False)  # fmt: skip
    assert reports == [(2, 0.75)]


@pytest.mark.parametrize("freeze", [True, False])
def test_contrastive_checkpoints_leave_out_only_a_locked_text_trunk(block: dict[str, Any], freeze: bool) -> None:
    overrides = {"text": {**block["model_overrides"]["text"], "freeze": freeze}}
    config = PretrainConfig.from_params({**block, "model_overrides": overrides})
    result = run_pretrain(config, progress=False, device="cpu")
    latest = latest_checkpoint(Path(config.out))
    assert latest is not None
    saved = torch.load(latest, weights_only=False)["model"]
    model = load_model(result.model_dir)
    trunk = {k for k in model.state_dict() if k.startswith("text.transformer.")}
    assert trunk  # the exported model is whole either way
    assert trunk.isdisjoint(saved) if freeze else trunk <= set(saved)
    assert set(model.state_dict()) - trunk <= set(saved)  # every trained weight is in the checkpoint


def test_label_targets_read_the_labels_for_stage_b_alone(block: dict[str, Any]) -> None:
    """With stage A off, `contrastive.label_targets` still reads the label table: it changes the loss and the data
    digest, and no warm-up runs."""
    base = {**block, "warmup": {**block["warmup"], "enabled": "false"}}
    plain = run_pretrain(PretrainConfig.from_params({**base, "out": block["out"] + "-plain"}), progress=False)
    soft_block = {**base, "contrastive": {**block["contrastive"], "label_targets": 0.5}}
    soft = run_pretrain(PretrainConfig.from_params(soft_block), progress=False)
    assert plain.summary["stages"]["warmup"] == {"enabled": False}
    assert soft.summary["stages"]["warmup"] == {"enabled": False}
    assert soft.summary["data_digest"] != plain.summary["data_digest"]  # the labels are now training data
    plain_losses = plain.summary["stages"]["contrastive"]["epoch_losses"]
    soft_losses = soft.summary["stages"]["contrastive"]["epoch_losses"]
    assert len(soft_losses) == len(plain_losses) == 2
    assert soft_losses != plain_losses


def test_stem_supervision_adds_the_stem_heads_loss_in_stage_a_and_leaves_no_trace_in_the_export(
    block: dict[str, Any],
) -> None:
    """Stage A's first loss is the plain BCE plus the stem head's BCE at the same initial weights; the saved warm-up
    model keeps the stem head, the exported CLIP model does not (exact resume with it: tests/integration/training)."""
    plain_rec, stem_rec = Recorder(), Recorder()
    plain = run_pretrain(PretrainConfig.from_params({**block, "out": block["out"] + "-plain"}), logger=plain_rec,
                         progress=False)  # fmt: skip
    weighted = {**block, "warmup": {**block["warmup"], "stem_supervision": 1.0}}
    stem = run_pretrain(PretrainConfig.from_params(weighted), logger=stem_rec, progress=False)
    first = {name: next(m["warmup/loss"] for _, m in rec.metrics if "warmup/loss" in m)
             for name, rec in (("plain", plain_rec), ("stem", stem_rec))}  # fmt: skip
    assert first["stem"] > first["plain"] + 0.2  # a second BCE near the label prior (about 0.5 here) on top
    warm = load_state_dict_file(Path(block["out"]) / "warmup" / "classifier.safetensors")
    assert {"stem_head.classifier.weight", "stem_head.norm.running_mean"} <= set(warm)
    plain_warm = load_state_dict_file(Path(block["out"] + "-plain") / "warmup" / "classifier.safetensors")
    assert not any(k.startswith("stem_head.") for k in plain_warm)
    assert plain.model_dir is not None
    assert stem.model_dir is not None
    exported = load_state_dict_file(stem.model_dir / "model.safetensors")
    assert exported.keys() == load_state_dict_file(plain.model_dir / "model.safetensors").keys()


def test_stage_b_stem_supervision_carries_stage_as_head_on_and_exports_the_plain_model(block: dict[str, Any]) -> None:
    """`contrastive.stem_supervision`: stage B starts from stage A's stem head (its first loss is the plain CLIP
    loss of the same weights plus the head's BCE), checkpoints keep the head for an exact resume (the kill -9
    test in tests/integration/training runs with it), the exported model has the plain model's keys."""
    warm = {**block["warmup"], "stem_supervision": 1.0}
    plain_rec, stem_rec = Recorder(), Recorder()
    plain_cfg = PretrainConfig.from_params({**block, "warmup": warm, "out": block["out"] + "-plain"})
    plain = run_pretrain(plain_cfg, logger=plain_rec, progress=False)
    stem_cfg = PretrainConfig.from_params(
        {**block, "warmup": warm, "contrastive": {**block["contrastive"], "stem_supervision": 1.0}}
    )
    stem = run_pretrain(stem_cfg, logger=stem_rec, progress=False)
    firsts = {name: [m for _, m in rec.metrics if "contrastive/loss" in m] for name, rec in
              (("plain", plain_rec), ("stem", stem_rec))}  # fmt: skip
    assert [m["warmup/loss"] for _, m in stem_rec.metrics if "warmup/loss" in m] == [
        m["warmup/loss"] for _, m in plain_rec.metrics if "warmup/loss" in m
    ]  # the same stage A
    assert firsts["stem"][0]["contrastive/loss"] > firsts["plain"][0]["contrastive/loss"] + 0.2
    latest = latest_checkpoint(Path(stem_cfg.out))
    assert latest is not None
    saved = torch.load(latest, weights_only=False)["model"]
    assert {"stem_head.classifier.weight", "stem_head.norm.running_var"} <= set(saved)
    warm_head = load_state_dict_file(Path(stem_cfg.out) / "warmup" / "classifier.safetensors")
    assert warm_head["stem_head.classifier.weight"].shape == saved["stem_head.classifier.weight"].shape
    assert not torch.equal(warm_head["stem_head.classifier.weight"], saved["stem_head.classifier.weight"])  # trained on
    assert plain.model_dir is not None
    assert stem.model_dir is not None
    exported = load_state_dict_file(stem.model_dir / "model.safetensors")
    assert exported.keys() == load_state_dict_file(plain.model_dir / "model.safetensors").keys()
    load_model(stem.model_dir)  # loads as a plain CLIP model


def test_the_stem_bce_of_two_heads_side_by_side_is_the_mean_of_each_heads_bce() -> None:
    """Logits that are two sets of the findings (`linear_and_scan_mlp`) are each compared with the same labels,
    unknown labels masked in both; logits that are not whole sets are an error, not a silent mismatch."""
    bce = create_loss("bce")
    labels = torch.tensor([[1.0, float("nan"), 0.0], [0.0, 1.0, -1.0]])
    first, second = (
        torch.tensor([[2.0, -1.0, 0.5], [-0.3, 0.7, 4.0]]),
        torch.tensor([[0.1, 3.0, -2.0], [1.5, -0.2, 0.0]]),
    )
    both = _stem_bce(bce, torch.cat([first, second], dim=1), labels)
    torch.testing.assert_close(both, (_stem_bce(bce, first, labels) + _stem_bce(bce, second, labels)) / 2)
    with pytest.raises(ValueError, match="not whole sets of the 3 findings"):
        _stem_bce(bce, torch.zeros(2, 5), labels)


@pytest.mark.parametrize("kind", ["linear", "scan_mlp", "linear_and_scan_mlp"])
def test_a_run_with_stage_b_stem_supervision_interrupted_in_stage_b_resumes_to_the_same_weights(
    block: dict[str, Any], kind: str
) -> None:
    """Resuming inside stage B rebuilds the stem head of the configured form (stage A does not run again) and
    restores it from the checkpoint: the exported weights equal an uninterrupted run's, bit for bit."""
    both = {**block, "deterministic": True,
            "warmup": {**block["warmup"], "stem_supervision": 1.0, "stem_head": kind},
            "contrastive": {**block["contrastive"], "stem_supervision": 1.0, "stem_head": kind}}  # fmt: skip
    reference = run_pretrain(PretrainConfig.from_params({**both, "out": both["out"] + "-ref"}), progress=False)
    config = PretrainConfig.from_params(both)

    interrupt_after_the_first_epoch(config)  # stops after stage B's first epoch
    resumed = Recorder()
    result = run_pretrain(config, logger=resumed, progress=False)
    assert "warmup/loss" not in {k for _, m in resumed.metrics for k in m}  # stage A did not run again
    assert_same_weights(reference, result)


def test_a_frozen_first_convolution_leaves_stage_b_with_stage_as_and_resumes_to_the_same_weights(
    block: dict[str, Any],
) -> None:
    """`contrastive.freeze_stem: 1`: the exported first stem convolution and its BatchNorm (statistics included) are
    stage A's exactly, while the second convolution, the patch projection and the blocks train on; a run interrupted
    in stage B resumes (the stem from the checkpoint, stage A not re-run) to the uninterrupted run's weights, bit for
    bit."""
    strided = {**block["model_overrides"], "vision": {"stem_channels": [4, 8], "stem_pool": "stride"}}  # BatchNorm
    frozen = {**block, "deterministic": True, "model_overrides": strided,
              "contrastive": {**block["contrastive"], "freeze_stem": 1}}  # fmt: skip
    reference = run_pretrain(PretrainConfig.from_params({**frozen, "out": frozen["out"] + "-ref"}), progress=False)
    assert reference.model_dir is not None
    exported = load_state_dict_file(reference.model_dir / "model.safetensors")
    warm = load_state_dict_file(Path(frozen["out"] + "-ref") / "warmup" / "classifier.safetensors")
    first = [k for k in exported if k.startswith(("visual.patch_embed.stem.0.", "visual.patch_embed.stem.1."))]
    assert "visual.patch_embed.stem.1.running_mean" in first
    assert [k for k in first if not torch.equal(exported[k], warm[k])] == []
    for trained in ("visual.patch_embed.stem.3.weight", "visual.patch_embed.stem.4.running_mean",
                    "visual.patch_embed.proj.weight"):  # fmt: skip
        assert not torch.equal(exported[trained], warm[trained])

    config = PretrainConfig.from_params(frozen)

    interrupt_after_the_first_epoch(config)  # stops after stage B's first epoch
    resumed = Recorder()
    result = run_pretrain(config, logger=resumed, progress=False)
    assert "warmup/loss" not in {k for _, m in resumed.metrics for k in m}
    assert result.model_dir is not None
    actual = load_state_dict_file(result.model_dir / "model.safetensors")
    assert [k for k in exported if not torch.equal(exported[k], actual[k])] == []


def test_freezing_the_stem_of_a_model_without_one_fails_before_training(block: dict[str, Any]) -> None:
    linear = {**block, "model_overrides": {**block["model_overrides"], "vision": {"stem_channels": []}},
              "contrastive": {**block["contrastive"], "freeze_stem": 1}}  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"contrastive\.freeze_stem is 1 .* 0 convolutions \(it embeds patches linearly\)"
    ):
        run_pretrain(PretrainConfig.from_params(linear), progress=False)
    assert latest_checkpoint(Path(block["out"])) is None  # nothing trained


def test_stage_b_says_how_many_training_reports_the_text_context_cuts(
    corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from hlip.models.text import Tokenizer
    from hlip.training.pretrain import _log_text_overflow

    class Reports:  # the one method of StudyDataset the check reads
        def full_texts(self) -> list[str]:
            return ["Findings: Lesion a present.", "Findings: lesion a absent. " * 6, "Impression: No lesion b."]

    tokenizer = Tokenizer(str(corpus / "bert"), context_length=12)
    lengths = tokenizer.lengths(Reports().full_texts())
    assert sum(n > 12 for n in lengths) == 1  # only the long report runs past 12 tokens
    with caplog.at_level(logging.INFO, logger="hlip.training.pretrain"):
        _log_text_overflow(Reports(), tokenizer)  # type: ignore[arg-type]
    assert "12-token context: 1 of 3 (33 %" in caplog.text
    assert f"longest {max(lengths)} tokens" in caplog.text
