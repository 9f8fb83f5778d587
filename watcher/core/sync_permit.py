"""Pure: may Argo CD deploy a revert of this app by itself now, and if not, why and until when.

Read from three answers of Argo CD: the Application (its sync policy, and who started its last operation), the
app's sync windows (`GET /api/v1/applications/{name}/syncwindows`, swagger's
applicationApplicationSyncWindowsResponse) and the project's active windows (`GET /api/v1/projects/{name}/
syncwindows`, projectSyncWindowsResponse), which alone carry each window's `timeZone`.

What Argo CD does, and where (argo-cd @ 37ee0097):
- an automated sync is allowed by the windows as `CanSync(isManual=false)`: any active deny blocks it; else any
  active allow lets it; else allow windows that exist but are inactive block it (types.go:3186-3244;
  controller/appcontroller.go:2002-2019, where a blocked auto-sync adds no condition, only a log line);
- the syncwindows endpoint's `canSync` is `CanSync(true)`, as for a *manual* sync (application.go:2894), so a
  deny window with `manualSync: true` answers `canSync: true` while automated syncs stay blocked; and its window
  objects drop `timeZone` (convertSyncWindows, application.go:2935-2952): the end comes from the project's;
- the ApplicationSet controller's RollingSync sets `spec.syncPolicy.automated.enabled=false` on the apps it
  rolls out and starts their syncs itself, as `initiatedBy {username: applicationset-controller, automated: true}`
  (applicationset/progressivesync/progressive_sync.go:825-897); sync windows treat that as automated
  (controller/sync.go:727-744): the app is deployed, at the controller's step, not by auto-sync;
- an app without automated sync is deployed only when someone syncs it (appcontroller.go:2528-2530).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from watcher.core.cron import CronError, active_until, next_start

APPSET_CONTROLLER = "applicationset-controller"  # progressive_sync.go:868-871
GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")  # "ms" before "m": "500ms" is not 500 minutes and an "s"
UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class Held(enum.StrEnum):
    """Why Argo CD will not deploy a revert by itself now (the metric's `reason` label)."""

    SYNC_WINDOW = "sync_window"  # a deny window is active, or allow windows exist and none is
    PROGRESSIVE_SYNC = "progressive_sync"  # the ApplicationSet controller deploys it at its RollingSync step
    MANUAL_SYNC = "manual_sync_app"  # no automated sync: a person must sync it


@dataclass(frozen=True, slots=True)
class Hold:
    reason: Held
    text: str  # for Slack, explain and the audit: "held by a deny window (0 18 * * *, 14h, Europe/Berlin) until …"
    until: datetime | None = None  # when Argo CD may deploy it by itself; None: not known, or only by a person

    def evidence(self) -> dict[str, object]:
        return {"reason": self.reason.value, "text": self.text, "until": self.until.isoformat() if self.until else None}


@dataclass(frozen=True, slots=True)
class Window:
    kind: str  # "allow" | "deny"
    schedule: str
    duration: str
    manual_sync: bool = False
    time_zone: str = ""  # "" when not known (the app endpoint drops it): UTC, and the end says so
    active: bool | None = None  # Argo CD's own word (activeWindows); None: work it out from the schedule

    @classmethod
    def of(cls, w: Mapping[str, Any], time_zone: str = "", active: bool | None = None) -> Window:
        return cls(
            str(w.get("kind", "")),
            str(w.get("schedule", "")),
            str(w.get("duration", "")),
            bool(w.get("manualSync")),
            str(w.get("timeZone", time_zone) or ""),
            active,
        )

    def same(self, other: Window) -> bool:
        return (self.kind, self.schedule, self.duration) == (other.kind, other.schedule, other.duration)

    def words(self) -> str:
        zone = self.time_zone or "UTC"
        return f"{self.schedule}, {self.duration}, {zone}"


def go_duration(text: str) -> timedelta | None:
    """Go's time.ParseDuration for the units windows use ("14h", "1h30m", "90m"); None when unreadable."""
    parts = GO_DURATION.findall(text or "")
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return None
    return timedelta(seconds=sum(float(n) * UNITS[u] for n, u in parts))


def synced_by_appset(app: Mapping[str, Any]) -> bool:
    """The app's last operation was started by the ApplicationSet controller's progressive sync."""
    op = ((app.get("status") or {}).get("operationState") or {}).get("operation") or app.get("operation") or {}
    by = op.get("initiatedBy") or {}
    return isinstance(by, dict) and by.get("username") == APPSET_CONTROLLER and bool(by.get("automated"))


def automated(app: Mapping[str, Any]) -> bool:
    """spec.syncPolicy.automated set and not `enabled: false` (SyncPolicy.IsAutomatedSyncEnabled)."""
    policy = ((app.get("spec") or {}).get("syncPolicy")) or {}
    auto = policy.get("automated")
    return isinstance(auto, dict) and auto.get("enabled") is not False


def windows_of(answer: Mapping[str, Any] | None, project: Sequence[Mapping[str, Any]] = ()) -> tuple[Window, ...]:
    """The app's assigned windows, each with the time zone of the project window it is (matched on kind, schedule
    and duration: the app endpoint's window has nothing else)."""
    if not answer:
        return ()
    full = [Window.of(w) for w in project]
    active = [Window.of(w) for w in answer.get("activeWindows") or []]
    out = []
    for w in answer.get("assignedWindows") or []:
        window = Window.of(w)
        zone = next((f.time_zone for f in full if f.same(window)), "")
        out.append(Window.of(w, zone, any(a.same(window) for a in active)))
    return tuple(out)


def hold_of(automated_sync: bool, progressive: bool, windows: Sequence[Window], now: datetime) -> Hold | None:
    """Why Argo CD will not deploy a new revision by itself now; None when it will (or nothing says it will not:
    an unreadable window is not a hold). `progressive`: its syncs are the ApplicationSet controller's."""
    if progressive and not automated_sync:
        return Hold(
            Held.PROGRESSIVE_SYNC,
            f"synced by the ApplicationSet controller's progressive sync ({APPSET_CONTROLLER}): it deploys a new "
            "revision at the app's RollingSync step, not at once",
        )
    if not automated_sync:
        return Hold(Held.MANUAL_SYNC, "the app has no automated sync: Argo CD deploys a new revision only when a "
                    "person syncs it")  # fmt: skip
    return window_hold(windows, now)


def window_hold(windows: Sequence[Window], now: datetime) -> Hold | None:
    """CanSync(isManual=false) over the app's windows, with the end of the hold when it can be worked out. Which
    windows are active is Argo CD's word where it gave it (it knows every time zone), else the schedule's."""
    active: list[tuple[Window, datetime | None]] = []
    for w in windows:
        end = _end(w, now)
        if w.active or (w.active is None and end is not None):
            active.append((w, end))
    denies = [(w, end) for w, end in active if w.kind == "deny"]
    if denies:
        ends = [end for _, end in denies]
        until = None if None in ends else max(e for e in ends if e is not None)
        w = denies[0][0]
        manual = " (manual syncs allowed)" if all(d.manual_sync for d, _ in denies) else ""
        when = f"until {_utc(until)}" if until else "until an end that cannot be worked out (its time zone is unknown)"
        return Hold(Held.SYNC_WINDOW, f"held by a deny sync window ({w.words()}){manual} {when}", until)
    if any(w.kind == "allow" for w, _ in active):
        return None
    allows = [w for w in windows if w.kind == "allow"]
    if not allows:
        return None
    starts = [s for s in (_next(w, now) for w in allows) if s is not None]
    until = min(starts) if starts else None
    when = f" until {_utc(until)}" if until else ""
    return Hold(Held.SYNC_WINDOW, f"held outside its allow sync windows ({allows[0].words()}){when}", until)


def _end(w: Window, now: datetime) -> datetime | None:
    duration = go_duration(w.duration)
    if duration is None:
        return None
    try:
        return active_until(w.schedule, duration, w.time_zone, now)
    except CronError:
        return None


def _next(w: Window, now: datetime) -> datetime | None:
    try:
        return next_start(w.schedule, w.time_zone, now)
    except CronError:
        return None


def _utc(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M UTC")
