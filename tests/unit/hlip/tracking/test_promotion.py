"""The champion/challenger gate: the pure decision, and aliases/tags against a real (SQLite) model registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hlip.tracking.promotion import BENCHMARK_TAG, CHALLENGER, CHAMPION, decide, promote, write_decision

if TYPE_CHECKING:
    from mlflow import MlflowClient

_names = count()


@pytest.mark.parametrize(
    ("challenger", "champion", "margin", "greater", "promoted"),
    [
        (0.80, None, 0.0, True, True),  # no champion value: promote
        (0.80, 0.70, 0.0, True, True),
        (0.70, 0.70, 0.0, True, False),  # a tie does not move the champion
        (0.75, 0.70, 0.05, True, False),  # must beat by MORE than the margin
        (0.76, 0.70, 0.05, True, True),
        (0.60, 0.70, 0.0, True, False),
        (0.20, 0.30, 0.05, False, True),  # lower is better (e.g. a loss)
        (0.30, 0.20, 0.0, False, False),
    ],
)
def test_decide(challenger: float, champion: float | None, margin: float, greater: bool, promoted: bool) -> None:
    got, reason = decide(challenger, champion, margin, greater)
    assert got is promoted
    assert f"{challenger:.4f}" in reason


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowClient]:
    """One SQLite registry for the module (creating its schema takes seconds)."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}")
    return client


@pytest.fixture
def registry(store: MlflowClient) -> tuple[MlflowClient, str]:
    """The registry and a fresh registered model name."""
    name = f"m{next(_names)}"
    store.create_registered_model(name)
    return store, name


def _version(registry: tuple[MlflowClient, str], auc: float | None, benchmark: str | None = None) -> str:
    client, name = registry
    tags = {} if auc is None else {"metric.auc": repr(auc)}
    if benchmark:
        tags[BENCHMARK_TAG] = benchmark
    return str(client.create_model_version(name, source="file:///tmp/nothing", tags=tags).version)


def test_values_of_different_benchmarks_are_not_compared(registry: tuple[MlflowClient, str]) -> None:
    client, m = registry
    v1 = _version(registry, 0.60, benchmark="bench-a")
    assert promote(m, v1, "auc", client=client).promoted
    other = promote(m, _version(registry, 0.90, benchmark="bench-b"), "auc", client=client)
    assert not other.promoted  # a far higher value, but on another benchmark
    assert "scored on benchmark bench-a, the challenger on bench-b" in other.reason
    assert str(client.get_model_version_by_alias(m, CHAMPION).version) == v1
    same = promote(m, _version(registry, 0.65, benchmark="bench-a"), "auc", client=client)
    assert same.promoted
    untagged = promote(m, _version(registry, 0.70), "auc", client=client)  # older versions have no fingerprint
    assert untagged.promoted


def test_promote_records_decisions_and_moves_aliases(registry: tuple[MlflowClient, str], tmp_path: Path) -> None:
    client, m = registry
    v1 = _version(registry, 0.70)
    first = promote(m, v1, "auc", margin=0.01, client=client)
    assert first.promoted
    assert first.champion_version is None
    v2 = _version(registry, 0.705)
    second = promote(m, v2, "auc", margin=0.01, client=client)
    assert not second.promoted
    assert (second.champion_version, second.champion_value, second.challenger_value) == (v1, 0.70, 0.705)
    assert str(client.get_model_version_by_alias(m, CHAMPION).version) == v1
    assert str(client.get_model_version_by_alias(m, CHALLENGER).version) == v2
    tags = client.get_model_version(m, v2).tags
    assert tags["promotion.promoted"] == "false"
    assert tags["promotion.champion_value"] == "0.7"
    assert tags["promotion.margin"] == "0.01"
    assert tags["promotion.reason"] == second.reason
    assert f"champion v{v1}" in second.reason
    v3 = _version(registry, 0.72)
    third = promote(m, v3, "auc", margin=0.01, client=client)
    assert third.promoted
    assert str(client.get_model_version_by_alias(m, CHAMPION).version) == v3
    assert client.get_model_version(m, v1).tags["promotion.superseded_by"] == v3
    path = write_decision(third, tmp_path / "out" / "decision.json")
    assert json.loads(path.read_text()) == third.as_dict()


def test_promote_without_the_metric_is_an_error_and_moves_nothing(registry: tuple[MlflowClient, str]) -> None:
    client, m = registry
    v1 = _version(registry, None)
    with pytest.raises(ValueError, match=r"no tag metric\.auc"):
        promote(m, v1, "auc", client=client)
    assert client.get_registered_model(m).aliases == {}


def test_champion_without_the_metric_is_replaced(registry: tuple[MlflowClient, str]) -> None:
    client, m = registry
    v1 = _version(registry, None)
    client.set_registered_model_alias(m, CHAMPION, v1)
    decision = promote(m, _version(registry, 0.5), "auc", client=client)
    assert decision.promoted
    assert decision.champion_version == v1
    assert decision.champion_value is None
