"""Subprocess entry of the training tests: `python train_driver.py CONFIG.json METRICS.jsonl [SLEEP_S]`.

Runs `run_pretrain` on the config (a `pretrain` block as JSON) with a logger that appends every metric record to
METRICS.jsonl (rank 0) and waits SLEEP_S after each step, so a test can kill the process between steps. Works
under torchrun too.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from hlip.training.config import PretrainConfig
from hlip.training.pretrain import run_pretrain


class FileLogger:
    """Appends `{"step": s, **metrics}` lines to a file."""

    def __init__(self, path: Path, sleep_s: float) -> None:
        self.path = path
        self.sleep_s = sleep_s

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps({"step": step, **metrics}) + "\n")
        time.sleep(self.sleep_s)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        pass

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        pass


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")  # what a stage would show
    torch.set_num_threads(1)
    config = PretrainConfig.from_params(json.loads(Path(sys.argv[1]).read_text()))
    sleep_s = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    run_pretrain(config, logger=FileLogger(Path(sys.argv[2]), sleep_s), progress=False, device="cpu")


if __name__ == "__main__":
    main()
