"""Benchmark adapters, by registry name.

Each adapter lives in its own module and is imported only when asked for (`get_benchmark`), so listing the
registry costs nothing and no adapter's dependencies (nibabel, pydicom) load before they are needed.

    >>> from hlip.evaluation.benchmarks import list_benchmarks, open_benchmark
    >>> list_benchmarks()
    ['cq500', 'ct_rate', 'demo', 'pub_brain_5', 'rad_chestct', 'rsna_ich']
    >>> bench = open_benchmark("demo", "outputs/pretrain/model")   # doctest: +SKIP
    >>> bench.load(bench.study_ids()[0]).shape               # doctest: +SKIP
    (4, 32, 64, 64)
"""

from __future__ import annotations

import importlib
from pathlib import Path
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


def open_benchmark(name: str, model_dir: str | Path, **kwargs: Any) -> Benchmark:
    """Build benchmark `name` for the exported model in `model_dir`: its scans are chosen and preprocessed by the
    model's own study contract (`StudyContract.of_model`), never by `params.yaml` or the adapter's defaults.

    Raises:
        ContractError: The model carries no contract, or the benchmark's data disagree with it.
        TypeError: `kwargs` names a `contract` (it comes from the model only).
    """
    from hlip.data.contract import StudyContract

    if "contract" in kwargs:
        raise TypeError("open_benchmark takes the study contract from the model, not from its arguments")
    return get_benchmark(name, contract=StudyContract.of_model(model_dir), **kwargs)


__all__ = ["BENCHMARKS", "benchmark_class", "get_benchmark", "list_benchmarks", "open_benchmark"]
