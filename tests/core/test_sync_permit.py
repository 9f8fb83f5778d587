"""Pure: what Argo CD may do for an app (sync windows evaluated as Argo CD does, the ApplicationSet controller's
progressive sync, manual-sync apps) and what the reverter does about a revert it may not deploy.

Shapes: GET /api/v1/applications/{name}/syncwindows answers swagger's applicationApplicationSyncWindowsResponse,
whose windows keep only kind/schedule/duration/manualSync (server/application/application.go:2935-2952); the
project's GET /api/v1/projects/{name}/syncwindows answers v1alpha1SyncWindow with timeZone
(pkg/apis/application/v1alpha1/types.go:2930-2955). Activity: types.go:2985-2990 and :3041-3049; CanSync:
types.go:3186-3244. RollingSync's initiatedBy: applicationset/progressivesync/progressive_sync.go:864-884.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watcher.core.cron import Cron, CronError, active_until, next_start
from watcher.core.hold_policy import held_decision
from watcher.core.sync_permit import (
    Held,
    Hold,
    Window,
    go_duration,
    hold_of,
    synced_by_appset,
    window_hold,
    windows_of,
)
from watcher.domain import Action, Decision

T = datetime(2026, 8, 20, 16, 20, tzinfo=UTC)  # a Thursday, CEST (UTC+2) in Berlin


@pytest.mark.parametrize(
    "schedule, moment, expected",
    [
        ("0 18 * * *", datetime(2026, 8, 20, 18, 0, tzinfo=UTC), True),
        ("0 18 * * *", datetime(2026, 8, 20, 18, 1, tzinfo=UTC), False),
        ("*/15 9-17 * * 1-5", datetime(2026, 8, 20, 9, 45, tzinfo=UTC), True),  # Thursday
        ("*/15 9-17 * * 1-5", datetime(2026, 8, 22, 9, 45, tzinfo=UTC), False),  # Saturday
        ("0 0 * * sun", datetime(2026, 8, 23, 0, 0, tzinfo=UTC), True),
        ("0 0 * * 7", datetime(2026, 8, 23, 0, 0, tzinfo=UTC), True),  # 7 is Sunday too
        ("@daily", datetime(2026, 8, 23, 0, 0, tzinfo=UTC), True),
        ("0 0 1 jan *", datetime(2027, 1, 1, 0, 0, tzinfo=UTC), True),
        ("0 0 13 * 5", datetime(2026, 8, 21, 0, 0, tzinfo=UTC), True),  # day or weekday when both are given
    ],
)
def test_cron_matches(schedule: str, moment: datetime, expected: bool) -> None:
    assert Cron.parse(schedule).matches(moment) is expected


@pytest.mark.parametrize("schedule", ["0 18 * *", "61 * * * *", "x * * * *", "0 0 32 * *"])
def test_cron_refuses_what_it_cannot_read(schedule: str) -> None:
    with pytest.raises(CronError):
        Cron.parse(schedule)


@pytest.mark.parametrize(
    "schedule, duration, zone, now, end",
    [
        # sync-window-deny-active-timezone: 18:00 Berlin = 16:00Z, 14h: active at 16:20Z until 06:00Z
        ("0 18 * * *", "14h", "Europe/Berlin", T, datetime(2026, 8, 21, 6, 0, tzinfo=UTC)),
        # the same window read as UTC (the app endpoint drops timeZone) is not active yet at 16:20Z
        ("0 18 * * *", "14h", "", T, None),
        ("0 18 * * *", "14h", "", datetime(2026, 8, 20, 18, 30, tzinfo=UTC), datetime(2026, 8, 21, 8, 0, tzinfo=UTC)),
        ("0 18 * * *", "14h", "Nowhere/Atlantis", datetime(2026, 8, 20, 18, 0, tzinfo=UTC), None),  # not yet: UTC
        ("0 9 * * 1-5", "8h", "", datetime(2026, 8, 22, 10, 0, tzinfo=UTC), None),  # weekend
    ],
)
def test_active_until(schedule: str, duration: str, zone: str, now: datetime, end: datetime | None) -> None:
    length = go_duration(duration)
    assert length is not None
    assert active_until(schedule, length, zone, now) == end


def test_next_start() -> None:
    assert next_start("0 9 * * 1-5", "", datetime(2026, 8, 22, 10, 0, tzinfo=UTC)) == datetime(
        2026, 8, 24, 9, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("14h", 50400),
        ("1h30m", 5400),
        ("90m", 5400),
        ("45s", 45),
        ("500ms", 0.5),
        ("1m500ms", 60.5),
        ("", None),
        ("2d", None),
    ],
)
def test_go_duration(text: str, seconds: float | None) -> None:
    d = go_duration(text)
    assert (d.total_seconds() if d else None) == seconds


DENY = {"kind": "deny", "schedule": "0 18 * * *", "duration": "14h", "manualSync": False}
PROJECT = [dict(DENY, applications=["*-prod"], timeZone="Europe/Berlin", description="prod freeze")]


def windows(
    *ws: dict[str, Any], project: list[dict[str, Any]] | None = None, active: bool = True
) -> tuple[Window, ...]:
    """The app endpoint's answer: `ws` assigned, and active (Argo CD's word) unless `active` is False."""
    answer = {"assignedWindows": list(ws), "activeWindows": list(ws) if active else [], "canSync": not active}
    return windows_of(answer, project or [])


@pytest.mark.parametrize(
    "assigned, now, reason, until",
    [
        pytest.param(windows(), T, None, None, id="no_windows"),
        pytest.param((Window("deny", "bad", "1h"),), T, None, None, id="unreadable_schedule_no_word_is_no_hold"),
        pytest.param(
            windows(DENY, project=PROJECT),
            T,
            Held.SYNC_WINDOW,
            datetime(2026, 8, 21, 6, tzinfo=UTC),
            id="deny_in_the_projects_zone",
        ),  # fmt: skip
        # Argo CD says it is active (it knows the zone); the zone was not readable: held, end unknown
        pytest.param(windows(DENY), T, Held.SYNC_WINDOW, None, id="deny_active_zone_unknown"),
        pytest.param((Window("deny", "0 18 * * *", "14h"),), T, None, None, id="no_word_from_argocd_read_as_utc"),
        pytest.param(
            windows(dict(DENY, manualSync=True)),
            datetime(2026, 8, 20, 18, 30, tzinfo=UTC),
            Held.SYNC_WINDOW,
            datetime(2026, 8, 21, 8, tzinfo=UTC),
            id="deny_manual_sync_still_holds_auto",
        ),  # fmt: skip
        pytest.param(
            windows({"kind": "allow", "schedule": "0 9 * * 1-5", "duration": "8h"}),
            datetime(2026, 8, 20, 10, 0, tzinfo=UTC),
            None,
            None,
            id="allow_open",
        ),  # fmt: skip
        pytest.param(
            windows({"kind": "allow", "schedule": "0 9 * * 1-5", "duration": "8h"}, active=False),
            datetime(2026, 8, 22, 10, 0, tzinfo=UTC),
            Held.SYNC_WINDOW,
            datetime(2026, 8, 24, 9, tzinfo=UTC),
            id="allow_closed_until_monday",
        ),  # fmt: skip
        pytest.param(
            windows({"kind": "deny", "schedule": "bad", "duration": "1h"}),
            T,
            Held.SYNC_WINDOW,
            None,
            id="unreadable_schedule_active_per_argocd",
        ),  # fmt: skip
    ],
)
def test_window_hold(assigned: tuple[Window, ...], now: datetime, reason: Held | None, until: datetime | None) -> None:
    hold = window_hold(assigned, now)
    assert (hold.reason if hold else None, hold.until if hold else None) == (reason, until)


def test_a_deny_window_whose_zone_is_unknown_says_so() -> None:
    hold = window_hold(windows(DENY), T)
    assert hold is not None and "cannot be worked out (its time zone is unknown)" in hold.text


def test_a_deny_window_says_when_and_where_it_ends() -> None:
    hold = window_hold(windows(DENY, project=PROJECT), T)
    assert hold is not None
    assert hold.text == "held by a deny sync window (0 18 * * *, 14h, Europe/Berlin) until 2026-08-21 06:00 UTC"


APPSET_OP = {"initiatedBy": {"username": "applicationset-controller", "automated": True}, "sync": {"prune": True}}


@pytest.mark.parametrize(
    "app, expected",
    [
        ({"status": {"operationState": {"operation": APPSET_OP}}}, True),
        ({"status": {"operationState": {"operation": {"initiatedBy": {"automated": True}}}}}, False),
        (
            {"status": {"operationState": {"operation": {"initiatedBy": {"username": "applicationset-controller"}}}}},
            False,
        ),  # fmt: skip
        ({}, False),
    ],
)
def test_synced_by_appset(app: dict[str, Any], expected: bool) -> None:
    assert synced_by_appset(app) is expected


@pytest.mark.parametrize(
    "automated, progressive, reason",
    [(True, False, None), (False, True, Held.PROGRESSIVE_SYNC), (False, False, Held.MANUAL_SYNC), (True, True, None)],
)
def test_hold_of(automated: bool, progressive: bool, reason: Held | None) -> None:
    hold = hold_of(automated, progressive, (), T)
    assert (hold.reason if hold else None) is reason


REVERT = Decision(Action.REVERT, "culprit_found", "the only commit", ("c1" * 20,))
WINDOW = Hold(Held.SYNC_WINDOW, "held by a deny sync window (…) until 2026-08-21 06:00 UTC", T + timedelta(hours=14))


@pytest.mark.parametrize(
    "decision, hold, age, action, rule",
    [
        (REVERT, None, timedelta(0), Action.REVERT, "culprit_found"),
        (REVERT, WINDOW, timedelta(minutes=5), Action.WAIT, "sync_window"),
        (REVERT, WINDOW, timedelta(hours=25), Action.ALERT, "held_too_long"),
        (REVERT, Hold(Held.PROGRESSIVE_SYNC, "RollingSync"), timedelta(0), Action.REVERT, "culprit_found"),
        (Decision(Action.ALERT, "cooldown", "x"), WINDOW, timedelta(0), Action.ALERT, "cooldown"),
    ],
)
def test_held_decision(decision: Decision, hold: Hold | None, age: timedelta, action: Action, rule: str) -> None:
    out = held_decision(decision, hold, T - age, timedelta(hours=24), T)
    assert (out.action, out.rule) == (action, rule)
    if rule == "sync_window":
        assert out.wait_until == WINDOW.until and out.culprits == REVERT.culprits and WINDOW.text in out.reason
