"""HTTP: /metrics, /healthz, /readyz, /api/apps, /api/incidents, /api/explain, /api/resume (Starlette, uvicorn)."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from watcher.domain import Incident
from watcher.ports import Fleet
from watcher.store import Store
from watcher.views import apps_view, explanation, incident_detail, liveness, readiness

if TYPE_CHECKING:
    from watcher.reverter import Reverter


def build_app(
    store: Store,
    fleet: Fleet,
    registry: CollectorRegistry,
    readiness_limits: Mapping[str, float],
    reverter: Reverter | None = None,
    admin_token: str | None = None,
    stuck_poll_seconds: float = 600.0,
) -> Starlette:
    """The routes over what they read: the store (incidents, audit), the fleet (apps, polls), the metrics."""

    def detail(i: Incident) -> dict[str, Any]:
        return incident_detail(i, store.audit.decisions(incident_id=i.id), store.audit.reverts(incident_id=i.id))

    def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def healthz(_: Request) -> Response:
        state = liveness(fleet.status().in_flight, stuck_poll_seconds)
        if state["alive"]:
            return PlainTextResponse("ok\n")
        return JSONResponse(state, status_code=503)

    def readyz(_: Request) -> Response:
        status = fleet.status()
        state = readiness(status.last_success, readiness_limits, time.time(), status.failing)
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    def apps(_: Request) -> Response:
        return JSONResponse({"apps": apps_view(fleet.status())})

    def incidents(request: Request) -> Response:
        open_only = request.query_params.get("open") in ("1", "true", "yes")
        app = request.query_params.get("app") or None
        rows = store.detection.incidents(open_only=open_only, app=app)
        return JSONResponse({"incidents": [detail(i) for i in rows]})

    def explain(request: Request) -> Response:
        app = request.query_params.get("app", "")
        found = store.audit.decisions(app=app, limit=1) if app else []
        if not found:
            return JSONResponse({"error": f"no decision recorded for app {app!r}"}, status_code=404)
        decision = found[0]
        incident = store.detection.incident(decision.incident_id) if decision.incident_id else None
        suspension = store.audit.suspended().get(app)
        return JSONResponse(explanation(decision, detail(incident) if incident else None, suspension))

    async def resume(request: Request) -> Response:
        if admin_token:
            sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(sent.encode(), admin_token.encode()):
                return JSONResponse({"error": "send Authorization: Bearer <WATCHER_HTTP__ADMIN_TOKEN>"}, 401)
        if reverter is None:
            return JSONResponse({"error": "auto-revert is not running in this process"}, status_code=409)
        body = await request.json() if await request.body() else {}
        app = body.get("app") if isinstance(body, dict) else None
        circuit = bool(body.get("circuit")) if isinstance(body, dict) else False
        if not app and not circuit:
            return JSONResponse({"error": 'send {"app": "<name>"} and/or {"circuit": true}'}, status_code=400)
        return JSONResponse(reverter.resume(app, circuit))

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/api/apps", apps),
            Route("/api/incidents", incidents),
            Route("/api/explain", explain),
            Route("/api/resume", resume, methods=["POST"]),
        ]
    )


class BackgroundServer:
    """uvicorn in a thread, stoppable; `port` is the bound port (useful with port 0)."""

    def __init__(self, app: Any, host: str, port: int):
        config = uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"http-{port}", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if self.server.started:
                return
            deadline.wait(0.01)
        raise RuntimeError("HTTP server did not start")

    @property
    def port(self) -> int:
        sockets = [s for srv in self.server.servers for s in srv.sockets]
        return int(sockets[0].getsockname()[1])

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
