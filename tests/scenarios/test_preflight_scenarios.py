"""The pre-flight end to end on real git: the simulator (polling git slowly, as Argo CD without a webhook does),
a git daemon, the whole watcher. Each test asserts the verdict recorded and the exact set of reverted commits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support.revert_world import Scenario, values_path
from tests.support.waiting import wait_for
from watcher.cli import main
from watcher.core.notices import Notice
from watcher.domain import EventKind
from watcher.sim.world import FAST, SimWorld

APP = "plate-api-stg"
# Argo CD without a webhook compares a new commit minutes later (conformance.md §4); here 30 s: the watcher
# (polling git every 0.5 s) judges a push long before the simulator has looked at it.
SLOW_GIT = replace(FAST, git_poll_seconds=30.0)


@pytest.fixture
def slow_world(tmp_path: Path) -> Iterator[SimWorld]:
    w = SimWorld.start(tmp_path / "world", timings=SLOW_GIT)
    try:
        yield w
    finally:
        w.stop()


def watcher(world: SimWorld, root: Path, mode: str = "push", **preflight: Any) -> tuple[Scenario, list[Notice]]:
    s = Scenario(world, root, mode=mode)
    s.settings = s.settings.model_copy(
        update={"preflight": s.settings.preflight.model_copy(update={"commit_status": False, **preflight})}
    )
    s.start()
    warned: list[Notice] = []
    s.d.preflight.listeners.append(warned.append)
    return s, warned


def broken_values(s: Scenario) -> dict[str, str]:
    text = s.world.work.read(values_path(APP))
    return {values_path(APP): text + "broken: [unclosed\n"}


def verdict(s: Scenario, app: str, sha: str) -> str | None:
    found = s.d.store.preflight.verdicts(app=app, commit_sha=sha, limit=1)
    return found[0].verdict if found else None


def test_a_broken_push_is_judged_and_reverted_before_argo_cd_compares_it(slow_world: SimWorld, tmp_path: Path) -> None:
    s, warned = watcher(slow_world, tmp_path / "w", revert_environments=["stg"])
    try:
        bad = slow_world.work.commit("plate-api-stg: tune values", broken_values(s))
        slow_world.work.push()
        row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed", timeout=120)[0]
        assert row.culprits == (bad,)  # exactly the broken commit, nothing else
        assert verdict(s, APP, bad) == "will_fail_to_render"
        decision = s.decision(APP, "preflight_render_failed")
        assert decision is not None and decision.action.value == "revert"
        assert "failed to parse values-stg.yaml" in decision.evidence["preflight"]["argocd_error"]
        line = str(decision.evidence["evidence_line"])  # the failing render and the commit's change to the app
        assert line.startswith(f"{APP} does not render at {bad[:7]} (") and "failed to parse values-stg.yaml" in line
        assert f"; {bad[:7]} changed {values_path(APP)}; the synced revision renders" in line
        assert [c for c in s.bot_commits()][0][0] == row.revert_sha
        # The revert names its incident in git, as detection's do: what a restart after a crash finds it by.
        incident = s.d.store.detection.incident(row.incident_id)
        assert incident is not None and incident.uid
        assert s.d.repo.find_by_incident(incident.uid, [bad], incident.detected_at) == row.revert_sha
        notice = wait_for(lambda: next((n for n in warned if n.app == APP), None), what="Slack warning")
        assert notice.kind is EventKind.PREFLIGHT_FAILED and notice.revision == bad
        assert "failed to parse values-stg.yaml" in notice.argocd_message
        # Argo CD never showed the broken commit: no render error, no sync of it, ever.
        wait_for(lambda: s.healthy_on(APP, row.revert_sha), what="healthy on the revert", timeout=60)
        assert not [e for e in s.events if e.revision == bad and e.kind is not EventKind.RECOVERED]
        assert all(bad not in (h.get("revision"), *(h.get("revisions") or [])) for h in _history(slow_world, APP))
        registry = s.d.watcher.metrics.registry
        assert registry.get_sample_value("sync_watcher_preflight_verdicts_total", {"verdict": "will_fail_to_render"})
        explained = CliRunner().invoke(main, ["explain", APP, "--url", f"http://127.0.0.1:{s.d.http.port}"])
        assert explained.exit_code == 0, explained.output
        assert "REVERT (preflight_render_failed)" in explained.output and f"evidence: {line}" in explained.output
        assert (
            f"{bad[:12]} will_fail_to_render" in explained.output
            and "failed to parse values-stg.yaml" in explained.output
        )
    finally:
        s.stop()


def test_a_healthy_push_renders_with_no_alarm_and_no_revert(slow_world: SimWorld, tmp_path: Path) -> None:
    s, warned = watcher(slow_world, tmp_path / "w", revert_environments=["*"])
    try:
        good = s.push("plate-api-stg: three replicas", {APP: ("replicaCount", 3)})
        wait_for(lambda: verdict(s, APP, good), what="verdict", timeout=120)
        assert verdict(s, APP, good) == "renders"
        assert warned == [] and s.revert_rows() == [] and s.bot_commits() == []
        assert s.d.store.audit.decisions(app=APP) == []
        explained = CliRunner().invoke(main, ["explain", APP, "--url", f"http://127.0.0.1:{s.d.http.port}"])
        assert "no auto-revert decision" in explained.output and f"{good[:12]} renders" in explained.output
    finally:
        s.stop()


def test_an_app_already_failing_the_same_way_cannot_be_judged(world: SimWorld, tmp_path: Path) -> None:
    s, warned = watcher(world, tmp_path / "w", mode="dry-run")  # no revert: the first break stays
    try:
        first = world.work.commit("plate-api-stg: tune values", broken_values(s))
        world.work.push()
        wait_for(lambda: verdict(s, APP, first), what="first verdict", timeout=120)
        assert verdict(s, APP, first) == "will_fail_to_render"
        wait_for(lambda: s.count(EventKind.MANIFEST_ERROR) >= 1, what="Argo CD's own render error", timeout=120)
        text = world.work.read(values_path(APP))
        second = world.work.commit("plate-api-stg: add a comment", {values_path(APP): "# tuned\n" + text})
        world.work.push()
        wait_for(lambda: verdict(s, APP, second), what="second verdict", timeout=120)
        assert verdict(s, APP, second) == "cannot_judge"
        assert [n.revision for n in warned if n.app == APP] == [first]  # no second alarm
        assert s.bot_commits() == []
    finally:
        s.stop()


def _history(world: SimWorld, app: str) -> list[dict[str, Any]]:
    found = world.controller.get(app) or {}
    return list((found.get("status") or {}).get("history") or [])


def test_a_change_to_an_application_itself_cannot_be_judged_and_its_parent_renders(
    world: SimWorld, tmp_path: Path
) -> None:
    s, warned = watcher(world, tmp_path / "w", revert_environments=["*"])
    try:
        manifest = f"environments/argocd/apps/{APP}.yaml"
        text = world.work.read(manifest).replace("revisionHistoryLimit: 10", "revisionHistoryLimit: 5")
        if text == world.work.read(manifest):
            text += "# the team that owns it: plate\n"
        sha = world.work.commit("plate-api-stg: keep fewer revisions", {manifest: text})
        world.work.push()
        wait_for(lambda: verdict(s, APP, sha) and verdict(s, "app-of-apps", sha), what="verdicts", timeout=120)
        assert verdict(s, APP, sha) == "cannot_judge"
        record = s.d.store.preflight.verdicts(app=APP, commit_sha=sha, limit=1)[0]
        assert "changes the Application itself" in record.reason
        assert verdict(s, "app-of-apps", sha) == "renders"  # the parent renders its directory at the commit
        assert warned == [] and s.bot_commits() == []
    finally:
        s.stop()
