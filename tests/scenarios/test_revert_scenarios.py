"""Auto-revert end to end: the simulator, a real git daemon, the daemon; each test asserts the git history after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from tests.support.revert_world import Scenario, values_path
from tests.support.waiting import wait_for
from watcher.adapters.git_revert import RevertWorktree
from watcher.cli import main
from watcher.domain import Event, EventKind, RevertState
from watcher.sim.gitops_repo import REGISTRY
from watcher.sim.world import SimWorld


def test_single_bad_commit_is_reverted_and_the_app_recovers(scenario: Callable[..., Scenario]) -> None:
    s = scenario().start()
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (bad,)
    head, author, subject = s.remote_log()[0]
    assert (head, author, subject) == (row.revert_sha, "sync-watcher", 'Revert "plate-api-stg: scale to -1"')
    body = s.d.repo.commit(head)
    assert body is not None and body.parents == (bad,) and body.reverts == (bad,)
    assert yaml.safe_load(s.remote_file(values_path("plate-api-stg")))["replicaCount"] == 1
    wait_for(lambda: s.healthy_on("plate-api-stg", head), what="app healthy on the revert")
    # The refused sync never changed the cluster: the revert needs no sync, so it restored the live state (Argo CD
    # shows Synced at it with the failed operation in place), which is not proof that the culprit was right.
    wait_for(lambda: s.d.store.audit.reverts()[0].verify_result == "restored", what="revert verified")
    incident = s.d.store.detection.incidents(app="plate-api-stg")[0]
    assert incident.resolved_at is not None and incident.resolution.startswith(("revert", "recovered"))
    decision = s.decision("plate-api-stg", "culprit_found")
    assert decision is not None and decision.evidence["blame"]["culprits"][0]["sha"] == bad
    assert s.d.watcher.metrics.registry.get_sample_value("sync_watcher_reverts_total", {"outcome": "pushed"}) == 1


def test_only_the_bad_commit_is_reverted_when_good_commits_to_other_apps_follow(
    scenario: Callable[..., Scenario],
) -> None:
    s = scenario().start()
    bad = s.commit("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    good1 = s.commit("plate-web-stg: bump to 1.26.0", {"plate-web-stg": ("image.tag", "1.26.0")}, "Dev One")
    good2 = s.commit("plate-cache-prod: bump to 7.2.5", {"plate-cache-prod": ("image.tag", "7.2.5")}, "Dev One")
    s.world.work.push()
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (bad,)
    log = [sha for sha, _, _ in s.remote_log()]
    assert log[:4] == [row.revert_sha, good2, good1, bad]
    assert yaml.safe_load(s.remote_file(values_path("plate-web-stg")))["image"]["tag"] == "1.26.0"
    assert yaml.safe_load(s.remote_file(values_path("plate-cache-prod")))["image"]["tag"] == "7.2.5"
    wait_for(lambda: s.healthy_on("plate-api-stg", row.revert_sha), what="app healthy on the revert")


def test_one_bad_commit_breaking_two_apps_is_reverted_once(scenario: Callable[..., Scenario]) -> None:
    s = scenario().start()
    bad = s.push(
        "stg: scale api and web to -1",
        {"plate-api-stg": ("replicaCount", -1), "plate-web-stg": ("replicaCount", -1)},
    )
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (bad,)
    for app in ("plate-api-stg", "plate-web-stg"):
        wait_for(lambda app=app: s.healthy_on(app, row.revert_sha), what=f"{app} healthy on the revert")
    assert len(s.bot_commits()) == 1 and len(s.revert_rows()) == 1
    decision = s.decision(row.app, "culprit_found")
    assert decision is not None and "also changed" in decision.reason


def test_two_bad_commits_to_one_app_are_reverted_together_without_narrowing(
    scenario: Callable[..., Scenario],
) -> None:
    s = scenario(narrow=False).start()
    first = s.commit("plate-api-stg: memory in bananas", {"plate-api-stg": ("resources.limits.memory", "12bananas")})
    second = s.commit("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    s.world.work.push()
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (second, first)  # newest first, one commit
    revert = s.d.repo.commit(row.revert_sha)
    assert revert is not None and revert.reverts == (second, first) and revert.parents == (second,)
    assert revert.subject == "Revert 2 commits that broke plate-api-stg"
    wait_for(lambda: s.healthy_on("plate-api-stg", row.revert_sha), what="app healthy on the revert")
    assert len(s.bot_commits()) == 1
    decision = s.decision("plate-api-stg", "culprit_found")
    assert decision is not None and "narrow" not in decision.reason  # off: blame as it was, nothing claimed


def test_two_bad_commits_named_one_at_a_time_as_the_api_server_refuses_them(
    scenario: Callable[..., Scenario],
) -> None:
    """The simulator's API server names the first invalid field only: narrowing reverts the commit it names,
    the next sync is refused for the other field, and that commit is named and reverted in turn."""
    s = scenario().start()
    first = s.commit("plate-api-stg: memory in bananas", {"plate-api-stg": ("resources.limits.memory", "12bananas")})
    second = s.commit("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    s.world.work.push()
    rows = wait_for(lambda: s.revert_rows("pushed")[1:] and s.revert_rows("pushed"), timeout=120, what="2 reverts")
    assert sorted(r.culprits for r in rows) == sorted([(second,), (first,)])
    last = max(rows, key=lambda r: r.id)
    wait_for(lambda: s.healthy_on("plate-api-stg", last.revert_sha), what="app healthy on the second revert")
    assert len(s.bot_commits()) == 2


def test_failure_not_caused_by_a_commit_is_alerted_not_reverted(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    s = scenario()
    s.settings = s.settings.model_copy(
        update={"detection": s.settings.detection.model_copy(update={"attribution_window_seconds": 0.5})}
    )
    s.start()
    wait_for(lambda: s.healthy_on("plate-web-stg", s.remote_log()[0][0]), what="web healthy")
    # The registry loses the running image: the app degrades with no commit behind it.
    head_before = s.remote_log()[0][0]
    del world.controller.cluster.images[f"{REGISTRY}/plate-web"]["1.25.0"]
    world.controller.cluster_changed()
    decision = wait_for(lambda: s.decision("plate-web-stg"), what="a decision on plate-web-stg")
    assert decision.action == "alert" and decision.rule == "not_attributed"
    assert s.remote_log()[0][0] == head_before and not s.revert_rows()


def test_argocd_unreachable_during_the_incident_holds_the_revert_until_it_answers(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    def cut_argocd(e: Event) -> None:
        if e.kind is EventKind.SYNC_FAILED:
            world.faults.server_errors = 10**9

    s = scenario().start(before=cut_argocd)
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    waiting = wait_for(lambda: s.decision("plate-api-stg", "argocd_unknown"), what="decision to wait")
    assert waiting.action == "wait"
    assert not s.bot_commits() and s.remote_log()[0][0] == bad  # nothing done on unknown state
    world.faults.server_errors = 0
    row = wait_for(lambda: s.revert_rows("pushed"), timeout=120, what="revert once Argo CD answers")[0]
    assert row.culprits == (bad,) and len(s.bot_commits()) == 1


def test_app_opted_out_by_annotation_is_alerted_not_reverted(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    s = scenario().start()
    manifest_path = "environments/argocd/apps/plate-api-stg.yaml"
    manifest = yaml.safe_load(world.work.read(manifest_path))
    manifest["metadata"]["annotations"]["sync-watcher.io/auto-revert"] = "false"
    world.work.commit("plate-api-stg: no auto-revert", {manifest_path: yaml.safe_dump(manifest)}, "Platform Team")
    world.work.push()
    wait_for(
        lambda: "sync-watcher.io/auto-revert" in s.d.fleet.app_context("plate-api-stg").annotations,
        what="annotation seen",
    )
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    decision = wait_for(lambda: s.decision("plate-api-stg"), what="a decision")
    assert (decision.action, decision.rule) == ("alert", "opted_out")
    assert decision.evidence["blame"]["culprits"][0]["sha"] == bad  # the alert still names the culprit
    assert s.remote_log()[0][0] == bad and not s.revert_rows()


def test_dry_run_records_the_revert_and_pushes_nothing(scenario: Callable[..., Scenario]) -> None:
    s = scenario(mode="dry-run").start()
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    row = wait_for(lambda: s.revert_rows("dry_run"), what="dry-run recorded")[0]
    assert row.culprits == (bad,) and row.base_sha == bad
    assert 'Revert "plate-api-stg: scale to -1"' in row.detail["message"]
    assert f"Sync-Watcher-Reverts: {bad}" in row.detail["message"]
    assert "values-stg.yaml" in row.detail["diffstat"]
    assert s.remote_log()[0][0] == bad and not s.bot_commits()


def _push_first_during_revert(s: Scenario, monkeypatch: pytest.MonkeyPatch, change: Callable[[], str]) -> list[str]:
    """Let someone else push right after the watcher read the remote head for its revert (once)."""
    pushed: list[str] = []
    original = RevertWorktree._worktree

    def racing(self: RevertWorktree, repo: Any, base: str) -> Any:
        tree = original(self, repo, base)
        if not pushed:
            pushed.append(change())
            s.world.work.push()
        return tree

    monkeypatch.setattr(RevertWorktree, "_worktree", racing)
    return pushed


def test_concurrent_push_during_the_revert_keeps_their_commit(
    scenario: Callable[..., Scenario], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = scenario().start()
    theirs = _push_first_during_revert(
        s, monkeypatch, lambda: s.commit("plate-web-stg: bump to 1.26.0", {"plate-web-stg": ("image.tag", "1.26.0")})
    )
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.detail["attempts"] == 2 and row.base_sha == theirs[0]
    assert [sha for sha, _, _ in s.remote_log()[:3]] == [row.revert_sha, theirs[0], bad]
    assert yaml.safe_load(s.remote_file(values_path("plate-web-stg")))["image"]["tag"] == "1.26.0"
    assert yaml.safe_load(s.remote_file(values_path("plate-api-stg")))["replicaCount"] == 1


def test_conflicting_revert_aborts_cleanly_and_asks_for_a_human(
    scenario: Callable[..., Scenario], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = scenario().start()
    theirs = _push_first_during_revert(
        s, monkeypatch, lambda: s.commit("plate-api-stg: -2 then", {"plate-api-stg": ("replicaCount", -2)})
    )
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    row = wait_for(lambda: s.revert_rows("conflict"), what="conflict recorded")[0]
    assert row.culprits == (bad,) and row.detail["needs_human"] is True
    assert values_path("plate-api-stg") in row.detail["files"]
    assert s.remote_log()[0][0] == theirs[0] and not s.bot_commits()
    tree = s.d.repo.worktree_path
    status = subprocess.run(["git", "-C", str(tree), "status", "--porcelain"], capture_output=True, text=True)
    assert status.stdout == "" and not (Path(s.d.repo.path) / "sequencer").exists()
    api = httpx.get(f"http://127.0.0.1:{s.d.http.port}/api/incidents?app=plate-api-stg").json()["incidents"]
    assert any(i["needs_human"] for i in api)


def test_rate_limit_opens_the_circuit_and_resume_closes_it(scenario: Callable[..., Scenario]) -> None:
    s = scenario(max_reverts_per_hour=1).start()
    s.push("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    first = wait_for(lambda: s.revert_rows("pushed"), what="first revert")[0]
    wait_for(lambda: s.healthy_on("plate-api-stg", first.revert_sha), what="api healthy")
    second = s.push("plate-web-stg: scale to -1", {"plate-web-stg": ("replicaCount", -1)})
    decision = wait_for(lambda: s.decision("plate-web-stg"), what="decision on web")
    assert (decision.action, decision.rule) == ("alert", "rate_limit")
    assert len(s.bot_commits()) == 1 and s.remote_log()[0][0] == second
    metrics = s.d.watcher.metrics.registry
    wait_for(lambda: metrics.get_sample_value("sync_watcher_revert_circuit_open") == 1, what="circuit gauge")
    url = f"http://127.0.0.1:{s.d.http.port}/api/resume"
    assert s.settings.http.admin_token is not None
    admin = {"Authorization": f"Bearer {s.settings.http.admin_token.get_secret_value()}"}
    assert httpx.post(url, json={"circuit": True}, headers=admin).json()["circuit_closed"] is True
    wait_for(lambda: metrics.get_sample_value("sync_watcher_revert_circuit_open") == 0, what="circuit closed")


def test_revert_that_does_not_heal_suspends_the_app(world: SimWorld, scenario: Callable[..., Scenario]) -> None:
    def registry_loses_old_tag(e: Event) -> None:
        if e.kind is EventKind.DEGRADED and e.app == "plate-api-stg":
            world.controller.cluster.images[f"{REGISTRY}/plate-api"].pop("2.4.0", None)

    s = scenario(verify_deadline_seconds=4.0).start(before=registry_loses_old_tag)
    bad = s.push("plate-api-stg: image 9.9.9", {"plate-api-stg": ("image.tag", "9.9.9")})
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (bad,)
    wait_for(lambda: "plate-api-stg" in s.d.store.audit.suspended(), timeout=120, what="app suspended")
    assert s.d.store.audit.reverts()[0].verify_result == "not_healed"
    again = s.push("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    wait_for(lambda: s.decision("plate-api-stg", "suspended"), timeout=120, what="suspended decision")
    assert len(s.bot_commits()) == 1 and s.remote_log()[0][0] == again
    api = f"http://127.0.0.1:{s.d.http.port}"
    explained = CliRunner().invoke(main, ["explain", "plate-api-stg", "--url", api])
    assert explained.exit_code == 0 and "ALERT (suspended)" in explained.output and "SUSPENDED" in explained.output
    assert "sync-watcher resume APP" in explained.output  # what to do, in words the operator can act on
    assert s.settings.http.admin_token is not None
    token = {"WATCHER_HTTP__ADMIN_TOKEN": s.settings.http.admin_token.get_secret_value()}
    resumed = CliRunner().invoke(main, ["resume", "plate-api-stg", "--url", api], env=token)
    assert resumed.exit_code == 0 and "plate-api-stg: resumed" in resumed.output
    assert "plate-api-stg" not in s.d.store.audit.suspended()


def test_kill_9_between_push_and_record_never_reverts_twice(world: SimWorld, tmp_path: Path) -> None:
    state = tmp_path / "state"
    base = world.watcher_settings(state, poll_seconds=0.5, grace_seconds=0.5)
    env = os.environ | {
        "WATCHER_ARGOCD__URL": world.argocd_url,
        "WATCHER_ARGOCD__LIST_INTERVAL_SECONDS": "0.5",
        "WATCHER_GIT__URL": world.repo_url,
        "WATCHER_GIT__CLONE_DIR": str(base.git.clone_dir),
        "WATCHER_GIT__POLL_INTERVAL_SECONDS": "0.5",
        "WATCHER_STORE__URL": base.store.url,
        "WATCHER_HTTP__HOST": "127.0.0.1",
        "WATCHER_HTTP__PORT": "0",
        "WATCHER_REVERT__MODE": "push",
        "WATCHER_LOG__FORMAT": "json",
    }
    pidfile = tmp_path / "watcher.pid"
    hook = world.root / "remotes" / "gitops.git" / "hooks" / "post-receive"
    # The remote has taken the push; the watcher dies before it can write down that it pushed.
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  if [ "$(git log -1 --format=%an "$new")" = sync-watcher ]; then\n'
        f'    kill -9 "$(cat {pidfile})"; rm -f "$0"\n  fi\ndone\n'
    )
    hook.chmod(0o755)

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        pidfile.write_text(str(proc.pid))
        return proc

    first = start()
    try:
        from watcher.store import Store

        store = Store(base.store.url)
        wait_for(lambda: len(store.detection.deployments()) >= 9, timeout=120, what="initial deploys")
        work = world.work
        path = values_path("plate-api-stg")
        bad = work.commit("plate-api-stg: scale to -1", {path: work.set_value(path, "replicaCount", -1)}, "Dev Two")
        work.push()
        assert first.wait(180) == -signal.SIGKILL
        rows = store.audit.reverts()
        assert [r.state for r in rows] == ["started"]  # intent recorded, outcome never written
        second = start()
        try:
            done = wait_for(
                lambda: store.audit.reverts(states=(RevertState.PUSHED,)), timeout=120, what="revert reconciled"
            )[0]
            assert done.id == rows[0].id and done.detail["reconciled"]
            log = subprocess.run(
                ["git", "-C", str(hook.parent.parent), "log", "--format=%an%x1f%B%x1e", "main"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            reverts = [r for r in log.split("\x1e") if f"Sync-Watcher-Reverts: {bad}" in r]
            assert len(reverts) == 1
            wait_for(lambda: store.audit.reverts()[0].verify_result == "restored", timeout=120, what="restored")
            assert len(store.audit.reverts()) == 1
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(15)
    finally:
        if first.poll() is None:
            first.kill()
