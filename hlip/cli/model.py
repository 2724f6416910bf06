"""`hlip model`: list the registered model configs, import upstream checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="HLIP model configs and checkpoints.", no_args_is_help=True)


def _count_params(name: str) -> tuple[int, int | None]:
    """Vision and text parameter counts of config `name`, built on the meta device (no memory, no weights)."""
    import torch

    from hlip.models import VisionTransformer3D, get_model_config

    cfg = get_model_config(name)
    with torch.device("meta"):
        vision = sum(p.numel() for p in VisionTransformer3D(cfg.vision, cfg.embed_dim).parameters())
    try:
        from transformers import AutoConfig, AutoModel

        from hlip.models.text import resolve_model_dir

        hf_cfg = AutoConfig.from_pretrained(resolve_model_dir(cfg.text.model_dir))
        with torch.device("meta"):
            trunk = AutoModel.from_config(hf_cfg, add_pooling_layer=False)
        text = sum(p.numel() for p in trunk.parameters()) + hf_cfg.hidden_size * cfg.embed_dim
    except (FileNotFoundError, OSError, ValueError):
        text = None
    return vision, text


@app.command("list")
def list_cmd() -> None:
    """Print the registered model configs with parameter counts and tokens per scan."""
    from hlip.models import get_model_config, list_models

    rows = [("model", "vision", "text", "tokens/scan", "levels", "description")]
    for name in list_models():
        cfg = get_model_config(name)
        vision, text = _count_params(name)
        levels = "+".join(dict.fromkeys(cfg.vision.levels))
        text_s = f"{text / 1e6:.1f}M" if text is not None else "(no dir)"
        rows.append((name, f"{vision / 1e6:.2f}M", text_s, str(cfg.vision.tokens_per_scan), levels, cfg.description))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)) + "  " + row[5])


@app.command("import-checkpoint")
def import_checkpoint(
    model: Annotated[str, typer.Option("--model", help="Registered model name (see `hlip model list`).")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", exists=True, dir_okay=False, help="Upstream checkpoint.")],
    out: Annotated[Path, typer.Option("--out", help="Output .safetensors file.")],
    text_model_dir: Annotated[
        str | None, typer.Option("--text-model-dir", help="Local BERT directory matching the checkpoint's text tower.")
    ] = None,
    vision_only: Annotated[
        bool, typer.Option("--vision-only", help="Import visual.* only; keep the config's text tower.")
    ] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail when any key is missing or unexpected.")] = False,
) -> None:
    """Map an upstream HLIP checkpoint (open_clip dict or safetensors) into MODEL and save it as safetensors."""
    from hlip.models import create_model, import_upstream_checkpoint, save_safetensors

    overrides = {"text": {"model_dir": text_model_dir}} if text_model_dir else None
    hlip_model = create_model(model, overrides=overrides, pretrained_text=vision_only)
    prefixes = ("visual.",) if vision_only else ("visual.", "text.", "logit_scale", "logit_bias")
    try:
        report = import_upstream_checkpoint(hlip_model, checkpoint, prefixes=prefixes, strict=strict)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
    typer.echo(report.summary())
    save_safetensors(hlip_model, out, metadata={"hlip_model": model, "source": checkpoint.name})
    typer.echo(f"wrote {out}")
