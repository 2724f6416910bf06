"""A tiny demo corpus, generated once per test session and shared read-only by the tests of this package."""

from __future__ import annotations

from pathlib import Path

import pytest

from demo_corpus import CorpusSummary, DemoCorpusConfig, generate_corpus
from demo_corpus.plan import CorpusPlan, plan_corpus


@pytest.fixture(scope="session")
def tiny_config() -> DemoCorpusConfig:
    """Small enough to write in seconds; a seed whose studies hold every series kind and a stroke with DWI+ADC."""
    return DemoCorpusConfig.tiny(seed=11, n_train_studies=14, n_benchmark_studies=6)


@pytest.fixture(scope="session")
def tiny_plan(tiny_config: DemoCorpusConfig) -> CorpusPlan:
    return plan_corpus(tiny_config)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory, tiny_config: DemoCorpusConfig) -> tuple[Path, CorpusSummary]:
    out = tmp_path_factory.mktemp("demo") / "corpus"
    return out, generate_corpus(out, tiny_config, workers=1)
