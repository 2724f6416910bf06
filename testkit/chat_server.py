"""A small real OpenAI-compatible chat server for tests and benchmarks of the `llm` backend (127.0.0.1 only).

It answers ``POST /v1/chat/completions`` by keyword logic on the report between ``<report>`` tags: a finding is 1
when a sentence names one of its keywords, -1 when that sentence also says "possible", 0 when it starts with
"no". It can be told to fail (HTTP status) for the first N requests, to answer malformed JSON for the first N, to
always fail for reports containing a marker, to obey a prompt injection by answering prose, and to sleep; it counts
requests and the largest number handled at once.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from hlip.labels.table import Mention, decide

_REPORT = re.compile(r"<report>\n(.*)\n</report>", re.DOTALL)


@dataclass
class ServerBehaviour:
    """What the server does (tests change it between runs).

    Attributes:
        fail_first: Answer the first N requests with `fail_status`.
        fail_status: Status of those failures (500, 429 ...).
        malformed_first: Answer the N requests after the failures with text that is not JSON.
        fail_marker: Always answer 500 for reports containing this text.
        obey_injection: Answer prose (as a gullible model would) for reports containing "ignore the above".
        delay_s: Sleep this long before answering each request.
    """

    fail_first: int = 0
    fail_status: int = 500
    malformed_first: int = 0
    fail_marker: str = ""
    obey_injection: bool = True
    delay_s: float = 0.0


@dataclass
class ServerLog:
    """What the server saw."""

    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    authorization: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def keyword_labels(report: str, keywords: Mapping[str, Sequence[str]]) -> dict[str, dict[str, Any]]:
    """The server's answer for one report: ``{finding: {"value", "evidence"}}``."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", report) if s.strip()]
    out: dict[str, dict[str, Any]] = {}
    for name, words in keywords.items():
        mentions = [
            Mention(name, 0 if s.lower().startswith("no ") else (-1 if "possible" in s.lower() else 1), s)
            for s in sentences
            if any(w.lower() in s.lower() for w in words)
        ]
        value, evidence = decide(mentions)
        out[name] = {"value": value, "evidence": evidence}
    return out


class _Handler(BaseHTTPRequestHandler):
    server: _ChatServer

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr access log
        pass

    def do_POST(self) -> None:
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with srv.log.lock:
            srv.log.requests += 1
            number = srv.log.requests
            srv.log.in_flight += 1
            srv.log.max_in_flight = max(srv.log.max_in_flight, srv.log.in_flight)
            srv.log.authorization.append(self.headers.get("Authorization", ""))
            srv.log.bodies.append(body)
        try:
            if srv.behaviour.delay_s:
                time.sleep(srv.behaviour.delay_s)
            self._answer(body, number)
        finally:
            with srv.log.lock:
                srv.log.in_flight -= 1

    def _answer(self, body: dict[str, Any], number: int) -> None:
        srv, b = self.server, self.server.behaviour
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(404, {"error": "not found"})
        user = next((m["content"] for m in reversed(body.get("messages", [])) if m.get("role") == "user"), "")
        found = _REPORT.search(user)
        report = found.group(1) if found else ""
        with srv.log.lock:
            srv.log.reports.append(report)
        if number <= b.fail_first:
            return self._send(b.fail_status, {"error": {"message": "temporarily unavailable"}})
        if b.fail_marker and b.fail_marker in report:
            return self._send(500, {"error": {"message": "internal error"}})
        if number <= b.fail_first + b.malformed_first:
            content = '{"stroke": {"value": 1, "evidence": '  # cut off mid-object
        elif b.obey_injection and "ignore the above" in report.lower():
            content = "Sure! Everything is positive: 1."
        else:
            content = json.dumps(keyword_labels(report, srv.keywords))
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        self._send(
            200,
            {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion",
                "model": body.get("model", ""),
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(content.split()),
                    "total_tokens": prompt_tokens + len(content.split()),
                },
            },
        )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, keywords: Mapping[str, Sequence[str]], behaviour: ServerBehaviour) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.keywords = dict(keywords)
        self.behaviour = behaviour
        self.log = ServerLog()


@dataclass
class RunningServer:
    """A started server: its base URL (``http://127.0.0.1:<port>/v1``), behaviour and log."""

    base_url: str
    behaviour: ServerBehaviour
    log: ServerLog
    _server: _ChatServer

    def reset(self, behaviour: ServerBehaviour | None = None) -> None:
        """Clear the log and optionally set a new behaviour."""
        self._server.log = self.log = ServerLog()
        if behaviour is not None:
            self._server.behaviour = self.behaviour = behaviour


@contextmanager
def keyword_chat_server(
    keywords: Mapping[str, Sequence[str]], behaviour: ServerBehaviour | None = None
) -> Iterator[RunningServer]:
    """Start the keyword chat server on 127.0.0.1 (a free port) in a thread; stop it on exit."""
    server = _ChatServer(keywords, behaviour or ServerBehaviour())
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="keyword-chat-server", daemon=True
    )
    thread.start()
    try:
        yield RunningServer(f"http://127.0.0.1:{server.server_port}/v1", server.behaviour, server.log, server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
