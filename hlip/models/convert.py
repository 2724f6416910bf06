"""Convert upstream HLIP weights into an exported model folder that `hlip evaluate` and serving load directly.

`convert_upstream(source, out)` picks the config (given, or from the open_clip folder's `timm_model_name`), finds
the text tower's transformers config and tokenizer (given directory, else the released folder itself), imports
the weights strictly (`upstream.import_upstream_weights`) and writes `export.save_model`'s folder with the
upstream model's study contract in its metadata (`metadata["contract"]`). The text tower's config and tokenizer
files are copied into `<out>/text/` so the folder does not depend on the directory they came from.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any

from hlip.models.clip import HLIP
from hlip.models.export import save_model
from hlip.models.factory import create_model, get_model_config
from hlip.models.upstream import ImportReport, OpenClipFolder, import_upstream_weights
from hlip.models.upstream_configs import find_upstream, resolve_model_name

log = logging.getLogger(__name__)

#: Files of a transformers text model directory that describe it without its weights.
TEXT_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "added_tokens.json",
)


@dataclasses.dataclass(frozen=True)
class Conversion:
    """What `convert_upstream` built.

    Attributes:
        model: The model with the imported weights (eval mode).
        name: Our config name.
        report: The import report.
        out: The folder (or `.safetensors` file) written, None when nothing was written.
    """

    model: HLIP
    name: str
    report: ImportReport
    out: Path | None


def choose_config(source: Path, model: str | None) -> str:
    """Our config name: `model` (ours or upstream's), else the open_clip folder's vision tower name.

    Raises:
        ValueError: Neither names a model.
    """
    if model:
        return resolve_model_name(model)
    if source.is_dir():
        timm_name = OpenClipFolder.read(source).timm_model_name
        if timm_name and find_upstream(timm_name):
            return resolve_model_name(timm_name)
        raise ValueError(f"{source}: its open_clip config names no known upstream model ({timm_name!r}); pass --model")
    raise ValueError(f"{source} is a file: name its architecture with --model (see `hlip model list`)")


def text_directory(source: Path, text_model_dir: str | None) -> str | None:
    """The text tower's directory: the one given, else the released folder when it carries config + tokenizer."""
    if text_model_dir:
        return text_model_dir
    if source.is_dir():
        found = OpenClipFolder.read(source).text_dir()
        return str(found) if found else None
    return None


def convert_upstream(
    source: str | Path,
    out: str | Path | None,
    model: str | None = None,
    text_model_dir: str | None = None,
    scope: str = "clip",
    allow_partial: bool = False,
) -> Conversion:
    """Import `source` into our config and write it to `out`.

    Args:
        source: Weight file (open_clip dict, plain state dict, safetensors, timm trunk) or open_clip model folder.
        out: Exported model folder to write (`.safetensors`: the weights only; None: write nothing).
        model: Our config name or an upstream name; default: from the folder's `open_clip_config.json`.
        text_model_dir: transformers directory of the text tower (config + tokenizer); default: the folder.
        scope: `clip`, `vision` or `trunk` (`upstream.SCOPES`).
        allow_partial: Accept an incomplete import (the report lists what was skipped).

    Raises:
        WeightMismatchError: The weights do not match (see `import_upstream_weights`).
        ValueError: No config could be chosen.
    """
    source = Path(source)
    name = choose_config(source, model)
    text_dir = text_directory(source, text_model_dir)
    overrides: dict[str, Any] = {"text": {"model_dir": text_dir}} if text_dir else {}
    released, configured = _released_context_length(source), get_model_config(name).text.context_length
    if released is not None and released != configured:
        log.info("text context length %d, as %s's open_clip config says (%s says %d)", released, source.name, name,
                 configured)  # fmt: skip
        overrides.setdefault("text", {})["context_length"] = released
    # the text weights come from the file for a whole CLIP import; otherwise from the text directory
    hlip = create_model(name, overrides=overrides, pretrained_text=scope != "clip")  # checks the text context
    report = import_upstream_weights(hlip, source, scope=scope, allow_partial=allow_partial)
    hlip.eval()
    written = _write(hlip, name, source, report, Path(out), text_dir) if out is not None else None
    return Conversion(hlip, name, report, written)


def _released_context_length(source: Path) -> int | None:
    """The text context length a released folder's open_clip config states (None: a file, or not stated)."""
    if not source.is_dir():
        return None
    length = OpenClipFolder.read(source).model_cfg.get("text_cfg", {}).get("context_length")
    return int(length) if length is not None else None


def _write(hlip: HLIP, name: str, source: Path, report: ImportReport, out: Path, text_dir: str | None) -> Path:
    if out.suffix == ".safetensors":
        from hlip.models.weights import save_safetensors

        return save_safetensors(hlip, out, metadata={"hlip_model": name, "source": source.name})
    if text_dir is not None:
        copied = out / "text"
        copied.mkdir(parents=True, exist_ok=True)
        for file in TEXT_FILES:
            if (Path(text_dir) / file).is_file():
                shutil.copy2(Path(text_dir) / file, copied / file)
        text_cfg = dataclasses.replace(hlip.cfg.text, model_dir=str(copied.resolve()))
        hlip.cfg = dataclasses.replace(hlip.cfg, text=text_cfg)
    upstream = find_upstream(name)
    metadata: dict[str, Any] = {
        "source": {"file": source.name, "format": report.source_format, "config": name},
        "import": {"loaded": len(report.loaded), "missing": report.missing, "unexpected": report.unexpected},
    }
    if upstream is not None:
        metadata["source"]["upstream"] = upstream.name
        metadata["contract"] = upstream.contract
    log.info("writing %s (config %s, %s)", out, name, get_model_config(name).description)
    return save_model(hlip, out, metadata=metadata)
