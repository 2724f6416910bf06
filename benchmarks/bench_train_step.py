"""CPU time of one stage-B (contrastive) training step of `hlip-demo`, with its first stem convolutions frozen or not.

`pretrain.contrastive.freeze_stem: N` keeps the first N convolutions of the vision tower's stem (with their BatchNorm
and activation) as stage A left them. On CPU the first convolution's backward, a weight gradient over every
full-resolution voxel of every scan, is the costliest single part of a step. This harness times the same step
with N = 0 (the whole stem trains), 1 (the shipped recipe) and every convolution frozen, interleaved round by round
on the same batches, so that the machine's load changes every row alike.

A step is what stage B runs: the demo tower over a batch of 8 studies of 7 scans (32x64x64, a head-shaped
foreground in [0, 1]), the frozen MiniLM text tower over 8 reports of 128 tokens, the CLIP loss, backward,
gradient clipping and AdamW. The inputs are synthetic: a step's cost does not depend on the values, and the
harness then needs no corpus. Each configuration starts from the same initial weights; timings are wall seconds of
single steps after one untimed step per configuration.

Usage:
    .venv/bin/python benchmarks/bench_train_step.py [--rounds 4] [--steps 3] [--freeze 0 1 3] [--threads 2]
Prints a table (median and best milliseconds per step, steps/s, and the median relative to N = 0); asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

STUDIES, SCANS, CONTEXT = 8, 7, 128


def synthetic_batch(generator: Any, size: tuple[int, int, int], vocab: int) -> dict[str, Any]:
    """A stage-B batch: scans with an ellipsoid 'head' of noisy tissue on a dark background, random report tokens."""
    import torch

    d, h, w = size
    zz, yy, xx = torch.meshgrid(torch.linspace(-1, 1, d), torch.linspace(-1, 1, h), torch.linspace(-1, 1, w),
                                indexing="ij")  # fmt: skip
    head = (zz**2 / 0.8 + yy**2 / 0.7 + xx**2 / 0.6) < 1.0
    image = torch.rand(STUDIES, SCANS, 1, d, h, w, generator=generator) * head
    text = torch.randint(1000, vocab, (STUDIES, CONTEXT), generator=generator)
    return {"image": image, "scan_mask": torch.ones(STUDIES, SCANS, dtype=torch.bool), "text": text}


class StageBRun:
    """A stage-B step of `hlip-demo` from seed 0 with its first `freeze` stem convolutions frozen: the model, AdamW
    (lr 5e-4, weight decay 0.05) and the CLIP loss, as the pipeline's stage B runs them. Needs torch imported after
    `pin_portable_cpu_numerics()`."""

    def __init__(self, freeze: int) -> None:
        import torch

        from hlip.models.clip import HLIP
        from hlip.models.factory import get_model_config
        from hlip.models.loss import create_loss
        from hlip.training.optim import create_optimizer

        self.config = get_model_config("hlip-demo", {})
        torch.manual_seed(0)
        self.model = HLIP(self.config).train()
        if freeze:
            self.model.visual.patch_embed.lock_stem(freeze)
        self.model.train()
        self.optimizer = create_optimizer(self.model, 5e-4, 0.05)
        self.loss = create_loss("clip", rank=0, world_size=1)

    @property
    def vocab(self) -> int:
        return int(self.model.text.transformer.config.vocab_size)

    def step(self, batch: dict[str, Any]) -> None:
        """Forward, CLIP loss, backward, gradient clipping at 1.0 and the optimizer step."""
        import torch

        out = self.model(image=batch["image"], text=batch["text"], scan_mask=batch["scan_mask"])
        value = self.loss(**out)
        self.optimizer.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds over the configurations")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration and round")
    parser.add_argument("--freeze", type=int, nargs="+", default=[0, 1, 3], help="stem convolutions frozen")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the pipeline's pretrain.threads)")
    args = parser.parse_args()

    from hlip.numerics import pin_portable_cpu_numerics

    pin_portable_cpu_numerics()  # the kernels the pipeline trains with
    import torch

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator().manual_seed(0)
    runs = {n: StageBRun(n) for n in args.freeze}
    first = next(iter(runs.values()))
    batches = [synthetic_batch(generator, first.config.vision.image_size, first.vocab) for _ in range(args.steps + 1)]

    def timed(run: StageBRun, batch: dict[str, Any]) -> float:
        tick = time.perf_counter()
        run.step(batch)
        return time.perf_counter() - tick

    times: dict[int, list[float]] = {n: [] for n in runs}
    for run in runs.values():
        run.step(batches[0])  # untimed: first-call allocations
    for _ in range(args.rounds):
        for n, run in runs.items():
            times[n].extend(timed(run, b) for b in batches[1:])

    base = statistics.median(times[args.freeze[0]])
    print(f"stage-B step of hlip-demo, {STUDIES} studies x {SCANS} scans, {args.threads} threads, "
          f"{args.rounds} interleaved rounds x {args.steps} steps per configuration")  # fmt: skip
    print("| freeze_stem | trainable parameters | median ms | best ms | steps/s (median) | median / first row |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n, run in runs.items():
        trainable = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
        median = statistics.median(times[n])
        print(f"| {n} | {trainable:,} | {median * 1e3:.0f} | {min(times[n]) * 1e3:.0f} | {1 / median:.2f} | "
              f"{median / base:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
