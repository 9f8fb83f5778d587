"""HTTP: /metrics, /healthz, /readyz, /api/apps, /api/incidents (Starlette, served by uvicorn)."""

from __future__ import annotations

import threading
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from watcher.domain import Incident
from watcher.service import Watcher


def incident_json(i: Incident) -> dict[str, Any]:
    return {
        "id": i.id,
        "app": i.app,
        "kind": i.kind.value,
        "revision": i.revision,
        "detected_at": i.detected_at.isoformat(),
        "resolved_at": i.resolved_at.isoformat() if i.resolved_at else None,
        "reason": i.reason,
        "resolution": i.resolution,
        "evidence": i.evidence,
    }


def build_app(watcher: Watcher) -> Starlette:
    def metrics(_: Request) -> Response:
        return Response(generate_latest(watcher.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    def readyz(_: Request) -> Response:
        state = watcher.readiness()
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    def apps(_: Request) -> Response:
        return JSONResponse({"apps": watcher.apps_view()})

    def incidents(request: Request) -> Response:
        open_only = request.query_params.get("open") in ("1", "true", "yes")
        app = request.query_params.get("app") or None
        rows = watcher.store.incidents(open_only=open_only, app=app)
        return JSONResponse({"incidents": [incident_json(i) for i in rows]})

    return Starlette(
        routes=[
            Route("/metrics", metrics),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/api/apps", apps),
            Route("/api/incidents", incidents),
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
