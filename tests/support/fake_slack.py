"""A Slack stand-in on loopback: incoming webhooks and the Web API's chat.postMessage / chat.update.

It answers with the fields Slack documents (`ok`, `channel`, `ts`, `error`; webhooks answer `ok` or an error
string with a 4xx), rejects what Slack rejects (bad token, unknown channel ID, blocks that break Block Kit's
limits) and can be told to answer 429 with Retry-After or 5xx first.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_sdk.models.blocks import Block

TOKEN = "xoxb-test-token-1234567890"


def block_kit_problems(blocks: list[dict[str, Any]]) -> list[str]:
    """What Slack would refuse in these blocks: limits slack_sdk checks on to_dict(), and the 50-block cap."""
    problems = []
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks (max 50)")
    for b in blocks:
        try:
            parsed = Block.parse(b)
            if parsed is None or parsed.to_dict() != b:
                problems.append(f"block does not round-trip: {b}")
        except Exception as exc:  # noqa: BLE001 - any refusal is a finding
            problems.append(f"{type(exc).__name__}: {exc}")
        if b.get("type") == "header" and len(b["text"]["text"]) > 150:
            problems.append("header over 150 characters")
        if b.get("type") == "section" and len(b["text"]["text"]) > 3000:
            problems.append("section over 3000 characters")
    return problems


@dataclass
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    via: str = "api"
    updates: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def all_text(self) -> str:
        return self.text + "\n" + json.dumps(self.blocks, ensure_ascii=False)


class FakeSlack:
    def __init__(self) -> None:
        self.messages: list[Posted] = []
        self.requests: list[tuple[str, float]] = []  # (path, monotonic time)
        self.script: list[tuple[int, dict[str, str], str]] = []  # answers to give before the normal ones
        self.channels = {"#deploys": "C0DEPLOYS", "#deploys-prod": "C0PROD", "#deploys-stg": "C0STG"}
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._ts = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, headers, answer = fake.answer(self.path, dict(self.headers), body)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(answer.encode())))
                self.end_headers()
                self.wfile.write(answer.encode())

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def webhook(self, name: str = "default") -> str:
        return f"{self.url}/services/T000/B000/{name}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], str]:
        with self.changed:
            self.requests.append((path, time.monotonic()))
            if self.script:
                return self.script.pop(0)
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                return 400, {}, "invalid_payload"
            if path.startswith("/services/"):
                result = self._webhook(path, payload)
            elif path == "/api/chat.postMessage":
                result = self._api(headers, payload, self._post)
            elif path == "/api/chat.update":
                result = self._api(headers, payload, self._update)
            else:
                result = (404, {}, "not_found")
            self.changed.notify_all()
            return result

    def _webhook(self, path: str, p: dict[str, Any]) -> tuple[int, dict[str, str], str]:
        if not p.get("text") and not p.get("blocks"):
            return 400, {}, "no_text"
        if block_kit_problems(p.get("blocks") or []):
            return 400, {}, "invalid_blocks"
        self.messages.append(
            Posted(path.rsplit("/", 1)[-1], self._next_ts(), p.get("text", ""), p.get("blocks") or [], via="webhook")
        )
        return 200, {"Content-Type": "text/html"}, "ok"

    def _api(self, headers: dict[str, str], p: dict[str, Any], op: Any) -> tuple[int, dict[str, str], str]:
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 200, {"Content-Type": "application/json"}, json.dumps({"ok": False, "error": "invalid_auth"})
        return 200, {"Content-Type": "application/json"}, json.dumps(op(p))

    def _post(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels.get(p.get("channel", ""), p.get("channel", ""))
        if channel not in self.channels.values():
            return {"ok": False, "error": "channel_not_found"}
        if block_kit_problems(p.get("blocks") or []):
            return {"ok": False, "error": "invalid_blocks"}
        thread = p.get("thread_ts")
        if thread and not any(m.ts == thread and m.channel == channel for m in self.messages):
            return {"ok": False, "error": "thread_not_found"}
        posted = Posted(channel, self._next_ts(), p.get("text", ""), p.get("blocks") or [], thread)
        self.messages.append(posted)
        return {"ok": True, "channel": channel, "ts": posted.ts, "message": {"text": posted.text}}

    def _update(self, p: dict[str, Any]) -> dict[str, Any]:
        # chat.update takes the channel ID, not a name: the ID chat.postMessage returned
        found = [m for m in self.messages if m.channel == p.get("channel") and m.ts == p.get("ts")]
        if not found:
            return {"ok": False, "error": "message_not_found"}
        if block_kit_problems(p.get("blocks") or []):
            return {"ok": False, "error": "invalid_blocks"}
        found[0].updates.append(p.get("blocks") or [])
        return {"ok": True, "channel": found[0].channel, "ts": found[0].ts, "text": p.get("text", "")}

    def _next_ts(self) -> str:
        self._ts += 1
        return f"1700000000.{self._ts:06d}"

    def wait(self, count: int, timeout: float = 60.0) -> list[Posted]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fake Slack got {len(self.messages)} messages, expected {count}")
                self.changed.wait(left)
            return list(self.messages)


@contextmanager
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
