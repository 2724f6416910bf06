"""The `llm` backend: any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server, hosted APIs).

One request per report (POST ``{base_url}/chat/completions``), at most `max_in_flight` at a time, each retried
with exponential backoff and jitter on transport errors, HTTP 429/5xx and invalid answers, up to `max_retries`
times; a report that still fails is a row of the failures table (with the reason), never a silent label.
Validated answers are cached on disk (`LabelCache`), so a rerun sends nothing. Token usage and cost are counted.

The API key is read from the environment variable *named* in the config (``api_key_env``); it is sent in the
Authorization header and never logged, stored or returned.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from typing import Any

import httpx
import pandas as pd

from hlip.labels.cache import LabelCache, cache_key
from hlip.labels.finding_list import FindingList
from hlip.labels.prompt import InvalidOutputError, Prompt, load_prompt, parse_labels
from hlip.labels.table import label_rows, make_failure_table, make_label_table
from hlip.progress import ProgressReporter

log = logging.getLogger(__name__)
BACKEND = "llm"
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class LLMConfig:
    """Options of the `llm` backend (``params.yaml:label.llm``).

    Attributes:
        base_url: OpenAI-compatible API root, e.g. ``http://127.0.0.1:8000/v1`` (vLLM) or ``.../v1`` (Ollama).
        model: Model name the endpoint serves.
        api_key_env: Name of the environment variable holding the API key (unset: no Authorization header).
        prompt_version: Packaged prompt version (``v1``) or a prompt file path.
        max_in_flight: Most requests in flight at once.
        max_retries: Retries per report after the first attempt (transport errors, 429/5xx, invalid answers).
        timeout_s: Per-request timeout.
        backoff_s: First retry delay; doubles each retry, with jitter, capped at `max_backoff_s`.
        max_backoff_s: Largest delay between two attempts.
        response_format_json: Send ``response_format: {"type": "json_object"}`` (vLLM, OpenAI, Ollama accept it).
        temperature: Sampling temperature (0: as deterministic as the endpoint allows).
        max_tokens: Completion token limit per answer.
        cost_per_1m_input: Price per million prompt tokens (for the cost estimate).
        cost_per_1m_output: Price per million completion tokens.
        cache_dir: Folder of the answer cache; empty string disables it.
    """

    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "Qwen/Qwen2.5-7B-Instruct"
    api_key_env: str = "HLIP_LLM_API_KEY"
    prompt_version: str = "v1"
    max_in_flight: int = 8
    max_retries: int = 4
    timeout_s: float = 120.0
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    response_format_json: bool = True
    temperature: float = 0.0
    max_tokens: int = 2048
    cost_per_1m_input: float = 0.0
    cost_per_1m_output: float = 0.0
    cache_dir: str = "outputs/labels/llm_cache"

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise ValueError(f"llm.max_in_flight must be >= 1, got {self.max_in_flight}")
        if self.max_retries < 0:
            raise ValueError(f"llm.max_retries must be >= 0, got {self.max_retries}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"llm.base_url must be an http(s) URL, got {self.base_url!r}")


@dataclass
class LLMStats:
    """What a labelling run cost: requests, retries, cache hits, tokens and money."""

    reports: int = 0
    labelled: int = 0
    failed: int = 0
    cache_hits: int = 0
    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: float) -> None:
        """Add counts (thread-safe)."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, float]:
        """Plain counts (for metrics and MLflow)."""
        out: dict[str, float] = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}
        out["cost_usd"] = round(out["cost_usd"], 6)
        out["seconds"] = round(out["seconds"], 3)
        return out


class EndpointUnavailableError(RuntimeError):
    """Every report of a batch failed on transport errors: the endpoint is down (a caller may retry later)."""


@dataclass(frozen=True)
class _Outcome:
    labels: dict[str, tuple[int, str]] | None
    reason: str
    attempts: int
    transport: bool = False


class LLMLabeler:
    """Label reports through an OpenAI-compatible chat endpoint.

    Args:
        findings: The finding list.
        config: Endpoint, concurrency, retry, cost and cache options.
        prompt: The prompt (default: `config.prompt_version`).
    """

    backend = BACKEND

    def __init__(self, findings: FindingList, config: LLMConfig, prompt: Prompt | None = None) -> None:
        self.findings = findings
        self.config = config
        self.prompt = prompt or load_prompt(config.prompt_version)
        self.cache = LabelCache(config.cache_dir) if config.cache_dir else None
        self._fingerprint = self.prompt.fingerprint(findings)
        self._rng = random.Random()

    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.config.api_key_env, "")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def label(self, reports: Mapping[str, str]) -> tuple[pd.DataFrame, pd.DataFrame, LLMStats]:
        """Label reports ``{study_key: text}``.

        Returns:
            The label table (studies that succeeded), the failures table and the run's stats.

        Raises:
            EndpointUnavailableError: When every report needing a request failed on transport errors.
        """
        start = time.perf_counter()
        stats = LLMStats(reports=len(reports))
        if not self._headers():
            log.info("no API key in $%s: requests carry no Authorization header", self.config.api_key_env)
        keys = list(reports)
        limits = httpx.Limits(max_connections=self.config.max_in_flight)
        with (
            httpx.Client(timeout=self.config.timeout_s, limits=limits, headers=self._headers()) as client,
            ThreadPoolExecutor(max_workers=self.config.max_in_flight, thread_name_prefix="llm-label") as pool,
            ProgressReporter("label: reports (llm)", len(keys), unit="reports") as bar,
        ):
            outcomes = list(bar.track(pool.map(lambda k: self._label_one(client, reports[k], stats), keys)))
        rows, failures = [], []
        for key, outcome in zip(keys, outcomes, strict=True):
            if outcome.labels is None:
                failures.append((key, outcome.reason, outcome.attempts, BACKEND))
            else:
                rows += label_rows(key, outcome.labels, self.findings.names, BACKEND)
        stats.labelled, stats.failed = len(keys) - len(failures), len(failures)
        stats.cost_usd = (
            stats.prompt_tokens * self.config.cost_per_1m_input
            + stats.completion_tokens * self.config.cost_per_1m_output
        ) / 1e6
        stats.seconds = time.perf_counter() - start
        sent = [o for o in outcomes if o.attempts]
        if sent and all(o.labels is None and o.transport for o in sent):
            raise EndpointUnavailableError(
                f"all {len(sent)} reports failed on transport errors at {self.config.base_url} ({sent[0].reason})"
            )
        return make_label_table(rows), make_failure_table(failures), stats

    def _label_one(self, client: httpx.Client, report: str, stats: LLMStats) -> _Outcome:
        key = cache_key(self._fingerprint, self.config.model, report)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            stats.add(cache_hits=1)
            return _Outcome({k: (int(v), str(e)) for k, (v, e) in hit["labels"].items()}, "", 0)
        if not report.strip():
            return _Outcome(None, "empty_report", 0)
        body = self._request_body(report)
        reason, transport = "", False
        attempts = self.config.max_retries + 1
        for attempt in range(attempts):
            if attempt:
                stats.add(retries=1)
            retry_after = 0.0
            try:
                stats.add(requests=1)
                response = client.post(f"{self.config.base_url.rstrip('/')}/chat/completions", json=body)
            except httpx.TransportError as exc:
                reason, transport = f"transport: {type(exc).__name__}", True
            else:
                transport = False
                if response.status_code == 200:
                    try:
                        labels, usage = self._parse(response)
                    except InvalidOutputError as exc:
                        reason = f"invalid_output: {exc}"[:300]
                    else:
                        if self.cache is not None:
                            self.cache.put(key, {"labels": labels, "usage": usage, "model": self.config.model})
                        return _Outcome(labels, "", attempt + 1)
                    finally:
                        self._count_usage(response, stats)
                else:
                    reason = f"http_{response.status_code}"
                    if response.status_code not in RETRY_STATUS:
                        return _Outcome(None, reason, attempt + 1)
                    retry_after = _retry_after(response)
            if attempt + 1 < attempts:
                time.sleep(max(self._backoff(attempt), min(retry_after, self.config.max_backoff_s)))
        return _Outcome(None, reason, attempts, transport)

    def _request_body(self, report: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": self.prompt.messages(self.findings, report),
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        if self.config.response_format_json:
            body["response_format"] = {"type": "json_object"}
        return body

    def _parse(self, response: httpx.Response) -> tuple[dict[str, tuple[int, str]], dict[str, int]]:
        try:
            payload = response.json()
            content = payload["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise InvalidOutputError("the response is not an OpenAI chat completion") from None
        if not isinstance(content, str):
            raise InvalidOutputError("the completion has no text content")
        return parse_labels(content, self.findings), _usage(payload)

    def _count_usage(self, response: httpx.Response, stats: LLMStats) -> None:
        try:
            usage = _usage(response.json())
        except ValueError:
            return
        stats.add(prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"])

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half the delay fixed, half random."""
        delay = min(self.config.max_backoff_s, self.config.backoff_s * 2**attempt)
        return delay / 2 + self._rng.uniform(0, delay / 2)


def _usage(payload: Any) -> dict[str, int]:
    usage = payload.get("usage") if isinstance(payload, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    return {k: int(usage.get(k) or 0) for k in ("prompt_tokens", "completion_tokens")}


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("retry-after", 0)))
    except ValueError:
        return 0.0
