"""`compile_model`: `torch.compile` with the inductor settings the HLIP models need on GPU.

Inductor's coalescing analysis for Triton tiling (`triton.coalesce_tiling_analysis`, on by default) fails on the
index arithmetic of the packed scan/study reshapes: `AssertionError` in `tiling_utils._solve_simple_expr`
(a `ModularIndexing` term left after simplification), seen with torch 2.11 + CUDA 13 on an H100 compiling
`hlip-demo` and `hlip-vit-b-brainmri-scan-study`. The analysis only picks tile shapes; turning it off changes no
result.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def compile_model(model: nn.Module, **kwargs: Any) -> Any:
    """`torch.compile(model, **kwargs)` with the coalescing tiling analysis off (see the module docstring)."""
    import torch._inductor.config as inductor_config

    inductor_config.triton.coalesce_tiling_analysis = False
    return torch.compile(model, **kwargs)
