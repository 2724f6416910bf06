"""Shared by every integration test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hlip.serving.in_process import model_code_scope


@pytest.fixture(autouse=True)
def _project_hlip_after_each_test() -> Iterator[None]:
    """A test that loads a served model in-process (MLflow puts the model's shipped `hlip` first on `sys.path`)
    must not leave later tests, or the DataLoader workers they fork, importing that copy."""
    with model_code_scope():
        yield
