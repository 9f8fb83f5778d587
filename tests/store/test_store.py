"""The store on SQLite and on a real PostgreSQL server: migrations, dedup, incidents across restarts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.core.detect import AppTracker
from watcher.domain import Action, AppSnapshot, Event, EventKind, Health, RevertMode, RevertState, SyncStatus
from watcher.store import MIGRATIONS, Store

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    url: str = request.getfixturevalue("postgres_url")
    with Store(url).engine.begin() as conn:  # a clean schema for every test
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    return url


def failed(at: datetime, revision: str = "b" * 40) -> Event:
    return Event("plate-api-stg", EventKind.SYNC_FAILED, revision, at, "sync failed", {"onset": at.isoformat()})


def test_recording_returns_each_event_with_the_incident_the_store_minted(store_url: str) -> None:
    """The reverter and Slack read the incident id off the recorded event: it is the row the store inserted."""
    store = Store(store_url)
    deployed = Event("plate-api-stg", EventKind.DEPLOYED, "a" * 40, T0, "synced")
    [first] = store.detection.record("plate-api-stg", AppTracker(), [failed(T0)], False, T0)
    [second] = store.detection.record("plate-web-stg", AppTracker(), [failed(T0, "c" * 40)], False, T0)
    [deploy] = store.detection.record("plate-llm-stg", AppTracker(), [deployed], False, T0)
    found = store.detection.find_incident("plate-api-stg", EventKind.SYNC_FAILED, "b" * 40)
    assert found is not None and first.incident_id == found.id
    assert second.incident_id == found.id + 1 and deploy.incident_id is None  # a deploy opens no incident
    store.close()


def test_incident_survives_a_reopen_and_events_are_recorded_once(store_url: str) -> None:
    tracker = AppTracker(last=AppSnapshot("plate-api-stg", sync_status=SyncStatus.SYNCED, health=Health.HEALTHY))
    store = Store(store_url)
    assert store.detection.record("plate-api-stg", tracker, [failed(T0)], True, T0) == [failed(T0)]
    store.close()
    reopened = Store(store_url)
    assert reopened.migrate() == len(MIGRATIONS)
    assert reopened.detection.record("plate-api-stg", tracker, [failed(T0 + timedelta(seconds=5))], False, T0) == []
    open_incidents = reopened.detection.incidents(open_only=True)
    assert [(i.app, i.kind, i.revision) for i in open_incidents] == [("plate-api-stg", EventKind.SYNC_FAILED, "b" * 40)]
    assert open_incidents[0].detected_at == T0
    assert reopened.detection.load_trackers() == {"plate-api-stg": tracker}
    recovered = Event("plate-api-stg", EventKind.RECOVERED, "c" * 40, T0 + timedelta(minutes=3), "ok")
    assert reopened.detection.record("plate-api-stg", tracker, [recovered], True, T0) == [recovered]
    assert reopened.detection.incidents(open_only=True) == []
    resolved = reopened.detection.incidents()[0]
    assert resolved.resolved_at == T0 + timedelta(minutes=3) and resolved.resolution == "recovered at cccccccccccc"
    assert len(reopened.detection.timeline("plate-api-stg")) == 2
    reopened.close()


def test_deployments_follow_the_operation(store_url: str) -> None:
    store = Store(store_url)
    rev = "d" * 40
    started = Event("a", EventKind.DEPLOY_STARTED, rev, T0, "running", {"started_at": T0.isoformat()})
    done = Event(
        "a",
        EventKind.DEPLOYED,
        rev,
        T0 + timedelta(seconds=9),
        "ok",
        {"finished_at": (T0 + timedelta(seconds=8)).isoformat()},
    )
    store.detection.record("a", AppTracker(), [started], False, T0)
    store.detection.record("a", AppTracker(), [done], False, T0)
    [row] = store.detection.deployments("a")
    assert (row["revision"], row["result"]) == (rev, "Succeeded")
    assert row["finished_at"].replace(tzinfo=UTC) == T0 + timedelta(seconds=8)
    store.close()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/state.db")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def test_open_incidents_without_a_final_decision_are_the_ones_a_restart_decides_again(store_url: str) -> None:
    store = Store(store_url)
    for app in ("waited", "decided", "undecided", "resolved", "postponed", "postponed_then_pushed"):
        store.detection.record(
            app, AppTracker(), [Event(app, EventKind.SYNC_FAILED, "b" * 40, T0, "sync failed")], False, T0
        )
    ids = {i.app: i.id for i in store.detection.incidents()}
    store.audit.record_decision(
        ids["waited"], "waited", T0, Action.WAIT, "argocd_unknown", "Argo CD unreachable", RevertMode.PUSH, {}
    )
    store.audit.record_decision(ids["decided"], "decided", T0, Action.ALERT, "mode_off", "off", RevertMode.OFF, {})
    store.audit.record_decision(None, "decided", T0, Action.ALERT, "mode_off", "no incident", RevertMode.OFF, {})
    store.detection.resolve_incident(ids["resolved"], T0, "recovered")
    for app, states in (
        ("postponed", [RevertState.NOT_PUSHED]),
        ("postponed_then_pushed", [RevertState.NOT_PUSHED, RevertState.PUSHED]),
    ):
        store.audit.record_decision(ids[app], app, T0, Action.REVERT, "culprit_found", "", RevertMode.PUSH, {})
        for state in states:  # git was away, then (for one of them) the next attempt pushed
            store.audit.finish_revert(
                store.audit.start_revert(ids[app], app, RevertMode.PUSH, ["b" * 40], T0), state, T0
            )
    assert store.audit.open_incidents_undecided() == sorted([ids["waited"], ids["undecided"], ids["postponed"]])
    store.close()


def test_replicas_starting_at_once_on_an_empty_postgresql_migrate_one_after_the_other(postgres_url: str) -> None:
    with Store(postgres_url).engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    errors: list[Exception] = []

    def start() -> None:
        try:
            Store(postgres_url).close()
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    store = Store(postgres_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM schema_version").scalar() == len(MIGRATIONS)
    store.close()
