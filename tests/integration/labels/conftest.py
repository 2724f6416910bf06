"""A real OpenAI-compatible chat server on 127.0.0.1 (keyword logic) for the `llm` backend tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hlip.labels.finding_list import FindingList, load_findings
from hlip.labels.llm import LLMConfig
from testkit.chat_server import RunningServer, keyword_chat_server

KEYWORDS = {"stroke": ["infarct"], "glioma": ["glioma", "glioblastoma"], "meningioma": ["meningioma"]}
API_KEY = "sk-test-DO-NOT-LEAK-4f9a2c"


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def findings() -> FindingList:
    return load_findings("brain_mri").subset(list(KEYWORDS))


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with keyword_chat_server(KEYWORDS) as running:
        yield running


@pytest.fixture
def llm_config(server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LLMConfig:
    monkeypatch.setenv("TEST_LLM_KEY", API_KEY)
    return LLMConfig(
        base_url=server.base_url,
        model="keyword-test",
        api_key_env="TEST_LLM_KEY",
        max_in_flight=3,
        max_retries=3,
        timeout_s=5,
        backoff_s=0.01,
        max_backoff_s=0.05,
        cost_per_1m_input=2.0,
        cost_per_1m_output=10.0,
        cache_dir=str(tmp_path / "cache"),
    )
