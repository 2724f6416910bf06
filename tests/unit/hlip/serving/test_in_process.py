"""`model_code_scope` puts back the caller's `sys.path` and `hlip` modules whatever a model load changed."""

from __future__ import annotations

import importlib
import sys
import types

import pytest

import hlip.data.sampling
from hlip.serving.in_process import model_code_scope


def test_the_callers_path_and_modules_come_back_after_a_model_swapped_them() -> None:
    path = list(sys.path)
    ours = sys.modules["hlip.data.sampling"]
    sys.modules.pop("hlip.serving.example", None)  # so that the block imports it first
    with model_code_scope():
        sys.path.insert(0, "/model/code")  # what mlflow's code_paths loading does
        del sys.modules["hlip.data.sampling"]
        sys.modules["hlip.data.sampling"] = types.ModuleType("hlip.data.sampling")  # the model's copy
        model_only = types.ModuleType("hlip.only_in_the_model")
        model_only.__file__ = "/model/code/hlip/only_in_the_model.py"
        sys.modules["hlip.only_in_the_model"] = model_only
        fresh = importlib.import_module("hlip.serving.example")  # first imported inside, from our own copy
        assert sys.modules["hlip.data.sampling"] is not ours
    assert sys.path == path
    assert sys.modules["hlip.data.sampling"] is ours is hlip.data.sampling
    assert "hlip.only_in_the_model" not in sys.modules
    assert sys.modules["hlip.serving.example"] is fresh  # kept: classes defined there still resolve their hints


def _failing_model() -> None:
    with model_code_scope():
        sys.path.insert(0, "/model/code")
        sys.modules.pop("hlip.data.sampling")
        raise RuntimeError("predict failed")


def test_the_restore_happens_when_the_model_raises() -> None:
    path = list(sys.path)
    with pytest.raises(RuntimeError, match="predict failed"):
        _failing_model()
    assert sys.path == path
    assert sys.modules["hlip.data.sampling"] is hlip.data.sampling
