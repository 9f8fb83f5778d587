"""/metrics writes the per-app series itself (lines kept while an app does not change): it must say exactly what
prometheus_client says of the same state, scrape after scrape, as apps change, appear and go."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from watcher.core.ledger import LedgerCounts
from watcher.domain import AppSnapshot, EventKind, Health, Phase, SyncStatus
from watcher.metrics.fleet import StateView
from watcher.metrics.registry import Metrics


def series(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"{key} twice"
            out[key] = s.value
    return out


class Fleet:
    """Plain state the way the watcher hands it to the collectors."""

    def __init__(self) -> None:
        self.apps: dict[str, AppSnapshot] = {}
        self.environments: dict[str, str] = {}
        self.open: dict[tuple[str, str], int] = {}
        self.deploys: dict[str, float] = {}

    def view(self) -> StateView:
        return StateView(
            lambda: list(self.apps.values()),
            lambda: dict(self.open),
            lambda key: self.environments.get(key, ""),
            lambda: list(self.deploys.items()),
        )


def app(name: str, **kw: object) -> AppSnapshot:
    defaults: dict[str, object] = {
        "namespace": "argocd",
        "project": "default",
        "sync_status": SyncStatus.SYNCED,
        "health": Health.HEALTHY,
        "phase": Phase.SUCCEEDED,
    }
    return AppSnapshot(name, **(defaults | kw))  # type: ignore[arg-type]


def assert_same(metrics: Metrics) -> None:
    fast, reference = metrics.exposition(), generate_latest(metrics.registry)
    assert series(fast) == series(reference)
    # line for line too (families may come in another order): HELP, TYPE and every sample as written
    assert sorted(fast.decode().splitlines()) == sorted(reference.decode().splitlines())


def test_the_scrape_says_what_prometheus_client_says_as_the_fleet_changes() -> None:
    fleet = Fleet()
    metrics = Metrics(fleet.view())
    assert_same(metrics)  # no apps yet
    for i in range(50):
        key = f"app-{i:02d}"
        fleet.apps[key] = app(key, health=Health.DEGRADED if i % 7 == 0 else Health.HEALTHY)
        fleet.environments[key] = ("stg", "prod", "")[i % 3]
        fleet.deploys[key] = 1_700_000_000.5 + i
        metrics.count(key, fleet.environments[key], LedgerCounts(deployed=True, lead_seconds=12.5 * i or None))
    # label values that need escaping, an app in another namespace, one that never reported a state
    fleet.apps['team-a/odd"name\\x'] = app('odd"name\\x', namespace="team-a", project="line\nbreak")
    fleet.apps["app-new"] = AppSnapshot("app-new")
    fleet.open = {("app-00", "degraded"): 1, ("app-07", "sync_failed"): 2}
    metrics.count("app-00", "stg", LedgerCounts(failure=EventKind.DEGRADED, change_failure_stage="runtime"))
    metrics.count("app-07", "prod", LedgerCounts(failure=EventKind.SYNC_FAILED, change_failure_stage="sync"))
    assert_same(metrics)
    assert_same(metrics)  # kept lines, nothing changed

    fleet.apps["app-01"] = replace(fleet.apps["app-01"], health=Health.PROGRESSING, phase=Phase.RUNNING)
    fleet.environments["app-02"] = "prod"  # the label moved; the snapshot did not
    fleet.deploys["app-03"] += 60
    del fleet.apps["app-04"], fleet.deploys["app-04"]
    fleet.open = {}
    metrics.count("app-00", "stg", LedgerCounts(restore_seconds=42.0))
    metrics.count("app-05", "prod", LedgerCounts(deployed=True, lead_seconds=3.0))
    metrics.count("app-07", "prod", LedgerCounts(failure=EventKind.SYNC_FAILED))
    assert_same(metrics)
    now = series(metrics.exposition())
    info = {dict(labels)["name"]: dict(labels) for name, labels in now if name == "sync_watcher_app_info"}
    assert info["app-02"]["environment"] == "prod" and info["app-01"]["operation_phase"] == "Running"
    assert "app-04" not in info
    assert now[("sync_watcher_failures_total", frozenset({("name", "app-07"), ("kind", "sync_failed")}))] == 2


def test_a_watcher_without_a_view_scrapes_the_same_too() -> None:
    metrics = Metrics()
    metrics.count("a", "", LedgerCounts(deployed=True))
    assert_same(metrics)
