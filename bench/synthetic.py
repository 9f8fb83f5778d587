"""The benchmarks' fleet: synthetic Applications served by the simulator in a child process (so its CPU is not
the watcher's), an AppSource that replays a recorded list, and timing helpers."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from watcher.adapters.argocd import ArgoCDClient, _apps_in
from watcher.sim.history import app_dir

REPO = "https://git.example.com/platform/gitops"
SHA = "a" * 40


def synthetic_app(i: int, repo: str, failing_every: int = 100) -> dict[str, Any]:
    broken = i % failing_every == 0  # these look wrong in the list and get a full GET
    return {
        "metadata": {"name": f"app-{i:05d}", "namespace": "argocd", "labels": {"team": f"t{i % 20}"}},
        "spec": {
            "project": "default",
            "source": {
                "repoURL": repo,
                "path": app_dir(i),
                "targetRevision": "main",
                "helm": {"valueFiles": ["values-stg.yaml"]},
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": f"ns-{i % 50}"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
        "status": {
            "sync": {"status": "OutOfSync" if broken else "Synced", "revision": SHA},
            "health": {
                "status": "Degraded" if broken else "Healthy",
                "message": 'Back-off pulling image "harbor.plate.local/plate/x:9.9.9"' if broken else "",
            },
            "operationState": {
                "phase": "Succeeded",
                "startedAt": "2026-11-22T10:00:00Z",
                "finishedAt": "2026-11-22T10:00:05Z",
                "message": "successfully synced",
                "operation": {"sync": {"revision": SHA}},
                "syncResult": {"revision": SHA},
            },
            "history": [{"id": n, "revision": SHA, "deployedAt": "2026-11-22T10:00:05Z"} for n in range(5)],
            "resources": [{"kind": "Deployment", "name": f"app-{i}", "status": "Synced"}],
        },
    }


def serve_apps(n: int, port: int, repo: str, ready: Any, failing_every: int = 100) -> None:
    from watcher.run.web import BackgroundServer
    from watcher.sim.controller import Controller
    from watcher.sim.server import build_sim_app

    controller = Controller(repo, Path(tempfile.mkdtemp()))
    controller.add_static_apps([synthetic_app(i, repo, failing_every) for i in range(n)])
    server = BackgroundServer(build_sim_app(controller), "127.0.0.1", port)
    server.start()
    ready.set()
    while True:
        time.sleep(3600)


@contextmanager
def served(apps: int, failing_every: int = 100) -> Iterator[str]:
    """The URL of a simulator serving `apps` synthetic apps, in a child process for the block's duration."""
    from watcher.sim.gitserver import free_port

    port, ready = free_port(), multiprocessing.Event()
    child = multiprocessing.Process(target=serve_apps, args=(apps, port, REPO, ready, failing_every), daemon=True)
    child.start()
    ready.wait(180)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.join(10)


class Answers(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, answering each GET with a body prepared beforehand after `latency` seconds (what
    Argo CD's own work and the network take), at a few microseconds of CPU: the stand-in for a server that is not
    the side being measured (the simulator's Starlette costs ~1 ms of CPU per GET, sharing the machine's cores)."""

    def __init__(self, bodies: dict[str, bytes], latency: float):
        self.bodies, self.latency, self.buffer = bodies, latency, b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            path = head.split(b" ", 2)[1].decode().split("?", 1)[0]
            body = self.bodies.get(path)
            status = b"200 OK" if body is not None else b"404 Not Found"
            body = body if body is not None else b'{"error":"not found","code":5,"message":"not found"}'
            answer = b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
                status,
                len(body),
                body,
            )
            asyncio.get_running_loop().call_later(self.latency, self.transport.write, answer)


def answer_apps(n: int, port: int, ready: Any, failing_every: int, latency: float) -> None:
    apps = [synthetic_app(i, REPO, failing_every) for i in range(n)]
    bodies = {f"/api/v1/applications/{a['metadata']['name']}": json.dumps(a).encode() for a in apps}

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(lambda: Answers(bodies, latency), "127.0.0.1", port)
        ready.set()
        await server.serve_forever()

    asyncio.run(serve())


@contextmanager
def answered(apps: int, failing_every: int, latency: float) -> Iterator[str]:
    """The URL of an Answers server for the GETs of `apps` synthetic apps, in a child process."""
    from watcher.sim.gitserver import free_port

    port, ready = free_port(), multiprocessing.Event()
    child = multiprocessing.Process(target=answer_apps, args=(apps, port, ready, failing_every, latency), daemon=True)
    child.start()
    ready.wait(180)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.join(10)


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def ms(values: list[float]) -> str:
    return f"{median(values) * 1000:.1f} ms"


def ratio(values: list[float], baseline: list[float]) -> str:
    return f"{median(values) / median(baseline):.2f}x"


def line(label: str, figure: str, rest: str = "") -> None:
    print(f"{label:<64} {figure:>10}{'  ' + rest if rest else ''}")


class Replay:
    """An AppSource that parses a recorded list with the client's own parser: the watcher's work without the
    server's. GETs are replayed from their first answer (`record`), or asked of the server every time."""

    def __init__(self, body: bytes, client: ArgoCDClient, record: bool = True):
        self.body, self.client, self.record = body, client, record
        self.gets: dict[str, bytes] = {}

    def iter_apps(self) -> Iterator[dict[str, Any]]:
        return _apps_in(self.body.decode())

    def get_app(self, name: str, namespace: str = "", refresh: str | None = None) -> dict[str, Any]:
        if not self.record:
            return self.client.get_app(name, namespace, refresh)
        if name not in self.gets:
            self.gets[name] = json.dumps(self.client.get_app(name, namespace, refresh)).encode()
        return dict(json.loads(self.gets[name]))


class NoRepo:
    def sync(self) -> str:
        return SHA

    def commit(self, sha: str) -> None:
        return None

    def yaml_files(self, rev: str, directories: Any) -> dict[str, str]:
        return {}

    def files_named(self, rev: str, directories: Any, names: Any) -> dict[str, str]:
        return {}
