"""What Argo CD may do for one app now (its sync policy, its sync windows, who syncs it), read when it matters:
before a revert is pushed, and when a pushed revert has not deployed by its deadline. Pure rules in
core/sync_permit.py; this module only reads, and a read that fails is no hold (logged, never a guess)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from watcher.core.sync_permit import Hold, automated, hold_of, synced_by_appset, window_hold, windows_of
from watcher.domain import RetryLater
from watcher.ports import ArgoCDActions


class HoldReader:
    def __init__(self, argocd: ArgoCDActions, log: Any):
        self.argocd = argocd
        self.log = log

    def windows(self, name: str, namespace: str, project: str, now: datetime) -> Hold | None:
        """Only the sync windows: for an app whose sync policy is already known to deploy by itself."""
        try:
            answer = self.argocd.sync_windows(name, namespace)
        except RetryLater as exc:
            self.log.warning("sync_windows_unreadable", app=name, error=str(exc)[:300])
            return None
        if not answer.get("assignedWindows"):
            return None
        zones: list[Any] = []
        try:  # only the project's windows carry timeZone (the app endpoint drops it)
            zones = (self.argocd.project_sync_windows(project).get("windows") or []) if project else []
        except RetryLater as exc:
            self.log.warning("project_sync_windows_unreadable", app=name, project=project, error=str(exc)[:300])
        return window_hold(windows_of(answer, zones), now)

    def read(self, name: str, namespace: str, now: datetime) -> Hold | None:
        """Everything: the app (sync policy, who synced it last), then its windows when it syncs by itself."""
        try:
            app = self.argocd.get_app(name, namespace)
        except RetryLater as exc:
            self.log.warning("hold_unreadable", app=name, error=str(exc)[:300])
            return None
        progressive, auto = synced_by_appset(app), automated(app)
        held = hold_of(auto, progressive, (), now)
        if held is not None or not auto:
            return held
        project = str((app.get("spec") or {}).get("project", ""))
        return self.windows(name, namespace, project, now)
