"""A world with a watcher doing auto-revert, and the questions the scenario tests ask about its git history."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.listening import OnEvent
from tests.support.waiting import wait_for
from watcher.domain import DecisionRecord, Event, EventKind, RevertRecord
from watcher.run.daemon import Daemon
from watcher.settings import Settings
from watcher.sim.world import SimWorld

VALUES = "helm/applications/{svc}/values-{env}.yaml"


def values_path(app: str) -> str:
    svc, env = app.rsplit("-", 1)
    return VALUES.format(svc=svc, env=env)


class Scenario:
    """A world, a watcher with auto-revert, and the questions the tests ask about them."""

    def __init__(self, world: SimWorld, root: Path, **revert: Any):
        self.world = world
        self.root = root
        base = world.watcher_settings(root, poll_seconds=0.5, grace_seconds=0.5)
        options = {"mode": "push", "verify_deadline_seconds": 20.0, "cooldown_seconds": 0.0} | revert
        self.settings: Settings = base.model_copy(update={"revert": base.revert.model_copy(update=options)})
        self.events: list[Event] = []
        self.daemon: Daemon | None = None

    def start(self, before: Callable[[Event], None] | None = None) -> Scenario:
        ahead = [OnEvent(before)] if before is not None else []
        self.daemon = Daemon(
            self.settings, argocd_retry_max_wait=0.05, listeners=[OnEvent(self.events.append)], ahead=ahead
        )
        self.daemon.start()
        wait_for(lambda: self.count(EventKind.DEPLOYED) >= 9, what="initial deploys")
        return self

    @property
    def d(self) -> Daemon:
        assert self.daemon is not None
        return self.daemon

    def count(self, kind: EventKind) -> int:
        return len([e for e in list(self.events) if e.kind is kind])

    def commit(self, subject: str, changes: dict[str, tuple[str, object]], author: str = "Dev Two") -> str:
        files = {}
        for app, (key, value) in changes.items():
            path = values_path(app)
            files[path] = self.world.work.set_value(path, key, value)
        return self.world.work.commit(subject, files, author)

    def push(self, subject: str, changes: dict[str, tuple[str, object]], author: str = "Dev Two") -> str:
        self.world.work.git("pull", "-q", "--rebase", "origin", "main")  # as a developer would after a revert
        self.commit(subject, changes, author)
        self.world.work.push()
        return self.world.work.git("rev-parse", "HEAD")

    def remote_log(self, branch: str = "main") -> list[tuple[str, str, str]]:
        """(sha, author, subject) of the remote branch, newest first."""
        out = subprocess.run(
            ["git", "-C", str(self.world.root / "remotes" / "gitops.git"), "log", "--format=%H%x1f%an%x1f%s", branch],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return [tuple(line.split("\x1f")) for line in out.splitlines()]  # type: ignore[misc]

    def remote_file(self, path: str) -> str:
        git_dir = str(self.world.root / "remotes" / "gitops.git")
        return subprocess.run(
            ["git", "-C", git_dir, "show", f"main:{path}"], check=True, capture_output=True, text=True
        ).stdout

    def bot_commits(self, branch: str = "main") -> list[tuple[str, str, str]]:
        return [c for c in self.remote_log(branch) if c[1] == self.settings.revert.author_name]

    def revert_rows(self, state: str | None = None) -> list[RevertRecord]:
        return [r for r in self.d.store.audit.reverts() if state is None or r.state == state]

    def decision(self, app: str, rule: str | None = None) -> DecisionRecord | None:
        for d in self.d.store.audit.decisions(app=app):
            if rule is None or d.rule == rule:
                return d
        return None

    def app_state(self, app: str) -> tuple[str | None, str | None, str | None]:
        snap = self.d.fleet.trackers[app].last
        assert snap is not None
        return (
            snap.sync_status.value if snap.sync_status else None,
            snap.health.value if snap.health else None,
            snap.sync_revision,
        )

    def healthy_on(self, app: str, revision: str) -> bool:
        sync, health, rev = self.app_state(app)
        return sync == "Synced" and health == "Healthy" and rev == revision

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
