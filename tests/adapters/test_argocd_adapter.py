"""The Argo CD client against the simulator over loopback: trimming, auth, stream, failures."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support.waiting import wait_for
from watcher.adapters.argocd import (
    LIST_FIELDS,
    ArgoCDAuthError,
    ArgoCDBadResponse,
    ArgoCDClient,
    ArgoCDUnavailable,
)
from watcher.settings import ArgoCDSettings
from watcher.sim.world import SimWorld


def client(world: SimWorld, **kw: Any) -> ArgoCDClient:
    return ArgoCDClient(ArgoCDSettings(url=world.argocd_url, timeout_seconds=2, **kw), retry_max_wait=0.05)


def all_synced(c: ArgoCDClient) -> bool:
    apps = c.list_apps()
    return len(apps) == 9 and all(a["status"]["health"]["status"] == "Healthy" for a in apps)


def test_list_is_trimmed_to_selectable_fields(world: SimWorld) -> None:
    c = client(world)
    wait_for(lambda: all_synced(c), what="apps synced")
    apps = c.list_apps()
    assert "fields=" + "%2C".join(f.replace("/", "%2F") for f in LIST_FIELDS[:1]) in world.faults.requests[-1]
    status = apps[0]["status"]
    assert set(status) <= {"sync", "health", "operationState"}
    assert "history" not in status and "conditions" not in status and "message" not in status["operationState"]
    full = c.get_app(apps[0]["metadata"]["name"])
    assert full["status"]["history"] and "message" in full["status"]["operationState"]


def test_filters_are_sent(world: SimWorld) -> None:
    c = client(world, projects=["default"], selector="team=none")
    assert c.list_apps() == []
    assert "projects=default" in world.faults.requests[-1] and "selector=team%3Dnone" in world.faults.requests[-1]


def test_session_login_and_relogin_on_401(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from watcher.sim.server import Auth

    w = SimWorld.start(tmp_path / "w", auth=Auth(accounts={"watcher": "pw-123456"}))
    try:
        c = client(w, username="watcher", password=SecretStr("pw-123456"))
        assert c.list_apps()
        assert w.auth.logins == 1
        w.auth.expire_sessions()
        assert c.list_apps()
        assert w.auth.logins == 2
        bad = client(w, username="watcher", password=SecretStr("wrong"))
        with pytest.raises(ArgoCDAuthError, match="refused"):
            bad.list_apps()
        anonymous = client(w)
        with pytest.raises(ArgoCDAuthError, match="HTTP 401"):
            anonymous.list_apps()
    finally:
        w.stop()


def test_an_expired_session_is_one_login_for_all_the_gets_in_flight(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    from watcher.sim.server import Auth

    w = SimWorld.start(tmp_path / "w", auth=Auth(accounts={"watcher": "pw-123456"}))
    try:
        c = client(w, username="watcher", password=SecretStr("pw-123456"), concurrent_gets=8)
        names = [a["metadata"]["name"] for a in c.list_apps()]
        w.auth.expire_sessions()
        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(lambda name: c.get_app(name), names * 2))
        assert w.auth.logins == 2
    finally:
        w.stop()


def test_5xx_is_retried_with_backoff_then_reported(world: SimWorld) -> None:
    c = client(world)
    world.faults.server_errors = 2
    assert c.list_apps()  # third attempt succeeds
    world.faults.server_errors = 10
    with pytest.raises(ArgoCDUnavailable, match="HTTP 503"):
        c.list_apps()


def test_timeout_is_unavailable_not_a_crash(world: SimWorld) -> None:
    c = ArgoCDClient(ArgoCDSettings(url=world.argocd_url, timeout_seconds=0.2), retry_max_wait=0.01)
    world.faults.delay_seconds = 1.0
    with pytest.raises(ArgoCDUnavailable, match="no whole answer within 0.2s"):
        c.list_apps()


def test_garbage_json_is_a_bad_response(world: SimWorld) -> None:
    c = client(world)
    world.faults.garbage = 1
    with pytest.raises(ArgoCDBadResponse, match="not JSON"):
        c.list_apps()
    assert c.list_apps()  # the next call is fine


def test_stream_reconnects_after_the_server_drops_it(world: SimWorld) -> None:
    c = ArgoCDClient(ArgoCDSettings(url=world.argocd_url), stream_max_backoff=0.2)
    seen: list[tuple[str, str]] = []
    drops: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=c.stream,
        args=(lambda k, a: seen.append((k, a["metadata"]["name"])), stop),
        kwargs={"on_disconnect": drops.append},
        daemon=True,
    )
    thread.start()
    try:
        wait_for(lambda: sum(k == "ADDED" for k, _ in seen) >= 9, what="initial ADDED replay")
        world.drop_streams()
        wait_for(lambda: drops, what="disconnect noticed")
        wait_for(lambda: sum(k == "ADDED" for k, _ in seen) >= 18, what="replay after reconnect")
        # Changes after the reconnect still arrive as MODIFIED events.
        values = "helm/applications/plate-cache/values-prod.yaml"
        world.work.commit("cache: 3 replicas", {values: world.work.set_value(values, "replicaCount", 3)})
        world.work.push()
        wait_for(lambda: ("MODIFIED", "plate-cache-prod") in seen, what="MODIFIED after push")
        assert "stream" in drops[0] or "closed" in drops[0]
    finally:
        stop.set()
        world.drop_streams()
        thread.join(5)
