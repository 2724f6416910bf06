"""Weight files: read a state dict from safetensors or a torch file without unpickling code, write safetensors.

Used by the model export (`export.py`), the upstream conversion (`upstream.py`) and the training stages that
save a warm-up head. Training checkpoints (optimiser state, resume) are `hlip/training/checkpoint.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a weight file: safetensors, or a torch file read with `weights_only=True`.

    Training dicts are unwrapped (`state_dict`, then `model`), and a DDP `module.` prefix is stripped.

    Raises:
        ValueError: The file holds no mapping of tensors.
        pickle.UnpicklingError: The torch file holds objects other than tensors and plain containers.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: object = load_file(str(path))
    else:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path}: no state dict found (got {type(obj).__name__})")
    return strip_prefix({k: v for k, v in obj.items() if isinstance(v, Tensor)}, "module.")


def strip_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Remove `prefix` from every key that has it."""
    return {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state_dict.items()}


def save_safetensors(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write the model's state dict as safetensors (contiguous CPU copies), byte-identical for equal tensors and
    metadata: safetensors writes `__metadata__` in the order of a Rust HashMap, which changes from process to
    process, so the header is re-serialised with sorted keys (`canonical_safetensors`)."""
    from safetensors.torch import save

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    path.write_bytes(canonical_safetensors(save(tensors, metadata=metadata)))
    return path


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its JSON header in one canonical form (sorted keys, no spaces, padded with
    spaces to a multiple of 8 bytes as the format requires); tensor offsets are relative to the data section, so
    the tensor bytes are kept as they are."""
    import json
    import struct

    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data[8 + size :]
