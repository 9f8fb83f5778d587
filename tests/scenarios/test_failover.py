"""Two replicas on one real PostgreSQL, real git over loopback, the simulator and a fake Slack: one leads, the
other stands by and takes over when the leader is killed (mid-cycle, mid-revert) or cut off from the database.
Each test ends with the same three checks: one revert commit, one Slack message per event, no incident open."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.fake_slack import TOKEN, FakeSlack, fake_slack
from tests.support.fault_proxy import FaultPlan, FaultProxy
from tests.support.revert_world import values_path
from tests.support.waiting import wait_for
from watcher.adapters.pg_lock import AdvisoryLock, LeaderLockUnavailable
from watcher.sim.world import SimWorld
from watcher.store import Store

ROOT = Path(__file__).resolve().parents[2]
CHECK, LEASE = 0.3, 1.0  # seconds: a take-over takes about one check plus one lease
APP = "plate-api-stg"
# Holds the watcher's first two pushes in the remote's pre-receive hook until the test releases each one
# (the file release-N): the push has passed the fence and is on the wire, the ref is not updated yet.
HOLD_HOOK = """#!/bin/sh
while read old new ref; do
  [ "$(git log -1 --format=%an "$new")" = sync-watcher ] || exit 0
done
n=1; while ! mkdir "{hold}/push-$n" 2>/dev/null; do n=$((n+1)); done
[ "$n" -gt 2 ] && exit 0
i=0; while [ ! -e "{hold}/release-$n" ] && [ $i -lt 6000 ]; do sleep 0.05; i=$((i+1)); done
exit 0
"""


class Replica:
    """`python -m watcher run` as a process of its own, its JSON log lines read as they come (with their time)."""

    def __init__(self, name: str, env: dict[str, str]):
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                self.lines.append((time.monotonic(), json.loads(line)))
            except ValueError:
                self.lines.append((time.monotonic(), {"event": "unparsed", "line": line}))

    def logged(self, event: str, **fields: Any) -> tuple[float, dict[str, Any]] | None:
        for at, doc in list(self.lines):
            if doc.get("event") == event and all(doc.get(k) == v for k, v in fields.items()):
                return at, doc
        return None

    def wait_logged(self, event: str, timeout: float = 120.0, **fields: Any) -> tuple[float, dict[str, Any]]:
        return wait_for(lambda: self.logged(event, **fields), timeout, what=f"{self.name}: {event} {fields}")

    def wait_acting(self) -> None:
        """`role_changed leader` is logged before the replica reloads the store; it says `leader` (and its gauge
        1) only once that is done (run/leadership.py), which a loaded machine may take seconds to finish."""
        wait_for(lambda: self.role() == "leader", 120, what=f"{self.name}: acting as the leader")

    @property
    def url(self) -> str:
        _, started = self.wait_logged("watcher_started")
        return f"http://127.0.0.1:{started['http_port']}"

    def role(self) -> str:
        return str(httpx.get(f"{self.url}/readyz", timeout=5).json()["role"])

    def leader_gauge(self) -> float:
        for line in httpx.get(f"{self.url}/metrics", timeout=5).text.splitlines():
            if line.startswith("sync_watcher_leader "):
                return float(line.split()[1])
        raise AssertionError("no sync_watcher_leader in /metrics")

    def apps_exported(self) -> int:
        return httpx.get(f"{self.url}/metrics", timeout=5).text.count("\nsync_watcher_app_info{")

    def kill(self) -> float:
        """SIGKILL to the Python process only: a git push it started stays on the wire, as in a network split."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(60)
        return time.monotonic()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class Pair:
    """The world the replicas share: the simulator and its git remote, PostgreSQL, Slack; `hold` for pushes."""

    def __init__(self, world: SimWorld, pg: str, slack: FakeSlack, root: Path):
        self.world, self.pg, self.slack, self.root = world, pg, slack, root
        self.remote = world.root / "remotes" / "gitops.git"
        self.hold = root / "hold"
        self.hold.mkdir()
        self.replicas: list[Replica] = []
        self.store = Store(pg)

    def start(self, name: str, argocd_url: str | None = None) -> Replica:
        replica = Replica(name, self.env(name, argocd_url))
        self.replicas.append(replica)
        return replica

    def env(self, name: str, argocd_url: str | None = None) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")} | {
            "PYTHONPATH": str(ROOT),
            "WATCHER_ARGOCD__URL": argocd_url or self.world.argocd_url,
            "WATCHER_ARGOCD__LIST_INTERVAL_SECONDS": "0.5",
            "WATCHER_GIT__URL": self.world.repo_url,
            "WATCHER_GIT__CLONE_DIR": str(self.root / name / "clone"),
            "WATCHER_GIT__POLL_INTERVAL_SECONDS": "0.5",
            "WATCHER_DETECTION__COMPARISON_ERROR_GRACE_SECONDS": "0.5",
            "WATCHER_DETECTION__DEGRADED_GRACE_SECONDS": "0.5",
            "WATCHER_DETECTION__PROGRESS_DEADLINE_SECONDS": "1.5",
            "WATCHER_STORE__URL": self.pg,
            "WATCHER_HTTP__HOST": "127.0.0.1",
            "WATCHER_HTTP__PORT": "0",
            "WATCHER_HTTP__ADMIN_TOKEN": "failover-admin-token",
            "WATCHER_REVERT__MODE": "push",
            "WATCHER_REVERT__COOLDOWN_SECONDS": "0",
            "WATCHER_REVERT__VERIFY_DEADLINE_SECONDS": "30",
            "WATCHER_SLACK__BOT_TOKEN": TOKEN,
            "WATCHER_SLACK__CHANNEL": "#deploys",
            "WATCHER_SLACK__API_URL": self.slack.api_url,
            "WATCHER_LEADERSHIP__CHECK_INTERVAL_SECONDS": str(CHECK),
            "WATCHER_LEADERSHIP__LEASE_SECONDS": str(LEASE),
            "WATCHER_LOG__FORMAT": "json",
        }

    def leader_and_standby(self, argocd_for_leader: str | None = None) -> tuple[Replica, Replica]:
        """`a` takes the lock first and leads, `b` stands by. Both are ready, exactly one leads."""
        a = self.start("a", argocd_for_leader)
        a.wait_logged("role_changed", role="taking_over")
        b = self.start("b")  # starts while `a` waits out the lease
        b.wait_logged("role_changed", role="standby")
        a.wait_logged("role_changed", role="leader")
        wait_for(lambda: len(self.store.detection.deployments()) >= 9, 120, what="initial deploys recorded")
        for r in (a, b):
            wait_for(lambda r=r: httpx.get(f"{r.url}/readyz").status_code == 200, 120, what=f"{r.name} ready")
        a.wait_acting()
        assert (a.role(), a.leader_gauge(), b.role(), b.leader_gauge()) == ("leader", 1.0, "standby", 0.0)
        wait_for(lambda: a.apps_exported() == 9, what="the leader's per-app series")
        assert b.apps_exported() == 0  # scraped too: a standby's copy would count the fleet twice
        return a, b

    def run_once(self, name: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "watcher", "run", "--once"]
        return subprocess.run(cmd, env=self.env(name), cwd=ROOT, capture_output=True, text=True, timeout=180)

    def hold_pushes(self) -> None:
        hook = self.remote / "hooks" / "pre-receive"
        hook.write_text(HOLD_HOOK.format(hold=self.hold))
        hook.chmod(0o755)

    def held(self, n: int) -> bool:
        return (self.hold / f"push-{n}").exists()

    def release(self, n: int) -> None:
        (self.hold / f"release-{n}").touch()

    def break_app(self) -> str:
        work, path = self.world.work, values_path(APP)
        bad = work.commit(f"{APP}: scale to -1", {path: work.set_value(path, "replicaCount", -1)}, "Dev Two")
        work.push()
        return bad

    def head_author(self) -> str:
        return self._git("log", "-1", "--format=%an", "main").strip()

    def bot_commits(self) -> list[str]:
        return [line for line in self._git("log", "--format=%an %H", "main").splitlines() if line.startswith("sync-")]

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.remote), *args], check=True, capture_output=True, text=True).stdout

    def healed(self) -> bool:
        return not self.store.detection.incidents(open_only=True) and any(
            r.verify_result == "restored" for r in self.store.audit.reverts()  # a refused sync: no sync to redo
        )

    def assert_once_each(self, bad: str) -> None:
        """One revert commit of the culprit, one Slack message per (what, app), the incident closed."""
        wait_for(self.healed, 120, what="the incident closed by the verified revert")
        assert len(self.bot_commits()) == 1, self.bot_commits()
        assert f"Sync-Watcher-Reverts: {bad}" in self._git("log", "-1", "--format=%B", self.bot_commits()[0].split()[1])
        seen = Counter(m.text.split(" - ")[0] for m in self.slack.messages)
        assert seen[f"Sync failed: {APP}"] == 1 and seen[f"Reverted: {APP}"] == 1, seen
        wait_for(lambda: Counter(m.text.split(" - ")[0] for m in self.slack.messages)[f"Recovered: {APP}"] == 1)
        assert all(n == 1 for n in Counter(m.text.split(" - ")[0] for m in self.slack.messages).values())

    def stop(self) -> None:
        for n in (1, 2):
            self.release(n)  # no hook waits past the test
        for r in self.replicas:
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)  # all at once: each takes a few seconds to stop
        for r in self.replicas:
            r.stop()
        self.store.close()


@pytest.fixture
def pair(world: SimWorld, postgres_url: str, tmp_path: Path) -> Iterator[Pair]:
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # a clean schema for every test
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    with fake_slack() as slack:
        p = Pair(world, postgres_url, slack, tmp_path)
        try:
            yield p
        finally:
            p.stop()


def test_the_lock_is_held_by_one_session_and_freed_when_that_session_ends(postgres_url: str) -> None:
    first, second = AdvisoryLock(postgres_url, CHECK, LEASE), AdvisoryLock(postgres_url, CHECK, LEASE)
    try:
        assert first.try_acquire() and first.holds()
        assert not second.try_acquire() and not second.holds()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            row = admin.execute("SELECT application_name FROM pg_stat_activity JOIN pg_locks USING (pid)"
                                " WHERE locktype = 'advisory' AND granted").fetchone()  # fmt: skip
            assert row is not None and row[0].startswith("sync-watcher leader lock ")
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        with pytest.raises(LeaderLockUnavailable):
            first.holds()
        assert not first.holds()  # the session is gone for good: a new one must take the lock again
        assert second.try_acquire() and second.holds()
    finally:
        first.release()
        second.release()


@pytest.mark.slow
def test_kill_9_of_the_leader_mid_cycle_the_standby_takes_over_and_handles_the_incident(
    pair: Pair, world: SimWorld
) -> None:
    proxy = FaultProxy(world.argocd_url).start()
    try:
        a, b = pair.leader_and_standby(argocd_for_leader=proxy.url)
        once = pair.run_once("c")  # a third process, by hand: it cannot lead either, so it only looks
        assert once.returncode == 0, once.stderr
        assert once.stdout.splitlines()[1:] == [
            "apps poll: 9 apps listed, 0 gone, 0 events recorded",
            "reverter pass: not run: another replica is the leader (observed only, nothing recorded)",
        ]
        # The leader's fresh look at the failing app never comes back: it has recorded the incident and told
        # Slack, and is stuck before deciding anything.
        proxy.plan = FaultPlan(hang=True, paths=(f"/api/v1/applications/{APP}",))
        bad = pair.break_app()
        wait_for(lambda: pair.store.detection.incidents(open_only=True), 120, what="incident recorded by the leader")
        a.wait_logged("slack_notice_sent", kind="sync_failed")
        wait_for(lambda: f"GET /api/v1/applications/{APP}" in proxy.seen, what="the leader stuck on Argo CD")
        assert pair.store.audit.decisions() == []
        killed_at, killed_wall = a.kill(), datetime.now(UTC)
        took_over, _ = b.wait_logged("role_changed", role="leader", timeout=120)
        print(f"take-over after kill -9 mid-cycle: {took_over - killed_at:.2f}s")
        assert took_over - killed_at < CHECK + LEASE + 2.0
        b.wait_acting()
        assert b.role() == "leader" and b.leader_gauge() == 1.0
        pair.assert_once_each(bad)
        decided = [d for d in pair.store.audit.decisions() if d.action != "wait"]
        assert [(d.action, d.rule) for d in decided] == [("revert", "culprit_found")] and decided[0].at > killed_wall
    finally:
        proxy.stop()


@pytest.mark.slow
def test_kill_9_of_the_leader_mid_push_never_reverts_twice_even_when_its_push_lands_late(pair: Pair) -> None:
    a, b = pair.leader_and_standby()
    pair.hold_pushes()
    bad = pair.break_app()
    wait_for(lambda: pair.held(1), 120, what="the leader's push on the wire")
    a.wait_logged("slack_notice_sent", kind="sync_failed")
    killed_at = a.kill()  # its `git push` lives on, held by the remote: a push in flight from a dead leader
    took_over, _ = b.wait_logged("role_changed", role="leader", timeout=120)
    print(f"take-over after kill -9 mid-push: {took_over - killed_at:.2f}s")
    b.wait_logged("revert_not_pushed_before_restart")  # the dead leader's intent, not (yet) in git
    wait_for(lambda: pair.held(2), 120, what="the new leader's own push on the wire")
    pair.release(1)  # the dead leader's push lands first ...
    wait_for(lambda: pair.head_author() == "sync-watcher", what="the late push landed")
    pair.release(2)  # ... so the new leader's is refused (the branch moved), and it adopts the one that landed
    _, pushed = b.wait_logged("revert_pushed")
    assert pushed["adopted"].startswith("this incident's revert was already on the branch")
    assert [r.state for r in pair.store.audit.reverts()] == ["pushed", "not_pushed"]
    pair.assert_once_each(bad)


@pytest.mark.slow
def test_a_leader_cut_off_from_the_database_stops_before_the_standby_acts(pair: Pair) -> None:
    a, b = pair.leader_and_standby()
    pair.hold_pushes()
    pair.release(2)  # the second push (the new leader's) goes straight through
    bad = pair.break_app()
    wait_for(lambda: pair.held(1), 120, what="the leader's push on the wire")
    with psycopg.connect(pair.pg, autocommit=True) as admin:  # the server ends the leader's lock session
        cut_at = time.monotonic()
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted")
    stepped_down, line = a.wait_logged("role_changed", role="standby", timeout=120)
    took_over, _ = b.wait_logged("role_changed", role="leader", timeout=120)
    print(
        f"cut off: old leader stood down after {stepped_down - cut_at:.2f}s, new acted after {took_over - cut_at:.2f}s"
    )
    assert stepped_down < took_over and "lost" in line["reason"]
    wait_for(lambda: len(pair.bot_commits()) == 1, 120, what="the new leader's revert")
    pair.release(1)  # the old leader's push, held since before the cut: refused, and not redone
    a.wait_logged("revert_abandoned_not_leader")
    assert a.logged("revert_pushed") is None and a.role() == "standby" and a.leader_gauge() == 0.0
    pair.assert_once_each(bad)
