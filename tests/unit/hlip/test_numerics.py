"""Portable CPU numerics: the pipeline's entry points pin every kernel library to its AVX2 path before torch."""

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


def _probe(**env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items() if k not in PORTABLE_X86 and k != SWITCH}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, check=True)
    return out.stdout.split()


@x86
def test_importing_the_flows_pins_torch_mkl_and_onednn_to_avx2() -> None:
    capability, *values = _probe()
    assert capability == "AVX2"  # also on an AVX-512 machine: the pin reached torch's dispatch
    assert values == [PORTABLE_X86[k] for k in KEYS]


@x86
def test_native_turns_the_pin_off_and_a_variable_set_by_the_user_wins() -> None:
    capability, *values = _probe(**{SWITCH: "native"})
    assert values == ["-", "-", "-"]
    assert capability in ("AVX2", "AVX512", "DEFAULT", "ZVECTOR", "VSX", "NO AVX")
    capability, *values = _probe(ATEN_CPU_CAPABILITY="default")
    assert capability == "DEFAULT"
    assert dict(zip(KEYS, values, strict=True))["MKL_CBWR"] == "AVX2"


@x86
def test_a_pin_that_comes_after_torch_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch  # noqa: F401  (already imported by the test session; the point is that it is)

    for key in PORTABLE_X86:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv(SWITCH, raising=False)
    with pytest.raises(RuntimeError, match="torch was imported before"):
        pin_portable_cpu_numerics()
    monkeypatch.setenv(SWITCH, "fast")
    with pytest.raises(ValueError, match="portable"):
        pin_portable_cpu_numerics()
