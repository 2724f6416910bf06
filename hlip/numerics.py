"""Portable CPU numerics: the same float results on any x86-64 machine, so a fresh clone reproduces `dvc.lock`.

PyTorch's CPU kernels pick their code path by the processor's instruction set: ATen's vectorised kernels
(AVX-512 or AVX2), MKL's BLAS and oneDNN's convolutions. Each path sums in another order, so the same seed and
data give other weights on a machine with another instruction set (measured: `hlip-tiny`, 2 x 2 epochs, four
different weight digests for the four combinations of native and AVX2 paths on one AMD EPYC), and a trained
model's zero-shot AUC then moves far more than its bootstrap interval (the demo: 0.633 on one machine, 0.754 on
another). Pinning every library to its AVX2 path, which every x86-64 server of the last decade has, makes the
arithmetic the same everywhere: `ATEN_CPU_CAPABILITY=avx2`, MKL's conditional numerical reproducibility
(`MKL_CBWR=AVX2`), `ONEDNN_MAX_CPU_ISA=AVX2`, and OpenBLAS's Haswell kernels for NumPy and SciPy
(`OPENBLAS_CORETYPE=Haswell`: evaluation's zero-shot logits and probes are NumPy/scikit-learn products, and on an
AVX-512 machine OpenBLAS's SkylakeX kernels changed the last bits of the committed ECE, measured 2026-12-05).

They are read when each library starts, so `pin_portable_cpu_numerics()` must run before torch or NumPy is imported: the
pipeline's entry points (`flows`) call it first, and training's child processes inherit the environment. It costs
up to 1.6x in step time on an AVX-512 machine (`benchmarks/bench_determinism.py --kernels`). `HLIP_CPU_NUMERICS=native`
turns it off (fastest kernels, results tied to the machine); a variable already set in the environment wins.
Other architectures (aarch64) have their own kernels: results there are reproducible on that architecture only.
"""

from __future__ import annotations

import os
import platform
import sys

SWITCH = "HLIP_CPU_NUMERICS"
PORTABLE_X86 = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}
PINNED_LIBRARIES = ("torch", "numpy")  # each reads its part of the pin when it is first imported


def pin_portable_cpu_numerics() -> dict[str, str]:
    """Set the portable kernel paths in the environment (unless `HLIP_CPU_NUMERICS=native` or already set);
    returns what is in effect. Raises if torch or NumPy was imported before: the pin would then silently not apply."""
    mode = os.environ.get(SWITCH, "portable").strip().lower()
    if mode not in ("portable", "native"):
        raise ValueError(f"{SWITCH}={os.environ[SWITCH]!r}: use 'portable' (the default) or 'native'")
    if mode == "native" or platform.machine().lower() not in ("x86_64", "amd64"):
        return {}
    missing = {k: v for k, v in PORTABLE_X86.items() if k not in os.environ}
    early = [name for name in PINNED_LIBRARIES if name in sys.modules]
    if missing and early:
        raise RuntimeError(
            f"{' and '.join(early)} imported before the portable CPU numerics were set ({', '.join(missing)}): "
            "call hlip.numerics.pin_portable_cpu_numerics() first, or set HLIP_CPU_NUMERICS=native"
        )
    for key, value in missing.items():
        os.environ[key] = value
    return {k: os.environ[k] for k in PORTABLE_X86}
