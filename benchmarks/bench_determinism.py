"""Deterministic CPU training: what it costs and what it buys.

Trains hlip-tiny on a synthetic part (testkit) several times, each in a fresh process: `pretrain.deterministic`
on and off, the same seed, one and two torch threads. Prints steps/s per setting and whether the exported
weights are bit-identical between runs. No timed assertions: a table to read.

    .venv/bin/python benchmarks/bench_determinism.py [--epochs 2] [--studies 24]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

DRIVER = """
import json, sys, time
from hlip.training.config import PretrainConfig
from hlip.training.pretrain import run_pretrain
block = json.loads(sys.argv[1])
start = time.perf_counter()
result = run_pretrain(PretrainConfig.from_params(block), progress=False, device="cpu")
seconds = time.perf_counter() - start
steps = sum(s.get("steps", 0) for s in result.summary["stages"].values() if isinstance(s, dict))
print(json.dumps({"seconds": seconds, "steps": steps, "model_dir": str(result.model_dir)}))
"""


def weights_digest(model_dir: Path) -> str:
    """SHA-256 over every tensor of the exported model (names and bytes, in name order)."""
    from hlip.models.export import load_model

    state = load_model(model_dir).state_dict()
    sha = hashlib.sha256()
    for name in sorted(state):
        sha.update(name.encode() + state[name].detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()[:16]


def train(folder: Path, out: Path, *, deterministic: bool, threads: int, epochs: int) -> dict[str, float | str]:
    from testkit.training_data import tiny_pretrain_block

    block = tiny_pretrain_block(folder, out, deterministic=deterministic, threads=threads, checkpoint_every=0,
                                warmup={"epochs": epochs, "lr": 2e-3, "warmup_steps": 2},
                                contrastive={"epochs": epochs, "lr": 2e-3, "warmup_steps": 2})  # fmt: skip
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(block)], capture_output=True, text=True, check=True)
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {"steps/s": row["steps"] / row["seconds"], "weights": weights_digest(Path(row["model_dir"]))}


def _label_backend(path: Path) -> None:
    """The label table names the labeller of each row (`backend`); older synthetic parts lack the column."""
    import pandas as pd

    table = pd.read_parquet(path)
    if "backend" not in table:
        table["backend"] = "rules"
        table.to_parquet(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--studies", type=int, default=24)
    args = parser.parse_args()
    from testkit.training_data import write_training_folder

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_training_folder(Path(tmp) / "data", n_studies=args.studies)
        _label_backend(folder / "labels" / "train" / "labels.parquet")
        rows = []
        for deterministic in (False, True):
            for threads in (1, 2):
                runs = [train(folder, Path(tmp) / f"out-{deterministic}-{threads}-{i}", deterministic=deterministic,
                              threads=threads, epochs=args.epochs) for i in range(2)]  # fmt: skip
                rows.append((deterministic, threads, runs))
        print(f"{'deterministic':>13} {'threads':>7} {'steps/s run 1':>13} {'steps/s run 2':>13} {'weights':>35}")
        for deterministic, threads, runs in rows:
            same = "identical" if runs[0]["weights"] == runs[1]["weights"] else "DIFFER"
            rate = f"{runs[0]['steps/s']:>13.2f} {runs[1]['steps/s']:>13.2f}"
            print(f"{deterministic!s:>13} {threads:>7} {rate} {runs[0]['weights'] + ' ' + same:>35}")
        by_threads = {t: r[0]["weights"] for d, t, r in rows if d}
        print(f"deterministic, 1 vs 2 threads: {'identical' if len(set(by_threads.values())) == 1 else 'DIFFER'}")


if __name__ == "__main__":
    main()
