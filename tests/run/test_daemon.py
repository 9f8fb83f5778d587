"""The whole daemon against the simulator and a real git daemon: detection, restart, HTTP, metrics."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.listening import OnEvent
from tests.support.tools import prometheus_tool
from tests.support.waiting import wait_for
from watcher.domain import Event, EventKind
from watcher.run.daemon import Daemon
from watcher.settings import Settings
from watcher.sim.world import SimWorld
from watcher.store import Store


def settings_for(world: SimWorld, root: Path) -> Settings:
    return world.watcher_settings(root, poll_seconds=0.5, grace_seconds=0.5)


class Running:
    def __init__(self, settings: Settings):
        self.events: list[Event] = []
        self.daemon = Daemon(settings, argocd_retry_max_wait=0.05, listeners=[OnEvent(self.events.append)])
        self.daemon.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.http.port}"

    def saw(self, kind: EventKind, app: str | None = None, revision: str | None = None) -> Event | None:
        for e in list(self.events):
            if e.kind is kind and (app is None or e.app.endswith(app)) and (revision is None or e.revision == revision):
                return e
        return None

    def sample(self, name: str, **labels: str) -> float:
        return self.daemon.watcher.metrics.registry.get_sample_value(name, labels) or 0.0

    def stop(self) -> None:
        self.daemon.stop()


@pytest.fixture
def running(world: SimWorld, tmp_path: Path) -> Iterator[Running]:
    r = Running(settings_for(world, tmp_path))
    wait_for(lambda: len([e for e in r.events if e.kind is EventKind.DEPLOYED]) >= 9, what="initial deploys")
    yield r
    r.stop()


def push(world: SimWorld, app: str, key: str, value: object, subject: str) -> str:
    values = f"helm/applications/{app.rsplit('-', 1)[0]}/values-{app.rsplit('-', 1)[1]}.yaml"
    sha = world.work.commit(subject, {values: world.work.set_value(values, key, value)}, "Dev Two")
    world.work.push()
    return sha


@pytest.mark.parametrize(
    "app, key, value, kind",
    [
        ("plate-api-stg", "replicaCount", -1, EventKind.SYNC_FAILED),
        ("plate-web-prod", "image.tag", "9.9.9-typo", EventKind.DEGRADED),
        ("plate-llm-stg", "resources.limits.memory", "256Mi", EventKind.DEGRADED),
        ("plate-cache-stg", "replicaCount", 400, EventKind.STUCK_PROGRESSING),
    ],
)
def test_bad_content_is_detected_and_blamed_on_its_commit(
    world: SimWorld, running: Running, app: str, key: str, value: object, kind: EventKind
) -> None:
    bad = push(world, app, key, value, f"{app}: change {key}")
    event = wait_for(lambda: running.saw(kind, app, bad), what=f"{kind.value} on {app}")
    assert event.evidence["commit"]["subject"] == f"{app}: change {key}"  # type: ignore[index]
    assert f"helm/applications/{app.rsplit('-', 1)[0]}" in event.evidence["paths"]  # type: ignore[operator]
    others = [e for e in running.events if e.kind is kind and not e.app.endswith(app)]
    assert others == [], "a failure was blamed on an app the commit did not break"
    incidents = httpx.get(f"{running.url}/api/incidents?open=1").json()["incidents"]
    assert [(i["app"], i["kind"], i["revision"]) for i in incidents] == [(app, kind.value, bad)]


def test_invalid_yaml_is_a_manifest_error_and_recovery_closes_it(world: SimWorld, running: Running) -> None:
    values = "helm/applications/plate-web/values-stg.yaml"
    world.work.commit("web: oops", {values: "replicaCount: 1\nimage:\n  tag: [unclosed\n"}, "Dev Two")
    world.work.push()
    # Argo CD 3.2+ leaves sync.revision at the unresolved targetRevision when manifests do not render.
    event = wait_for(lambda: running.saw(EventKind.MANIFEST_ERROR, "plate-web-stg", "main"), what="manifest error")
    assert "ComparisonError" in event.reason and event.evidence["unresolved_revision"] is True
    fixed = world.work.commit("web: fix values", {values: "replicaCount: 1\nimage:\n  tag: 1.26.0\n"}, "Dev One")
    world.work.push()
    wait_for(lambda: running.saw(EventKind.RECOVERED, "plate-web-stg", fixed), what="recovery")
    assert httpx.get(f"{running.url}/api/incidents?open=1").json()["incidents"] == []
    resolved = httpx.get(f"{running.url}/api/incidents").json()["incidents"][0]
    assert resolved["resolved_at"] and resolved["resolution"].startswith("recovered at")


def test_restart_does_not_repeat_events_or_forget_incidents(world: SimWorld, tmp_path: Path) -> None:
    first = Running(settings_for(world, tmp_path))
    try:
        wait_for(lambda: len([e for e in first.events if e.kind is EventKind.DEPLOYED]) >= 9)
        bad = push(world, "plate-api-stg", "replicaCount", -1, "api: bad")
        wait_for(lambda: first.saw(EventKind.SYNC_FAILED, "plate-api-stg", bad), what="failure before restart")
    finally:
        first.stop()
    store = Store(f"sqlite:///{tmp_path}/state.db")
    before = len(store.detection.events())
    second = Running(settings_for(world, tmp_path))
    try:
        # The stream replays every app as ADDED on connect; three full list polls on top of that.
        wait_for(lambda: second.sample("sync_watcher_poll_duration_seconds_count", source="argocd") >= 3, what="polls")
        wait_for(lambda: second.sample("sync_watcher_stream_events_total", type="ADDED") >= 9, what="stream replay")
        assert second.events == [], f"re-emitted after restart: {second.events}"
        assert len(store.detection.events()) == before
        open_incidents = httpx.get(f"{second.url}/api/incidents?open=1").json()["incidents"]
        assert [(i["app"], i["kind"]) for i in open_incidents] == [("plate-api-stg", "sync_failed")]
        apps = {a["name"]: a for a in httpx.get(f"{second.url}/api/apps").json()["apps"]}
        assert apps["plate-api-stg"]["open_incidents"] == ["sync_failed"]
    finally:
        second.stop()
        store.close()


def test_argocd_unreachable_decides_nothing(world: SimWorld, running: Running) -> None:
    before = len(running.events)
    world.faults.server_errors = 10_000
    wait_for(
        lambda: (
            (
                running.daemon.watcher.metrics.registry.get_sample_value(
                    "sync_watcher_poll_errors_total", {"source": "argocd", "error": "ArgoCDUnavailable"}
                )
                or 0
            )
            >= 2
        )
    )
    assert running.daemon.watcher.metrics.registry.get_sample_value("sync_watcher_argocd_up") == 0
    assert [e for e in running.events[before:] if e.kind is EventKind.APP_REMOVED] == []
    world.faults.server_errors = 0
    wait_for(lambda: running.daemon.watcher.metrics.registry.get_sample_value("sync_watcher_argocd_up") == 1)


def test_http_endpoints(running: Running) -> None:
    assert httpx.get(f"{running.url}/healthz").text == "ok\n"
    ready = wait_for(
        lambda: httpx.get(f"{running.url}/readyz").status_code == 200 and httpx.get(f"{running.url}/readyz").json(),
        what="ready",
    )
    assert ready["checks"]["argocd"]["ok"] and ready["checks"]["git"]["ok"]
    apps = httpx.get(f"{running.url}/api/apps").json()["apps"]
    assert {a["name"] for a in apps} >= {"plate-web-stg", "plate-llm-prod", "app-of-apps"}
    web = next(a for a in apps if a["name"] == "plate-web-stg")
    assert web["paths"] == [
        "environments/argocd/apps/plate-web-stg.yaml",
        "helm/applications/plate-web",
        "helm/applications/plate-web/values-stg.yaml",
        "helm/library/common",  # the chart's file:// dependency, outside its directory
    ]


def test_metrics_scrape_passes_promtool(world: SimWorld, running: Running) -> None:
    promtool = prometheus_tool("promtool")
    bad = push(world, "plate-api-stg", "replicaCount", -1, "api: bad")
    wait_for(lambda: running.saw(EventKind.SYNC_FAILED, "plate-api-stg", bad))
    scrape = httpx.get(f"{running.url}/metrics").text
    check = subprocess.run([promtool, "check", "metrics"], input=scrape, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr + check.stdout
    info = [line for line in scrape.splitlines() if line.startswith("sync_watcher_app_info{")]
    assert len(info) == 9
    assert any('name="plate-api-stg"' in line and 'operation_phase="Failed"' in line for line in info)
    assert 'sync_watcher_failures_total{kind="sync_failed",name="plate-api-stg"} 1.0' in scrape
    assert 'sync_watcher_open_incidents{kind="sync_failed",name="plate-api-stg"} 1.0' in scrape
    assert bad not in scrape  # no sha labels


def cli_env(world: SimWorld, tmp_path: Path) -> dict[str, str]:
    """The environment of a `sync-watcher` process watching `world`, without the caller's WATCHER_* settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")} | {
        "WATCHER_ARGOCD__URL": world.argocd_url,
        "WATCHER_GIT__URL": world.repo_url,
        "WATCHER_GIT__CLONE_DIR": str(tmp_path / "clone"),
        "WATCHER_STORE__URL": f"sqlite:///{tmp_path}/s.db",
        "WATCHER_HTTP__HOST": "127.0.0.1",
        "WATCHER_HTTP__PORT": "0",
        "WATCHER_LOG__FORMAT": "json",
    }


def run_once(world: SimWorld, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    import sys

    return subprocess.run(
        [sys.executable, "-m", "watcher", "run", "--once"],
        env=cli_env(world, tmp_path) | env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def settled(world: SimWorld) -> bool:
    apps = world.controller.snapshot()
    return len(apps) == 9 and all(
        a["status"]["sync"]["status"] == "Synced"
        and a["status"]["health"]["status"] == "Healthy"
        and (a["status"].get("operationState") or {}).get("phase") == "Succeeded"
        for a in apps
    )


def test_run_once_polls_git_and_argocd_and_passes_the_reverter_once(world: SimWorld, tmp_path: Path) -> None:
    head = world.work.git("rev-parse", "HEAD")
    wait_for(lambda: settled(world), what="the simulator's apps deployed")  # so a second look sees no change
    first = run_once(world, tmp_path)
    assert first.returncode == 0, first.stderr
    git, apps, reverter = first.stdout.splitlines()
    assert git == f"git poll: head {head[:12]} (first look)"
    assert apps.startswith("apps poll: 9 apps listed, 0 gone, ") and apps.endswith(" events recorded")
    assert int(apps.split(", ")[-1].split()[0]) > 0  # the first look records what it found
    assert reverter == "reverter pass: 0 incidents handled (mode dry-run)"
    # A second look resumes from the store: nothing new is recorded twice.
    second = run_once(world, tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[1] == "apps poll: 9 apps listed, 0 gone, 0 events recorded"


def test_run_once_hands_a_new_failure_to_the_reverter_and_says_what_it_decided(world: SimWorld, tmp_path: Path) -> None:
    wait_for(lambda: settled(world), what="the simulator's apps deployed")
    assert run_once(world, tmp_path).returncode == 0  # what was good before the bad commit
    bad = push(world, "plate-api-stg", "replicaCount", -1, "api: bad")

    def failed_on_bad() -> bool:
        op = (world.controller.get("plate-api-stg") or {})["status"].get("operationState") or {}
        return op.get("phase") == "Failed" and op["operation"]["sync"]["revision"] == bad

    wait_for(failed_on_bad, 120, what="the simulator to give up on the bad revision")
    done = run_once(world, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1:] == [
        "apps poll: 9 apps listed, 0 gone, 1 event recorded",
        "reverter pass: 1 incident handled (mode dry-run)",
        f"  incident 1 (plate-api-stg): revert by culprit_found [{bad[:12]}], revert dry_run",
    ]


def test_run_once_says_when_argocd_is_unreachable_and_exits_non_zero(world: SimWorld, tmp_path: Path) -> None:
    world.faults.server_errors = 10_000
    done = run_once(world, tmp_path)
    assert done.returncode == 1
    git, apps, reverter = done.stdout.splitlines()
    assert git.startswith("git poll: head ")
    assert apps.startswith("apps poll: FAILED, Argo CD unreachable (ArgoCDUnavailable: ")
    assert reverter.startswith("reverter pass: 0 incidents handled")


def test_sigterm_stops_the_process_within_ten_seconds(world: SimWorld, tmp_path: Path) -> None:
    import signal
    import sys
    import threading
    import time

    env = cli_env(world, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run"], env=env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    stderr = proc.stderr
    assert stderr is not None

    def read() -> None:  # all along, so the pipe never fills while the process logs its stop
        for line in stderr:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # Start-up on a loaded machine is not what is measured: only the stop, from SIGTERM on, has 10 s.
        wait_for(lambda: any("deploy_finished" in line for line in list(lines)), 120, what="the first deploy seen")
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        assert time.monotonic() - started < 10
        assert proc.returncode == 0
        reader.join(10)
        assert "watcher_stopped" in "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
