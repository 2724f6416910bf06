"""`save_safetensors` writes the same bytes for the same tensors and metadata, in any process."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load, save
from torch import nn

from hlip.models.weights import canonical_safetensors, load_state_dict_file

METADATA = {"format": "hlip", "format_version": "1", "source": "test"}


def _header(data: bytes) -> tuple[int, bytes]:
    (size,) = struct.unpack("<Q", data[:8])
    return size, data[8 : 8 + size]


def test_the_header_order_safetensors_chose_does_not_change_the_bytes() -> None:
    tensors = {"b.weight": torch.arange(6.0).reshape(2, 3), "a.bias": torch.tensor([1, 2, 3], dtype=torch.int64)}
    data = save(tensors, metadata=METADATA)
    size, header = _header(data)
    parsed = json.loads(header)
    reordered = {"__metadata__": dict(reversed(list(parsed["__metadata__"].items())))}
    reordered.update(reversed([(k, v) for k, v in parsed.items() if k != "__metadata__"]))
    text = json.dumps(reordered, indent=1).encode()
    text += b" " * (-len(text) % 8)
    shuffled = struct.pack("<Q", len(text)) + text + data[8 + size :]
    assert shuffled != data
    assert canonical_safetensors(shuffled) == canonical_safetensors(data)
    canonical = canonical_safetensors(data)
    assert _header(canonical)[0] % 8 == 0
    loaded = load(canonical)  # still a valid file for safetensors' own reader
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())


SAVE = """
import sys, torch
from torch import nn
from hlip.models.weights import save_safetensors
torch.manual_seed(0)
save_safetensors(nn.Linear(3, 2), sys.argv[1], metadata={"format": "hlip", "format_version": "1", "source": "t"})
"""


def test_processes_write_byte_identical_files(tmp_path: Path) -> None:
    """safetensors orders `__metadata__` as a Rust HashMap, differently per process: 4 processes agreed with each
    other only by chance (1 in 216 with these 3 keys) before the header was made canonical."""
    root = Path(__file__).parents[4]
    paths = [tmp_path / f"{i}.safetensors" for i in range(4)]
    for path in paths:
        subprocess.run([sys.executable, "-c", SAVE, str(path)], check=True, cwd=root)
    assert len({p.read_bytes() for p in paths}) == 1
    torch.manual_seed(0)
    expected = nn.Linear(3, 2).state_dict()
    assert all(torch.equal(load_state_dict_file(paths[0])[k], v) for k, v in expected.items())
