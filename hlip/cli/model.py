"""`hlip model`: list the registered model configs, import upstream HLIP weights."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="HLIP model configs and weights.", no_args_is_help=True)


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


@app.command("import")
def import_cmd(
    source: Annotated[
        Path, typer.Argument(exists=True, help="Weight file (.pt/.bin/.safetensors) or released open_clip folder.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Exported model folder to write (or a .safetensors file).")],
    model: Annotated[
        str | None,
        typer.Option("--model", help="Our config or upstream's model name; default: the folder's open_clip config."),
    ] = None,
    text_model_dir: Annotated[
        str | None,
        typer.Option("--text-model-dir", help="Local BERT directory (config + tokenizer) of the text tower."),
    ] = None,
    scope: Annotated[
        str, typer.Option("--scope", help="clip (everything), vision (visual.*) or trunk (vision minus projection).")
    ] = "clip",
    allow_partial: Annotated[
        bool, typer.Option("--allow-partial", help="Accept an incomplete import; the skipped keys are listed.")
    ] = False,
) -> None:
    """Import upstream HLIP weights into one of our configs, strictly, and write an exported model folder."""
    from hlip.models.convert import convert_upstream
    from hlip.models.upstream import WeightMismatchError

    try:
        result = convert_upstream(source, out, model, text_model_dir, scope=scope, allow_partial=allow_partial)
    except (WeightMismatchError, ValueError, KeyError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(code=1) from err
    typer.echo(f"model {result.name}\n{result.report.summary()}")
    if not result.report.complete:
        typer.echo("partial import: the keys above were skipped (--allow-partial)")
    typer.echo(f"wrote {result.out}")
