"""Shared pytest configuration: the pipeline's portable CPU numerics; GPU tests skipped without a CUDA device."""

from __future__ import annotations

import pytest

from hlip.numerics import pin_portable_cpu_numerics

# Before anything imports torch: tests compute with the arithmetic the pipeline's flows use, and the processes they
# start (flows, CLIs, served models) inherit it, so results compared across processes come from the same kernels.
pin_portable_cpu_numerics()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none is present")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
