"""The benchmark registry."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hlip.evaluation.benchmarks import BENCHMARKS, benchmark_class, get_benchmark, list_benchmarks
from hlip.evaluation.benchmarks.base import Benchmark


def test_every_registered_adapter_imports_and_declares_its_contract() -> None:
    assert list_benchmarks() == ["cq500", "ct_rate", "demo", "pub_brain_5", "rad_chestct", "rsna_ich"]
    for name in BENCHMARKS:
        cls = benchmark_class(name)
        assert issubclass(cls, Benchmark)
        assert cls.name == name
        assert cls.task in ("multilabel", "multiclass")
        assert cls.prompts
        assert "└──" in (sys.modules[cls.__module__].__doc__ or ""), f"{name}: layout tree missing in docstring"


def test_unknown_name_lists_the_registered_ones() -> None:
    with pytest.raises(KeyError, match="registered: cq500, ct_rate, demo"):
        get_benchmark("nope")


def test_listing_imports_no_adapter() -> None:
    code = (
        "import sys; from hlip.evaluation.benchmarks import list_benchmarks; list_benchmarks(); "
        "print([m for m in sys.modules if m.startswith('hlip.evaluation.benchmarks.') or m in ('torch', 'monai')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
