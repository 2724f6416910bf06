"""Portable CPU numerics: the pipeline's entry points pin every kernel library to its AVX2 path before torch and
NumPy start."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from hlip.numerics import PORTABLE_X86, SWITCH, pin_portable_cpu_numerics

x86 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 kernel paths")
KEYS = sorted(PORTABLE_X86)
PROBE = (  # a fresh process: what torch's dispatch and the environment say after `import flows`
    f"import flows, os, torch; print(torch.backends.cpu.get_cpu_capability(), "
    f"*(os.environ.get(k, '-') for k in {KEYS!r}))"
)


def _unpinned_env() -> dict[str, str]:
    """This process's environment without the pin's variables and switch: what a fresh shell would hand a flow."""
    return {k: v for k, v in os.environ.items() if k not in PORTABLE_X86 and k != SWITCH}


def _probe(**env: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**_unpinned_env(), **env}, capture_output=True, text=True,
                         check=True)  # fmt: skip
    return out.stdout.split()


@x86
def test_importing_the_flows_pins_torch_mkl_and_onednn_to_avx2() -> None:
    capability, *values = _probe()
    assert capability == "AVX2"  # also on an AVX-512 machine: the pin reached torch's dispatch
    assert values == [PORTABLE_X86[k] for k in KEYS]


@x86
def test_native_turns_the_pin_off_and_a_variable_set_by_the_user_wins() -> None:
    capability, *values = _probe(**{SWITCH: "native"})
    assert values == ["-"] * len(KEYS)
    assert capability in ("AVX2", "AVX512", "DEFAULT", "ZVECTOR", "VSX", "NO AVX")
    capability, *values = _probe(ATEN_CPU_CAPABILITY="default")
    assert capability == "DEFAULT"
    assert dict(zip(KEYS, values, strict=True))["MKL_CBWR"] == "AVX2"


@x86
def test_importing_the_flows_pins_numpy_and_scipy_openblas_to_haswell() -> None:
    """NumPy's and SciPy's OpenBLAS pick SkylakeX kernels on an AVX-512 machine unless pinned (the last bits of
    evaluation's metrics then differ from the committed ones)."""
    probe = (
        "import flows, numpy, scipy.linalg, threadpoolctl; "
        "print(*sorted({i['architecture'] for i in threadpoolctl.threadpool_info() "
        "if i['internal_api'] == 'openblas'}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=_unpinned_env(), capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["Haswell"]


@x86
def test_a_pin_that_comes_after_numpy_fails_loudly_naming_it() -> None:
    code = "import numpy; from hlip.numerics import pin_portable_cpu_numerics; pin_portable_cpu_numerics()"
    out = subprocess.run([sys.executable, "-c", code], env=_unpinned_env(), capture_output=True, text=True)
    assert out.returncode != 0
    assert "numpy imported before the portable CPU numerics were set" in out.stderr
    assert "OPENBLAS_CORETYPE" in out.stderr


@x86
def test_a_pin_that_comes_after_torch_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch  # noqa: F401  (already imported by the test session; the point is that it is)

    for key in PORTABLE_X86:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv(SWITCH, raising=False)
    with pytest.raises(RuntimeError, match="torch and numpy imported before"):
        pin_portable_cpu_numerics()
    monkeypatch.setenv(SWITCH, "fast")
    with pytest.raises(ValueError, match="portable"):
        pin_portable_cpu_numerics()
