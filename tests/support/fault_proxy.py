"""A fault-injecting HTTP proxy on loopback, in front of the Argo CD simulator: what real networks, ingresses and
a real Argo CD can answer that our simulator never would. Each fault is set on `FaultPlan` while it runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from watcher.run.web import BackgroundServer

LIST_PATH = "/api/v1/applications"
STREAM_PATH = "/api/v1/stream/applications"


APP_PATH = "/api/v1/applications/"
DEEP_LEVELS = 1200  # deeper than Python's recursion limit (1000), well inside what the API server stores
DEEP_MARK = "__deep_item__"


@dataclass
class FaultPlan:
    """What the proxy does to the next answers; all off means a transparent proxy."""

    status: int | None = None  # answer with this status (500, 503) and Argo CD's error body
    html: bool = False  # 200 with an HTML page: an ingress' error page or a login portal
    truncated: bool = False  # the JSON cut in half
    trickle_seconds: float = 0.0  # the body one byte at a time, this long between bytes
    rate: int = 0  # the body at this many bytes per second (a slow link), in tenth-of-a-second chunks
    pad_list: int = 0  # this many bytes of padding in the list's metadata (a very large list)
    # As real Argo CD: a GET of an app that does not exist answers 403 unless it names the app's project
    # (argo-cd server/application/application.go:176-213, getAppEnforceRBAC); the simulator answers 404.
    forbid_missing: bool = False
    hang: bool = False  # accept the request, never answer
    empty_list: bool = False  # the list answers 200 with no items (RBAC or a project filter hiding apps)
    malformed_item: str = ""  # the list item of this app is replaced by a shape the spec does not allow
    deep_item: str = ""  # the list item of this app nests DEEP_LEVELS arrays in its spec (Kubernetes allows it)
    malformed_frames: int = 0  # this many stream frames are sent as garbage before the real ones
    paths: tuple[str, ...] = ("/api/",)  # apply the faults to these path prefixes only

    def applies(self, path: str) -> bool:
        return any(path.startswith(p) for p in self.paths)


class FaultProxy:
    def __init__(self, upstream: str):
        self.plan = FaultPlan()
        self.upstream = upstream.rstrip("/")
        self.seen: list[str] = []
        self.server = BackgroundServer(self._app(), "127.0.0.1", 0)

    def start(self) -> FaultProxy:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(2.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def _app(self) -> Starlette:
        async def proxy(request: Request) -> Response:
            path = request.url.path
            self.seen.append(f"{request.method} {path}")
            plan = self.plan if self.plan.applies(path) else FaultPlan()
            if plan.hang:
                await asyncio.sleep(3600)
            if plan.status is not None:
                body = {"error": "injected", "code": 14, "message": "upstream connect error"}
                return Response(json.dumps(body), plan.status, media_type="application/json")
            if plan.html:
                return HTMLResponse("<html><body><h1>Sign in</h1></body></html>")
            if path == STREAM_PATH:
                return StreamingResponse(self._stream(request, plan), media_type="text/event-stream")
            upstream = await self._forward(request)
            body = upstream.content
            named = "project" in request.query_params
            if plan.forbid_missing and upstream.status_code == 404 and path.startswith(APP_PATH) and not named:
                denied = {"error": "permission denied", "code": 7, "message": "permission denied"}
                return Response(json.dumps(denied), 403, media_type="application/json")
            rewritten = plan.empty_list or plan.malformed_item or plan.deep_item or plan.pad_list
            if path == LIST_PATH and request.method == "GET" and rewritten:
                body = self._rewrite_list(body, plan)
            if plan.truncated:
                body = body[: len(body) // 2]
            headers = {"content-type": upstream.headers.get("content-type", "application/json")}
            if plan.rate:
                return StreamingResponse(_at_rate(body, plan.rate), upstream.status_code, headers)
            if plan.trickle_seconds:
                return StreamingResponse(_trickle(body, plan.trickle_seconds), upstream.status_code, headers)
            return Response(body, upstream.status_code, headers)

        return Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "POST", "DELETE", "PUT", "PATCH"])])

    async def _forward(self, request: Request) -> httpx.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type", "cookie")}
        async with httpx.AsyncClient(base_url=self.upstream, timeout=30) as client:
            return await client.request(
                request.method,
                request.url.path,
                params=request.query_params,
                headers=headers,
                content=await request.body(),
            )

    def _rewrite_list(self, body: bytes, plan: FaultPlan) -> bytes:
        doc: dict[str, Any] = json.loads(body)
        if plan.empty_list:
            doc["items"] = []
        if plan.pad_list:
            doc.setdefault("metadata", {})["padding"] = "x" * plan.pad_list
        for i, item in enumerate(doc.get("items") or []):
            if (item.get("metadata") or {}).get("name") == plan.malformed_item:
                # Wrong types where the spec has objects and strings: what a buggy plugin or a proxy can produce.
                doc["items"][i] = {"metadata": {"name": plan.malformed_item}, "status": {"sync": "Synced", "health": 7}}
            if (item.get("metadata") or {}).get("name") == plan.deep_item:
                item.setdefault("spec", {})["info"] = DEEP_MARK
        # Nesting is written as text: json.dumps itself refuses it past the interpreter's recursion limit.
        return json.dumps(doc).replace(f'"{DEEP_MARK}"', "[" * DEEP_LEVELS + "]" * DEEP_LEVELS).encode()

    async def _stream(self, request: Request, plan: FaultPlan) -> AsyncIterator[bytes]:
        for _ in range(plan.malformed_frames):
            yield b'data: ["a", "list"]\n\n'  # JSON, not an object: the shape a decoder trips over
            yield b"data: {not json\n\n"
        self.plan.malformed_frames = 0  # sent once per fault
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "accept")}
        async with (
            httpx.AsyncClient(base_url=self.upstream, timeout=httpx.Timeout(30, read=None)) as client,
            client.stream("GET", request.url.path, params=request.query_params, headers=headers) as r,
        ):
            async for chunk in r.aiter_raw():
                yield chunk


async def _trickle(body: bytes, seconds: float) -> AsyncIterator[bytes]:
    for i in range(len(body)):
        yield body[i : i + 1]
        await asyncio.sleep(seconds)


async def _at_rate(body: bytes, rate: int) -> AsyncIterator[bytes]:
    step = max(rate // 10, 1)
    for i in range(0, len(body), step):
        yield body[i : i + step]
        await asyncio.sleep(0.1)
