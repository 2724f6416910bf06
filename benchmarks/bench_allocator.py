"""The demo corpus writer and a training step with glibc's default malloc thresholds and with `retain_freed_memory`.

`hlip.allocator.retain_freed_memory()` keeps freed memory in the heap instead of returning it to the kernel, so a
large array allocated again is not faulted in page by page again. This harness runs two of the pipeline's hot
loops in fresh child processes, alternating the two settings round by round (`HLIP_RETAIN_FREED_MEMORY=0` turns the
setting off in a child), so that the shared machine's load changes both rows alike:

- *corpus*: `demo_corpus.writer.write_study` over the first studies of a small plan of the embedded corpus's
  config (the same rendering and DICOM encoding as `hlip demo corpus`, into a scratch folder);
- *train step*: stage-B steps of `hlip-demo` on synthetic batches (`bench_train_step.synthetic_batch`: 8 studies of
  7 scans, the frozen MiniLM text tower, CLIP loss, AdamW), 2 torch threads, after one untimed step.

Each child reports the wall time of its loop, its CPU seconds (user and system) and its minor page faults over the
loop, and its peak resident memory. The written files and the trained weights do not depend on the setting (the
child prints a digest of each; the harness exits non-zero if they differ).

Usage:
    .venv/bin/python benchmarks/bench_allocator.py [--rounds 3] [--studies 12] [--steps 6]
Prints a Markdown table of medians over rounds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SETTINGS = {"glibc defaults": "0", "retain_freed_memory": "1"}


def _usage() -> tuple[float, float, int, int]:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt, r.ru_maxrss


def _measure(loop: Any) -> dict[str, Any]:
    user0, sys0, faults0, _ = _usage()
    tick = time.perf_counter()
    digest = loop()
    wall = time.perf_counter() - tick
    user1, sys1, faults1, peak_kb = _usage()
    return {"wall": wall, "user": user1 - user0, "sys": sys1 - sys0, "faults": faults1 - faults0,
            "peak_mb": peak_kb / 1024, "digest": digest}  # fmt: skip


def child_corpus(studies: int) -> dict[str, Any]:
    from hlip.allocator import retain_freed_memory

    retain_freed_memory()  # a no-op under HLIP_RETAIN_FREED_MEMORY=0
    from demo_corpus.anatomy import load_anatomy
    from demo_corpus.config import DemoCorpusConfig
    from demo_corpus.plan import plan_corpus
    from demo_corpus.writer import write_study

    config = DemoCorpusConfig.from_dict({**DemoCorpusConfig().to_dict(), "n_train_studies": studies,
                                         "n_benchmark_studies": 0})  # fmt: skip
    plan = plan_corpus(config)
    load_anatomy(config.template_resolution_mm)
    with tempfile.TemporaryDirectory() as tmp:

        def loop() -> str:
            for study in plan.studies:
                write_study(Path(tmp), study, config.template_resolution_mm)
            digest = hashlib.sha256()
            for path in sorted(p for p in Path(tmp).rglob("*") if p.is_file()):
                digest.update(path.relative_to(tmp).as_posix().encode() + path.read_bytes())
            return digest.hexdigest()[:16]

        result = _measure(loop)
    result["unit"] = result["wall"] / len(plan.studies)
    return result


def child_train(steps: int) -> dict[str, Any]:
    from hlip.allocator import retain_freed_memory

    retain_freed_memory()
    from hlip.numerics import pin_portable_cpu_numerics

    pin_portable_cpu_numerics()
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_train_step import StageBRun, synthetic_batch

    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    run = StageBRun(freeze=1)  # the shipped recipe's stage B
    generator = torch.Generator().manual_seed(0)
    batches = [synthetic_batch(generator, run.config.vision.image_size, run.vocab) for _ in range(steps + 1)]
    run.step(batches[0])  # untimed: first-call allocations

    def loop() -> str:
        for batch in batches[1:]:
            run.step(batch)
        digest = hashlib.sha256()
        for tensor in run.model.state_dict().values():
            digest.update(tensor.detach().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    result = _measure(loop)
    result["unit"] = result["wall"] / steps
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (a child per setting and round)")
    parser.add_argument("--studies", type=int, default=12, help="studies the corpus child writes")
    parser.add_argument("--steps", type=int, default=6, help="timed training steps of the train-step child")
    parser.add_argument("--child", choices=["corpus", "train"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child_corpus(args.studies) if args.child == "corpus" else child_train(args.steps)
        print(json.dumps(result))
        return

    root = Path(__file__).resolve().parents[1]
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for workload in ("corpus", "train"):
            for name, switch in SETTINGS.items():
                env = {**os.environ, "HLIP_RETAIN_FREED_MEMORY": switch, "PYTHONPATH": str(root)}
                cmd = [sys.executable, __file__, "--child", workload, "--studies", str(args.studies),
                       "--steps", str(args.steps)]  # fmt: skip
                out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=root)
                runs.setdefault((workload, name), []).append(json.loads(out.stdout.strip().splitlines()[-1]))

    print(f"{args.rounds} alternating rounds; corpus: {args.studies} studies written, train: {args.steps} stage-B "
          "steps of hlip-demo (8 studies x 7 scans, 2 threads); medians over rounds")  # fmt: skip
    print("| loop | malloc | s per unit | CPU user s | CPU system s | minor faults | peak RSS MB | vs defaults |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    failed = False
    for workload, unit in (("corpus", "study"), ("train", "step")):
        base = statistics.median(r["unit"] for r in runs[(workload, "glibc defaults")])
        digests = {r["digest"] for name in SETTINGS for r in runs[(workload, name)]}
        for name in SETTINGS:
            rows = runs[(workload, name)]
            med = {k: statistics.median(r[k] for r in rows) for k in ("unit", "user", "sys", "faults", "peak_mb")}
            print(f"| {workload} ({unit}) | {name} | {med['unit']:.3f} | {med['user']:.1f} | {med['sys']:.2f} | "
                  f"{med['faults']:,.0f} | {med['peak_mb']:.0f} | {med['unit'] / base:.2f} |")  # fmt: skip
        if len(digests) != 1:
            print(f"{workload}: outputs differ between settings: {sorted(digests)}", file=sys.stderr)
            failed = True
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
