"""Faults between the watcher and Argo CD, through a fault-injecting proxy in front of the simulator: every
answer that is not the spec's ends in a named error within the deadline, never a hang or a dead thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import wait_for
from tests.fault_proxy import FaultPlan, FaultProxy
from watcher.adapters.argocd import ArgoCDBadResponse, ArgoCDClient, ArgoCDError, ArgoCDUnavailable
from watcher.adapters.gitrepo import GitRepo, GitUnavailable
from watcher.settings import ArgoCDSettings, GitSettings
from watcher.sim.world import SimWorld

TIMEOUT = 1.0


@pytest.fixture
def proxy(world: SimWorld) -> Iterator[FaultProxy]:
    p = FaultProxy(world.argocd_url).start()
    try:
        yield p
    finally:
        p.stop()


def client(proxy: FaultProxy) -> ArgoCDClient:
    return ArgoCDClient(ArgoCDSettings(url=proxy.url, timeout_seconds=TIMEOUT), retry_max_wait=0.05)


@pytest.mark.parametrize(
    ("plan", "error"),
    [
        (FaultPlan(status=503), ArgoCDUnavailable),
        (FaultPlan(status=500), ArgoCDUnavailable),
        (FaultPlan(html=True), ArgoCDBadResponse),
        (FaultPlan(truncated=True), ArgoCDBadResponse),
        (FaultPlan(trickle_seconds=0.05), ArgoCDUnavailable),  # each byte inside the read timeout
        (FaultPlan(hang=True), ArgoCDUnavailable),
    ],
    ids=["503", "500", "html", "truncated-json", "trickle", "hang"],
)
def test_a_bad_answer_is_a_named_error_within_the_deadline(
    proxy: FaultProxy, plan: FaultPlan, error: type[ArgoCDError]
) -> None:
    c = client(proxy)
    assert c.list_apps()  # transparent while no fault is set
    proxy.plan = plan
    started = time.monotonic()
    with pytest.raises(error):
        c.list_apps()
    # Three attempts at most, each bounded by the deadline: never the minutes a trickle or a hang would take.
    assert time.monotonic() - started < 3 * TIMEOUT + 2
    proxy.plan = FaultPlan()
    assert c.list_apps()  # observing again once the fault ends


def test_malformed_stream_frames_reconnect_and_are_counted(world: SimWorld, proxy: FaultProxy) -> None:
    proxy.plan = FaultPlan(malformed_frames=1)
    c = ArgoCDClient(ArgoCDSettings(url=proxy.url, timeout_seconds=2), stream_max_backoff=0.2)
    seen: list[tuple[str, Any]] = []
    lost: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=c.stream, args=(lambda k, a: seen.append((k, a)), stop, lost.append))
    thread.start()
    try:
        wait_for(lambda: lost, what="the bad frame to drop the stream")
        assert "not a JSON object" in lost[0]
        path = "helm/applications/plate-web/values-stg.yaml"  # an event after the reconnect still arrives
        world.work.commit("web: bump", {path: world.work.set_value(path, "image.tag", "1.26.0")}, "Dev One")
        world.work.push()
        wait_for(lambda: seen, what="events on the reconnected stream")
        assert thread.is_alive()
    finally:
        stop.set()
        c.close()
        thread.join(5)


@pytest.fixture
def silent_remote() -> Iterator[str]:
    """A git:// remote that accepts connections and never answers (a stuck load balancer, a dead NFS mount)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"git://127.0.0.1:{server.getsockname()[1]}/gitops.git"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def test_a_git_remote_that_never_answers_is_killed_at_the_deadline(silent_remote: str, tmp_path: Path) -> None:
    repo = GitRepo(GitSettings(url=silent_remote, clone_dir=tmp_path / "clone", timeout_seconds=1.5))
    started = time.monotonic()
    with pytest.raises(GitUnavailable):
        repo.sync()
    assert time.monotonic() - started < 10  # killed at the deadline, not hung until someone notices
    assert not any("git" in p.name() for p in psutil.Process().children(recursive=True))  # nothing left behind
