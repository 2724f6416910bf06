"""`hlip model list` and `hlip model import`: released folders import whole, partial imports fail loudly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from hlip.cli.main import app
from hlip.models import create_model, factory, get_model_config
from hlip.models.convert import choose_config
from hlip.models.export import load_model, read_export
from testkit.upstream_checkpoint import LINEAR, released_folder, upstream_state_dict

runner = CliRunner()


def test_model_list_shows_configs_params_and_tokens() -> None:
    result = runner.invoke(app, ["model", "list"])
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if row.startswith("hlip-vit-b-brainmri-scan-study "))
    assert line.split()[1:5] == ["87.02M", "22.8M", "1176", "scan+study"]
    large = next(row for row in result.output.splitlines() if row.startswith("hlip-vit-l-brainmri-scan-study-dinotxt "))
    assert large.split()[3:5] == ["1568", "scan+study"]
    assert any(row.startswith("hlip-demo ") and " 64 " in row for row in result.output.splitlines())


@pytest.fixture(autouse=True)
def tiny_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    """`hlip-tiny-linear`: hlip-tiny with upstream's linear patch embedding, registered for one test."""
    monkeypatch.setitem(factory._registry(), "hlip-tiny-linear", get_model_config("hlip-tiny", LINEAR).to_dict())


def test_released_folder_imports_whole_clip_and_exports_a_loadable_model(tiny_bert_dir: Path, tmp_path: Path) -> None:
    overrides = {"text": {"model_dir": str(tiny_bert_dir)}, **LINEAR}
    reference = create_model("hlip-tiny", overrides=overrides)
    state = upstream_state_dict(reference)
    folder = released_folder(tmp_path, tiny_bert_dir, state, "vit_base_scan_study_dualdinotxt1568")
    out = tmp_path / "imported"
    # the tiny architecture stands in for the released one (which --model would otherwise come from)
    result = runner.invoke(app, ["model", "import", str(folder), "--model", "hlip-tiny-linear", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "format open_clip" in result.output
    model = load_model(out)  # text config + tokenizer copied next to the weights
    assert torch.equal(model.state_dict()["visual.head.weight"], state["visual.head.proj.weight"])
    assert torch.equal(model.state_dict()["text.proj.weight"], state["text.proj.weight"])
    assert torch.equal(model.logit_scale.detach(), state["logit_scale"])
    cfg, metadata = read_export(out)
    assert Path(cfg.text.model_dir) == (out / "text").resolve()
    assert metadata["source"]["format"] == "open_clip"
    x = torch.rand(1, 2, 1, 16, 32, 32)
    text = torch.tensor([[2, 6, 7, 3, 0]])
    with torch.no_grad():
        assert torch.isfinite(model(x, text)["image_features"]).all()


def test_folder_names_its_config_and_unknown_names_fail(tmp_path: Path, tiny_bert_dir: Path) -> None:
    folder = released_folder(tmp_path, tiny_bert_dir, {"x": torch.zeros(1)}, "vit_large_scan_study_dualdinotxt1568")
    assert choose_config(folder, None) == "hlip-vit-l-brainmri-scan-study-dinotxt"
    assert choose_config(folder, "clip_vit_base_singlescan_h2_token2744") == "hlip-vit-b-chestct-slice-scan"
    cfg_file = folder / "open_clip_config.json"
    cfg_file.write_text(cfg_file.read_text().replace("vit_large_scan_study_dualdinotxt1568", "vit_huge_other"))
    result = runner.invoke(app, ["model", "import", str(folder), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "vit_huge_other" in result.output


def test_strict_by_default_partial_only_when_asked(tiny_bert_dir: Path, tmp_path: Path) -> None:
    source = create_model("hlip-tiny", overrides={"text": {"model_dir": str(tiny_bert_dir)}})
    state = {f"module.{k.replace('visual.blocks', 'visual.trunk.blocks')}": v for k, v in source.state_dict().items()}
    del state["module.visual.trunk.blocks.2.mlp.fc1.bias"]
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "epoch_1.pt")
    out = tmp_path / "imported.safetensors"
    args = ["model", "import", str(tmp_path / "epoch_1.pt"), "--model", "hlip-tiny", "--out", str(out)]
    strict = runner.invoke(app, [*args, "--text-model-dir", str(tiny_bert_dir)])
    assert strict.exit_code == 1
    assert "missing (1): visual.blocks.2.mlp.fc1.bias" in strict.output
    assert not out.exists()
    partial = runner.invoke(app, [*args, "--text-model-dir", str(tiny_bert_dir), "--allow-partial"])
    assert partial.exit_code == 0, partial.output
    assert "missing (1): visual.blocks.2.mlp.fc1.bias" in partial.output
    assert "skipped" in partial.output
    assert out.is_file()


def test_bare_trunk_needs_the_trunk_scope(tiny_bert_dir: Path, tmp_path: Path) -> None:
    source = create_model("hlip-tiny", overrides={"text": {"model_dir": str(tiny_bert_dir)}, **LINEAR})
    state = upstream_state_dict(source)  # timm trunk keys: blocks.0..., spatial_posemb, patch_embed.proj...
    trunk = {k.removeprefix("visual.trunk."): v for k, v in state.items() if k.startswith("visual.trunk.")}
    torch.save(trunk, tmp_path / "trunk.pth")
    out = tmp_path / "trunk.safetensors"
    args = ["model", "import", str(tmp_path / "trunk.pth"), "--model", "hlip-tiny-linear", "--out", str(out)]
    args += ["--text-model-dir", str(tiny_bert_dir)]
    clip = runner.invoke(app, args)
    assert clip.exit_code == 1
    assert "visual.head.weight" in clip.output
    ok = runner.invoke(app, [*args, "--scope", "trunk"])
    assert ok.exit_code == 0, ok.output
    assert "format timm_trunk" in ok.output


def test_imported_clip_runs_zero_shot_through_evaluation(tiny_bert_dir: Path, tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    from hlip.evaluation.benchmarks.base import Benchmark
    from hlip.evaluation.config import EvaluateConfig
    from hlip.evaluation.runner import run_evaluation

    class Tiny(Benchmark):
        """20 random two-scan studies of hlip-tiny's size, five classes."""

        name = "tiny"
        prompts = "brain_mri_demo"
        task = "multiclass"
        classes = ("normal", "stroke", "glioma", "meningioma", "metastasis")

        def study_ids(self) -> list[str]:
            return [f"s{i}" for i in range(20)]

        def labels(self) -> pd.DataFrame:
            y = np.eye(5, dtype=int)[np.arange(20) % 5]
            return pd.DataFrame(y, index=pd.Index(self.study_ids(), name="study_id"), columns=list(self.classes))

        def reports(self) -> pd.Series | None:
            return None

        def load(self, study_id: str) -> np.ndarray:
            return np.random.default_rng(int(study_id[1:])).random((2, 16, 32, 32), dtype=np.float32)

    reference = create_model("hlip-tiny", overrides={"text": {"model_dir": str(tiny_bert_dir)}, **LINEAR})
    folder = released_folder(tmp_path, tiny_bert_dir, upstream_state_dict(reference), "vit_base_scan_study_token1")
    out = tmp_path / "imported"
    result = runner.invoke(app, ["model", "import", str(folder), "--model", "hlip-tiny-linear", "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = EvaluateConfig(n_boot=20, val_fraction=0.4, probe_folds=2, device="cpu", batch_size=4)
    run_evaluation(out, Tiny(), config, tmp_path / "eval", tmp_path / "cache")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0.0 <= metrics["zero_shot.macro_auc"] <= 1.0
