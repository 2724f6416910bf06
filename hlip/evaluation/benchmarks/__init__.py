"""Benchmark adapters, by registry name.

Each adapter lives in its own module and is imported only when asked for (`get_benchmark`), so listing the
registry costs nothing and no adapter's dependencies (MONAI, nibabel, pydicom) load before they are needed.

    >>> from hlip.evaluation.benchmarks import get_benchmark, list_benchmarks
    >>> list_benchmarks()
    ['cq500', 'ct_rate', 'demo', 'pub_brain_5', 'rad_chestct', 'rsna_ich']
    >>> bench = get_benchmark("demo", max_scans=4)          # doctest: +SKIP
    >>> bench.load(bench.study_ids()[0]).shape               # doctest: +SKIP
    (4, 32, 64, 64)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hlip.evaluation.benchmarks.base import Benchmark

# name -> "module:Class"; modules are imported lazily by `get_benchmark`
BENCHMARKS: dict[str, str] = {
    "demo": "hlip.evaluation.benchmarks.demo:DemoBenchmark",
    "ct_rate": "hlip.evaluation.benchmarks.ct_rate:CTRateBenchmark",
    "rad_chestct": "hlip.evaluation.benchmarks.rad_chestct:RadChestCTBenchmark",
    "pub_brain_5": "hlip.evaluation.benchmarks.pub_brain_5:PubBrain5Benchmark",
    "rsna_ich": "hlip.evaluation.benchmarks.rsna_ich:RSNAICHBenchmark",
    "cq500": "hlip.evaluation.benchmarks.cq500:CQ500Benchmark",
}


def list_benchmarks() -> list[str]:
    """Registered benchmark names, sorted."""
    return sorted(BENCHMARKS)


def benchmark_class(name: str) -> type[Benchmark]:
    """The adapter class registered under `name` (imports its module).

    Raises:
        KeyError: When no benchmark has that name (the message lists the registered ones).
    """
    if name not in BENCHMARKS:
        raise KeyError(f"unknown benchmark {name!r}; registered: {', '.join(list_benchmarks())}")
    module, _, attr = BENCHMARKS[name].partition(":")
    cls: type[Benchmark] = getattr(importlib.import_module(module), attr)
    return cls


def get_benchmark(name: str, **kwargs: Any) -> Benchmark:
    """Build the benchmark registered under `name`.

    Args:
        name: A name from `list_benchmarks()`.
        **kwargs: Passed to the adapter (typically `data_root`, `preprocess` and adapter options).

    Returns:
        The adapter instance (its tables are read and checked at construction).
    """
    return benchmark_class(name)(**kwargs)


__all__ = ["BENCHMARKS", "benchmark_class", "get_benchmark", "list_benchmarks"]
