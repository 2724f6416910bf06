"""Use a served model inside this process without letting its shipped code replace the caller's.

`mlflow.pyfunc.load_model` puts the model's own copy of its code (`code_paths`: the `hlip` package it was logged
with) first on `sys.path` and drops the already imported `hlip` modules, so that the model runs the code it was
registered with. That is right while the model predicts, and wrong afterwards: every later import of `hlip` in the
same process (a Prefect worker running the next flow, a DataLoader worker forked later, the next test) would get
the model's copy, which may be older and lacks what a served model does not ship. `model_code_scope()` gives the
model its code for the duration of a `with` block and puts the caller's `sys.path` and `hlip` modules back after.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

PACKAGE = "hlip"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # this process's own copy of the package


def _ours(name: str) -> bool:
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def _from_this_copy(module: ModuleType) -> bool:
    file = getattr(module, "__file__", None)
    return file is not None and Path(file).resolve().is_relative_to(PACKAGE_DIR)


@contextmanager
def model_code_scope() -> Iterator[None]:
    """Restore `sys.path` and the imported `hlip` modules on exit, whatever a model loaded inside changed.

    A module imported before the block comes back as it was; one first imported inside it stays when it came
    from this process's copy of the package and goes when it came from the model's (so the next import finds ours).
    """
    path = list(sys.path)
    modules = {name: module for name, module in sys.modules.items() if _ours(name)}
    try:
        yield
    finally:
        sys.path[:] = path
        for name in [n for n in sys.modules if _ours(n)]:
            module = sys.modules[name]
            if name in modules or not _from_this_copy(module):
                del sys.modules[name]
        sys.modules.update(modules)
