"""`hlip model list` and `hlip model import-checkpoint`."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from hlip.cli.main import app
from hlip.models import create_model

runner = CliRunner()


def test_model_list_shows_configs_params_and_tokens() -> None:
    result = runner.invoke(app, ["model", "list"])
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if row.startswith("hlip-vit-b-brainmri-scan-study "))
    assert line.split()[1:5] == ["87.02M", "22.8M", "1176", "scan+study"]
    assert any(row.startswith("hlip-demo ") and " 64 " in row for row in result.output.splitlines())


def test_import_checkpoint_reports_and_writes_safetensors(tiny_bert_dir: Path, tmp_path: Path) -> None:
    source = create_model("hlip-tiny", overrides={"text": {"model_dir": str(tiny_bert_dir)}})
    state = {f"module.{k.replace('visual.blocks', 'visual.trunk.blocks')}": v for k, v in source.state_dict().items()}
    state["module.visual.trunk.blocks.0.ls1.gamma"] = torch.ones(24)
    torch.save({"epoch": 1, "state_dict": state}, tmp_path / "epoch_1.pt")
    out = tmp_path / "imported.safetensors"
    args = ["model", "import-checkpoint", "--model", "hlip-tiny", "--checkpoint", str(tmp_path / "epoch_1.pt")]
    result = runner.invoke(app, [*args, "--out", str(out), "--text-model-dir", str(tiny_bert_dir)])
    assert result.exit_code == 0, result.output
    assert "unexpected (1): visual.trunk.blocks.0.ls1.gamma -> visual.blocks.0.ls1.gamma" in result.output
    saved = load_file(str(out))
    assert torch.equal(saved["visual.blocks.1.attn.qkv.weight"], source.state_dict()["visual.blocks.1.attn.qkv.weight"])
    strict = runner.invoke(app, [*args, "--out", str(out), "--text-model-dir", str(tiny_bert_dir), "--strict"])
    assert strict.exit_code == 1
