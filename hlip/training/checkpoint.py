"""Training checkpoints for exact resumption: weights, optimizer, schedule, scaler, RNG and data position.

A checkpoint is `out/checkpoints/step-<global step>.pt`, written atomically (temporary file, fsync,
`os.replace`), so a process killed mid-write leaves the previous checkpoints intact. It records the config's
training hash: resuming under a config that would train differently is refused with a clear error.

`CheckpointWriter` takes the snapshot (every tensor copied to host memory) while training waits, then serialises
and fsyncs it on a background thread while training goes on: a ViT-B checkpoint with its AdamW state is over a
gigabyte, and the accelerator should not idle while a disk takes it. One write is in flight at a time; a failed
write is raised at the next checkpoint or at `wait()`, never dropped.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)

_NAME = re.compile(r"^step-(\d{9})\.pt$")


class CheckpointMismatchError(RuntimeError):
    """The checkpoint in the output folder was written under a different training config."""


@dataclass(frozen=True)
class Position:
    """Where training stands: the stage, the epoch, optimizer steps done in it, and overall.

    Attributes:
        stage: `warmup` or `contrastive`.
        epoch: Current epoch of the stage (== the stage's epochs once it is finished).
        step_in_epoch: Optimizer steps done in `epoch` (the data position: the sampler skips
            `step_in_epoch * accum_steps * batch_size` samples of this rank).
        global_step: Optimizer steps done over all stages (the checkpoint's name).
    """

    stage: str
    epoch: int
    step_in_epoch: int
    global_step: int


def rng_state() -> dict[str, Any]:
    """States of python `random`, numpy's global generator, torch CPU and every CUDA device."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def frozen_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    """State-dict prefixes of the locked parts of pretrained trunks (a text tower with `frozen` set, LiT style, less
    its `unfrozen_layers`): never trained, rebuilt from their pretrained source whenever the model is built, so
    checkpoints leave them out."""
    from hlip.models.text import TextTower

    towers = [(name, module) for name, module in model.named_modules() if isinstance(module, TextTower)]
    return tuple(f"{name}.{prefix}" if name else prefix for name, tower in towers for prefix in tower.locked_prefixes())


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`model.state_dict()` without the locked trunks (`frozen_prefixes`)."""
    skip = frozen_prefixes(model)
    return {k: v for k, v in model.state_dict().items() if not (skip and k.startswith(skip))}


def load_trainable_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load what `trainable_state` saved; every key but the locked trunks' must be there, and nothing else."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    skip = frozen_prefixes(model)
    missing = [k for k in missing if not (skip and k.startswith(skip))]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def checkpoint_dir(out: Path) -> Path:
    """The checkpoint folder of an output folder."""
    return out / "checkpoints"


def list_checkpoints(out: Path) -> list[Path]:
    """Complete checkpoints of `out`, oldest first (temporary files of an interrupted write are ignored)."""
    folder = checkpoint_dir(out)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if _NAME.match(p.name)), key=lambda p: p.name)


def latest_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint of `out`, or None."""
    found = list_checkpoints(out)
    return found[-1] if found else None


def save_checkpoint(out: Path, payload: Mapping[str, Any], position: Position, keep_last: int) -> Path:
    """Write `payload` + position atomically as `step-<global step>.pt`; keep the newest `keep_last`."""
    folder = checkpoint_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{position.global_step:09d}.pt"
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        torch.save({**payload, "position": asdict(position)}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    for old in list_checkpoints(out)[:-keep_last]:
        old.unlink(missing_ok=True)
    log.info("checkpoint %s (%s epoch %d step %d)", path.name, position.stage, position.epoch,
             position.step_in_epoch)  # fmt: skip
    return path


def host_copy(value: Any) -> Any:
    """`value` with every tensor (and numpy array) copied to host memory, containers rebuilt: a snapshot that later
    in-place updates of the live model, optimizer or generators cannot change."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, Mapping):
        return {k: host_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [host_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(host_copy(v) for v in value)
    return value


@dataclass
class CheckpointTimes:
    """Where checkpoint time went: `snapshot_s` (training waited: copy to host memory), `blocked_s` (training waited
    for the previous write to finish), `write_s` (background: serialise, fsync, rename), one entry per checkpoint."""

    snapshot_s: list[float] = field(default_factory=list)
    blocked_s: list[float] = field(default_factory=list)
    write_s: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"count": len(self.snapshot_s), "snapshot_s": sum(self.snapshot_s), "blocked_s": sum(self.blocked_s),
                "write_s": sum(self.write_s)}  # fmt: skip


class CheckpointWriter:
    """Writes checkpoints on a background thread (`save`), one at a time; `wait()` before reading them.

    Args:
        out: The run's output folder (checkpoints go to `out/checkpoints`).
        keep_last: Checkpoints kept.
    """

    def __init__(self, out: Path, keep_last: int) -> None:
        self.out, self.keep_last = out, keep_last
        self.times = CheckpointTimes()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, payload: Mapping[str, Any], position: Position) -> None:
        """Snapshot `payload` now and write it as the checkpoint of `position`."""
        tick = time.perf_counter()
        self.wait()
        self.times.blocked_s.append(time.perf_counter() - tick)
        tick = time.perf_counter()
        snapshot = host_copy(dict(payload))
        self.times.snapshot_s.append(time.perf_counter() - tick)
        self._thread = threading.Thread(target=self._write, args=(snapshot, position), name="checkpoint-writer")
        self._thread.start()

    def wait(self) -> None:
        """Block until the write in flight is on disk; raise its error if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"writing a checkpoint under {checkpoint_dir(self.out)} failed: {error}") from error

    def _write(self, snapshot: dict[str, Any], position: Position) -> None:
        tick = time.perf_counter()
        try:
            save_checkpoint(self.out, snapshot, position, self.keep_last)
        except BaseException as err:  # re-raised in the training thread by the next save() or wait()
            log.error("checkpoint step-%09d failed: %s", position.global_step, err)
            self._error = err
        finally:
            self.times.write_s.append(time.perf_counter() - tick)


def load_checkpoint(path: Path, expected_hash: str) -> dict[str, Any]:
    """Read a checkpoint written under the config whose `training_hash()` is `expected_hash`.

    Raises:
        CheckpointMismatchError: The checkpoint's config hash differs (the message names both and the way out).
    """
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("config_hash") != expected_hash:
        raise CheckpointMismatchError(
            f"{path} was written under a different training config (hash {state.get('config_hash')} != "
            f"{expected_hash}); restore that config, or move {path.parent} away to start afresh"
        )
    return state


def position_of(state: Mapping[str, Any]) -> Position:
    """The position recorded in a loaded checkpoint."""
    return Position(**state["position"])


COMPLETE = "COMPLETE"
TRAINING_ENTRY = "hlip.training.pretrain"


def training_code_digest() -> str:
    """Digest of the code a checkpoint's numbers depend on: the import closure of the training entry (loop,
    models and their configs, dataset, labels), computed by the function that checks `dvc.yaml`'s deps."""
    from hlip.lineage.closure import closure_digest

    return closure_digest(TRAINING_ENTRY)[:16]


def mark_complete(out: Path, config_hash: str) -> None:
    """Record that the run of `config_hash` finished: its checkpoints are history, never a resume point."""
    folder = checkpoint_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / COMPLETE).write_text(f"{config_hash} {training_code_digest()}\n")


def resumable(out: Path, config_hash: str, data_digest: str | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint (path, loaded state) of an *interrupted* run of this config, code and training data
    (`data_digest`, when given), or None (start afresh).

    Checkpoints of a finished run, of another training config, of other code or of other data are stale: they are
    removed (they are this stage's own outputs), with a log line saying why, so a changed param, a code fix or new
    studies retrain instead of silently reusing old weights or continuing an old data order.
    """
    path = latest_checkpoint(out)
    folder = checkpoint_dir(out)
    if path is None:
        (folder / COMPLETE).unlink(missing_ok=True)
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    reason = None
    if (folder / COMPLETE).exists():
        reason = "they belong to a finished run"
    elif state.get("config_hash") != config_hash:
        reason = f"they were written under another training config ({state.get('config_hash')} != {config_hash})"
    elif state.get("code_digest") != training_code_digest():
        reason = "the training or model code changed since they were written"
    elif data_digest is not None and state.get("data_digest") != data_digest:
        reason = "the training data (studies, scans, reports or labels) changed since they were written"
    if reason is None:
        return path, state
    log.warning("starting afresh: removing the checkpoints in %s because %s", folder, reason)
    for old in list_checkpoints(out):
        old.unlink(missing_ok=True)
    (folder / COMPLETE).unlink(missing_ok=True)
    return None
