"""Deterministic CPU training: what it costs and what it buys.

Trains hlip-tiny on a synthetic part (testkit) several times, each in a fresh process: `pretrain.deterministic`
on and off, the same seed, one and two torch threads. Prints steps/s per setting and whether the exported
weights are bit-identical between runs. No timed assertions: a table to read.

`--kernels`: the CPU kernel paths instead (`hlip.numerics`): the same deterministic 2-thread run with each library
native or pinned to AVX2, side by side (weights digest and steps/s), then the forward+backward step time of the
demo model (`params.yaml:pretrain`) native vs portable. On an AVX-512 machine the digests show which library's
dispatch changes the weights; on any machine the portable row's digest is the one every x86-64 machine gets.

    .venv/bin/python benchmarks/bench_determinism.py [--epochs 2] [--studies 24] [--kernels]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
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


STEP = """
import sys, time, torch, yaml
torch.set_num_threads(2)
from hlip.models import get_model_config
from hlip.models.clip import HLIPClassifier
block = yaml.safe_load(open("params.yaml"))["pretrain"]
cfg = get_model_config(block["model"])
torch.manual_seed(0)
model = HLIPClassifier(cfg, 8)
optimizer = torch.optim.AdamW(model.parameters())
x = torch.rand(block["batch_size"], 4, 1, *cfg.vision.image_size)
times = []
for _ in range(int(sys.argv[1])):
    start = time.perf_counter()
    model(x)["logits"].sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    times.append(time.perf_counter() - start)
print(torch.backends.cpu.get_cpu_capability(), min(times[1:]), sorted(times[1:])[len(times[1:]) // 2])
"""


def train(
    folder: Path, out: Path, *, deterministic: bool, threads: int, epochs: int, env: dict[str, str] | None = None
) -> dict[str, float | str]:
    from testkit.training_data import tiny_pretrain_block

    block = tiny_pretrain_block(folder, out, deterministic=deterministic, threads=threads, checkpoint_every=0,
                                warmup={"epochs": epochs, "lr": 2e-3, "warmup_steps": 2},
                                contrastive={"epochs": epochs, "lr": 2e-3, "warmup_steps": 2})  # fmt: skip
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(block)], capture_output=True, text=True, check=True,
                          env=env)  # fmt: skip
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {"steps/s": row["steps"] / row["seconds"], "weights": weights_digest(Path(row["model_dir"]))}


def _label_backend(path: Path) -> None:
    """The label table names the labeller of each row (`backend`); older synthetic parts lack the column."""
    import pandas as pd

    table = pd.read_parquet(path)
    if "backend" not in table:
        table["backend"] = "rules"
        table.to_parquet(path)


def kernel_env(pinned: dict[str, str]) -> dict[str, str]:
    """This environment without any kernel pin, plus `pinned`."""
    from hlip.numerics import PORTABLE_X86

    return {**{k: v for k, v in os.environ.items() if k not in PORTABLE_X86}, **pinned}


def kernels(folder: Path, tmp: Path, epochs: int, steps: int) -> None:
    from hlip.numerics import PORTABLE_X86

    aten = {"ATEN_CPU_CAPABILITY": PORTABLE_X86["ATEN_CPU_CAPABILITY"]}
    variants = {"native": {}, "ATen AVX2": aten, "MKL + oneDNN AVX2": {k: v for k, v in PORTABLE_X86.items()
                if k not in aten}, "portable (all AVX2)": dict(PORTABLE_X86)}  # fmt: skip
    print(f"{'kernels':>22} {'steps/s':>8} {'weights':>17}")
    for name, pinned in variants.items():
        row = train(folder, tmp / f"out-{len(pinned)}-{name[:3]}", deterministic=True, threads=2, epochs=epochs,
                    env=kernel_env(pinned))  # fmt: skip
        print(f"{name:>22} {row['steps/s']:>8.2f} {row['weights']:>17}", flush=True)
    print(f"\ndemo model forward+backward (params.yaml:pretrain, 4 scans per study, 2 threads), {steps} steps")
    print(f"{'kernels':>22} {'capability':>10} {'best ms':>8} {'median ms':>9}")
    for name in ("native", "portable (all AVX2)", "native", "portable (all AVX2)"):  # interleaved: a busy machine
        out = subprocess.run([sys.executable, "-c", STEP, str(steps)], capture_output=True, text=True, check=True,
                             env=kernel_env(variants[name]))  # fmt: skip
        capability, best, median = out.stdout.split()
        print(f"{name:>22} {capability:>10} {1000 * float(best):>8.0f} {1000 * float(median):>9.0f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--studies", type=int, default=24)
    parser.add_argument("--kernels", action="store_true", help="native vs portable CPU kernel paths")
    parser.add_argument("--steps", type=int, default=6, help="--kernels: demo-model steps per measurement")
    args = parser.parse_args()
    from testkit.training_data import write_training_folder

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_training_folder(Path(tmp) / "data", n_studies=args.studies)
        _label_backend(folder / "labels" / "train" / "labels.parquet")
        if args.kernels:
            kernels(folder, Path(tmp), args.epochs, args.steps)
            return
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
