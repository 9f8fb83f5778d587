"""Rules about the branch, on real git: which branch an app follows, a person's revert, a newer fix, an old commit.

Each test asserts the exact set of reverted commits (often none) and the rule the decision names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from tests.support.revert_world import Scenario
from tests.support.waiting import wait_for
from watcher.cli import main
from watcher.domain import DecisionRecord, Event, EventKind, Phase
from watcher.sim.gitops_repo import REGISTRY
from watcher.sim.world import SimWorld

BAD = ("replicaCount", -1)


def on_failure(app: str, act: Callable[[], None]) -> Callable[[Event], None]:
    """Runs `act` once, on the watcher's thread, when `app`'s sync failure is detected: before the reverter
    hears of it, as a person who was faster than the bot."""
    done: list[bool] = []

    def hook(e: Event) -> None:
        if e.app == app and e.kind is EventKind.SYNC_FAILED and not done:
            done.append(True)
            act()

    return hook


def git_read_only_when_asked(world: SimWorld) -> None:
    """From here on the simulated Argo CD reads git only when refreshed: at its 0.5 s poll, a person's push made
    when the failure is seen could deploy before the bot looks (at Argo CD's real 3-minute poll it would not).
    A copy of the timings: the default ones are shared by every world in this process."""
    world.controller.timings = replace(world.controller.timings, git_poll_seconds=3600)


def test_a_revert_made_by_a_person_is_deployed_not_reverted_again(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    s = scenario()

    def human_revert() -> None:
        world.work.git("-c", "user.name=Dev Three", "-c", "user.email=d3@plate.example", "revert", "--no-edit", "HEAD")
        world.work.push()

    s.start(before=on_failure("plate-api-stg", human_revert))
    git_read_only_when_asked(world)
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": BAD})
    world.controller.refresh()
    decision = wait_for(lambda: s.decision("plate-api-stg"), what="a decision")
    assert (decision.action, decision.rule) == ("alert", "undone_on_branch")
    world.controller.refresh()
    human = s.remote_log()[0]
    assert human[1] == "Dev Three" and human[2] == 'Revert "plate-api-stg: scale to -1"'
    assert bad in decision.reason or bad[:12] in decision.reason
    wait_for(lambda: s.healthy_on("plate-api-stg", human[0]), what="the person's revert deployed")
    assert s.bot_commits() == [] and s.revert_rows() == []  # reverted: nothing by the bot
    assert not s.d.store.detection.incidents(open_only=True)


def test_a_revert_of_the_revert_makes_the_culprit_live_again(world: SimWorld, tmp_path: object) -> None:
    from watcher.adapters.gitrepo import GitRepo
    from watcher.settings import GitSettings

    path = "helm/applications/plate-api/values-stg.yaml"
    bad = world.work.commit("api: scale to -1", {path: world.work.set_value(path, "replicaCount", -1)}, "Dev Two")
    world.work.git("-c", "user.name=Dev Three", "-c", "user.email=d3@x", "revert", "--no-edit", "HEAD")
    first_revert = world.work.git("rev-parse", "HEAD")
    world.work.push()
    repo = GitRepo(GitSettings(url=world.repo_url, clone_dir=world.root / "probe-clone"))
    repo.sync()
    assert repo.find_reverts([bad]) == {bad: first_revert}
    world.work.git("-c", "user.name=Dev Two", "-c", "user.email=d2@x", "revert", "--no-edit", "HEAD")
    world.work.push()
    repo.sync()
    assert repo.find_reverts([bad]) == {}  # re-applied: the culprit is live again


def test_a_newer_commit_to_the_failing_app_is_waited_for_not_reverted_on_top_of(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    s = scenario()

    def push_fix() -> None:
        # Two, not one: a commit that puts the old value back undoes the culprit by content (undone_on_branch).
        s.commit("plate-api-stg: two replicas", {"plate-api-stg": ("replicaCount", 2)}, "Dev Three")
        world.work.push()

    s.start(before=on_failure("plate-api-stg", push_fix))
    git_read_only_when_asked(world)
    s.push("plate-api-stg: scale to -1", {"plate-api-stg": BAD})
    world.controller.refresh()
    decision = wait_for(lambda: s.decision("plate-api-stg"), what="a decision")
    assert (decision.action, decision.rule) == ("wait", "fix_on_branch")
    world.controller.refresh()
    fix = s.remote_log()[0]
    assert fix[1] == "Dev Three"
    wait_for(lambda: s.healthy_on("plate-api-stg", fix[0]), what="the fix deployed")
    wait_for(lambda: not s.d.store.detection.incidents(open_only=True), what="the incident closed")
    assert s.bot_commits() == [] and s.revert_rows() == []


def test_a_sync_failure_of_an_old_commit_is_still_its_own(
    world: SimWorld, scenario: Callable[..., Scenario], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit that waited longer than the attribution window (a sync window, a paused app, a weekend) and
    then fails to sync is still the cause: the window is for late runtime trouble only."""
    s = scenario()
    s.settings = s.settings.model_copy(
        update={"detection": s.settings.detection.model_copy(update={"attribution_window_seconds": 60})}
    )
    s.start()
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z")
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": BAD})
    monkeypatch.delenv("GIT_AUTHOR_DATE")
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (bad,)
    decision = s.decision("plate-api-stg", "culprit_found")
    assert decision is not None and decision.action == "revert"


def edit_application(world: SimWorld, app: str, edit: Callable[[dict[str, Any]], None], who: str) -> None:
    """Change an Application manifest in the app-of-apps directory, as the platform team would."""
    path = f"environments/argocd/apps/{app}.yaml"
    manifest = yaml.safe_load(world.work.read(path))
    edit(manifest)
    world.work.commit(f"{app}: {who}", {path: yaml.safe_dump(manifest)}, "Platform Team")
    world.work.push()


def test_an_app_without_automated_sync_gets_a_proposed_revert_not_a_push(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    s = scenario().start()
    edit_application(world, "plate-api-stg", lambda m: m["spec"]["syncPolicy"].pop("automated"), "manual sync only")
    wait_for(lambda: s.d.fleet.app_context("plate-api-stg").specs, what="the manifest change seen")
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": BAD})
    wait_for(lambda: s.app_state("plate-api-stg")[0] == "OutOfSync", what="Argo CD sees the change, does not sync")
    # A person presses Sync: it fails on the bad commit, and Argo CD will not deploy anything by itself.
    answer = httpx.post(f"{world.argocd_url}/api/v1/applications/plate-api-stg/sync", json={}, timeout=10)
    assert answer.status_code == 200, answer.text
    decision = wait_for(lambda: s.decision("plate-api-stg"), what="a decision")
    assert (decision.action, decision.rule) == ("alert", "no_automated_sync")
    assert bad[:12] in decision.reason and decision.evidence["initiated_by"] == "admin"
    assert s.bot_commits() == [] and s.revert_rows() == []


def test_an_app_pinned_to_a_tag_never_reverts_the_branch(world: SimWorld, scenario: Callable[..., Scenario]) -> None:
    s = scenario().start()
    world.work.git("tag", "-f", "api-stable", "HEAD")
    world.work.git("push", "-q", "-f", "origin", "api-stable")
    edit_application(
        world, "plate-api-stg", lambda m: m["spec"]["source"].update(targetRevision="api-stable"), "pin to api-stable"
    )
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": BAD})
    # The release manager moves the tag onto the bad commit: Argo CD deploys the tag, and the sync fails.
    world.work.git("tag", "-f", "api-stable", bad)
    world.work.git("push", "-q", "-f", "origin", "api-stable")
    decision = wait_for(lambda: s.decision("plate-api-stg"), timeout=120, what="a decision")
    assert (decision.action, decision.rule) == ("alert", "pinned_revision")
    assert "api-stable" in decision.reason
    assert s.bot_commits() == [] and s.revert_rows() == []


@pytest.mark.parametrize(
    ("persisted", "kind", "rule"),
    [
        # Argo CD 3.x: each resource's health is only in the resource tree; the detector cannot tell, the
        # reverter reads the tree and the policy says no.
        (False, EventKind.DEGRADED, "untouched_by_sync"),
        # Before 3.0 (or --persist-resource-health): status.resources says it, the detector already knows.
        (True, EventKind.DEGRADED_UNATTRIBUTED, "not_attributed"),
    ],
    ids=["health-in-resource-tree", "health-in-status"],
)
def test_degraded_after_a_sync_that_did_not_change_what_degraded_is_not_blamed_on_it(
    world: SimWorld, scenario: Callable[..., Scenario], persisted: bool, kind: EventKind, rule: str
) -> None:
    """A config-only commit deploys (the Deployment is untouched); minutes later the registry loses the
    running image and the Deployment degrades. The commit did not cause it: alert, never revert."""
    world.controller.cluster.persist_resource_health = persisted
    s = scenario()
    s.start()
    change = s.push("plate-web-stg: greeting", {"plate-web-stg": ("config.greeting", "hello")})
    wait_for(lambda: s.healthy_on("plate-web-stg", change), what="the config change deployed")
    del world.controller.cluster.images[f"{REGISTRY}/plate-web"]["1.25.0"]
    world.controller.cluster_changed()
    incident = wait_for(lambda: s.d.store.detection.incidents(app="plate-web-stg"), what="an incident")[0]
    assert incident.kind is kind and incident.revision == change
    decision = wait_for(lambda: s.decision("plate-web-stg"), what="a decision")
    assert (decision.action, decision.rule) == ("alert", rule)
    assert "Deployment" in (incident.reason if persisted else decision.reason)
    assert s.bot_commits() == [] and s.revert_rows() == []


def test_a_failed_manual_sync_of_an_older_revision_is_not_the_branchs_failure(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """Rule 4: someone syncs (rolls back to) an older, bad commit by hand and that sync fails; nothing was
    applied and the app stays Synced and Healthy on the branch head. Argo CD keeps showing the failed
    operation, but it is neither the branch's failure nor an incident: nothing is reverted, nobody is paged.
    (When such a sync leaves the app out of sync, the decision is `manual_sync`: tests/core/test_policy.py.)"""
    s = scenario().start()
    world.work.git("pull", "-q", "--rebase", "origin", "main")
    old_bad = s.commit("plate-api-stg: scale to -1", {"plate-api-stg": BAD})
    head = s.commit("plate-api-stg: one replica after all", {"plate-api-stg": ("replicaCount", 1)})
    world.work.push()  # one push: Argo CD only ever sees the good head
    wait_for(lambda: s.healthy_on("plate-api-stg", head), what="the head deployed")
    answer = httpx.post(
        f"{world.argocd_url}/api/v1/applications/plate-api-stg/sync", json={"revision": old_bad}, timeout=10
    )
    assert answer.status_code == 200, answer.text

    def failed_manual_sync_seen() -> bool:
        last = s.d.fleet.trackers["plate-api-stg"].last
        return last is not None and last.phase is Phase.FAILED and last.operation_revision == old_bad

    wait_for(failed_manual_sync_seen, what="the failed manual sync seen")
    assert s.d.fleet.trackers["plate-api-stg"].last.initiated_by == "admin"  # type: ignore[union-attr]
    s.d.watcher.poll_apps()  # one more full list after it: still nothing
    assert s.d.store.detection.incidents(app="plate-api-stg") == []
    assert s.healthy_on("plate-api-stg", head)
    assert s.bot_commits() == [] and s.revert_rows() == []


@pytest.mark.parametrize("narrow", [False, True], ids=["all-candidates", "narrowed"])
def test_when_a_person_reverted_one_of_two_culprits_the_rest_is_theirs(
    world: SimWorld, scenario: Callable[..., Scenario], narrow: bool
) -> None:
    """Rule 5, in part: two commits changed the failing app; a person reverts one of them before the bot
    decides. Without narrowing the bot does not guess about the other: alert naming both, revert nothing.
    With it, Argo CD's error names the reverted commit alone: it is undone on the branch, nothing to revert."""
    s = scenario(narrow=narrow)

    def human_revert_of_the_first() -> None:
        world.work.git("-c", "user.name=Dev Three", "-c", "user.email=d3@x", "revert", "--no-edit", first)
        world.work.push()

    s.start(before=on_failure("plate-api-stg", human_revert_of_the_first))
    git_read_only_when_asked(world)
    world.work.git("pull", "-q", "--rebase", "origin", "main")
    first = s.commit("plate-api-stg: scale to -1", {"plate-api-stg": BAD})
    manifest = "environments/argocd/apps/plate-api-stg.yaml"
    labelled = world.work.set_value(manifest, "metadata.labels", {"team": "api"})
    second = world.work.commit("plate-api-stg: team label", {manifest: labelled}, "Dev Two")
    world.work.push()
    world.controller.refresh()
    decision = wait_for(lambda: s.decision("plate-api-stg"), what="a decision")
    rule = "undone_on_branch" if narrow else "partly_undone_on_branch"
    assert (decision.action, decision.rule) == ("alert", rule)
    assert first[:12] in decision.reason
    assert set(decision.evidence["undone_on_branch"]) == {first}  # type: ignore[arg-type]
    blamed = {first} if narrow else {first, second}
    assert {c["sha"] for c in decision.evidence["blame"]["culprits"]} == blamed  # type: ignore[index]
    human = s.remote_log()[0]
    assert human[1] == "Dev Three"
    world.controller.refresh()
    wait_for(lambda: s.healthy_on("plate-api-stg", human[0]), what="the person's revert deployed")
    assert s.bot_commits() == [] and s.revert_rows() == []


# -- which branch an app follows (its sources' targetRevision) -------------------------------------------------
def watching(s: Scenario, *branches: str) -> Scenario:
    """The scenario's watcher watches `branches` (WATCHER_GIT__BRANCHES)."""
    s.settings = s.settings.model_copy(update={"git": s.settings.git.model_copy(update={"branches": list(branches)})})
    return s


def follow(world: SimWorld, app: str, target: str) -> None:
    edit_application(world, app, lambda m: m["spec"]["source"].update(targetRevision=target), f"follow {target}")


def push_to(s: Scenario, branch: str, subject: str, changes: dict[str, tuple[str, object]]) -> str:
    """A developer commits to `branch` (not main) and pushes it."""
    work = s.world.work
    work.git("fetch", "-q", "origin")
    work.git("checkout", "-q", "-B", branch, f"origin/{branch}")
    try:
        s.commit(subject, changes)
        work.git("push", "-q", "origin", f"HEAD:{branch}")
        return work.git("rev-parse", "HEAD")
    finally:
        work.git("checkout", "-q", "main")


def kinds(s: Scenario, app: str) -> set[EventKind]:
    return {i.kind for i in s.d.store.detection.incidents(app=app)}


def test_an_app_following_a_release_branch_is_reverted_on_that_branch_and_main_is_untouched(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    world.work.git("push", "-q", "origin", "HEAD:refs/heads/release-1.x")
    s = watching(scenario(), "main", "release-1.x").start()
    follow(world, "plate-api-stg", "release-1.x")
    release = s.remote_log("release-1.x")[0][0]
    wait_for(lambda: s.healthy_on("plate-api-stg", release), what="the app deployed from release-1.x")
    main_before = s.remote_log("main")
    bad = push_to(s, "release-1.x", "plate-api-stg: scale to -1", {"plate-api-stg": BAD})
    row = wait_for(lambda: s.revert_rows("pushed"), timeout=120, what="revert pushed")[0]
    assert row.culprits == (bad,)
    revert, culprit = s.remote_log("release-1.x")[:2]
    assert (revert[0], revert[1], culprit[0]) == (row.revert_sha, s.settings.revert.author_name, bad)
    assert s.remote_log("main") == main_before  # nothing of it reached main
    decision = s.decision("plate-api-stg", "culprit_found")
    assert decision is not None and decision.action == "revert"
    assert "revert on release-1.x" in decision.reason
    assert decision.evidence["branch"] == "release-1.x" and decision.evidence["target_revisions"] == ["release-1.x"]
    assert kinds(s, "plate-api-stg") == {EventKind.SYNC_FAILED}
    wait_for(lambda: s.healthy_on("plate-api-stg", revert[0]), what="the revert deployed from release-1.x")


def test_an_app_following_a_branch_nobody_watches_is_alerted_never_reverted(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    world.work.git("push", "-q", "origin", "HEAD:refs/heads/release-1.x")
    s = scenario().start()  # watches main only
    follow(world, "plate-api-stg", "release-1.x")
    main_before = s.remote_log("main")
    bad = push_to(s, "release-1.x", "plate-api-stg: scale to -1", {"plate-api-stg": BAD})
    decision: DecisionRecord = wait_for(lambda: s.decision("plate-api-stg"), timeout=120, what="a decision")
    assert (decision.action, decision.rule) == ("alert", "unwatched_branch")
    assert decision.reason == (
        "plate-api-stg follows branch 'release-1.x', which is not in WATCHER_GIT__BRANCHES: nothing is reverted there"
    )
    assert kinds(s, "plate-api-stg") == {EventKind.SYNC_FAILED}
    assert s.d.store.detection.incidents(app="plate-api-stg")[0].revision == bad
    assert s.revert_rows() == [] and s.bot_commits("release-1.x") == [] and s.remote_log("main") == main_before
    explained = CliRunner().invoke(main, ["explain", "plate-api-stg", "--url", f"http://127.0.0.1:{s.d.http.port}"])
    assert explained.exit_code == 0 and "ALERT (unwatched_branch)" in explained.output
    assert "add it to WATCHER_GIT__BRANCHES" in explained.output  # what to do, in words the operator can act on
    assert "branch:   release-1.x (targetRevision release-1.x)" in explained.output


def test_an_app_following_head_is_reverted_on_the_remotes_default_branch(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """HEAD is the remote's default branch (main here), asked of the remote, not the first watched branch."""
    world.work.git("push", "-q", "origin", "HEAD:refs/heads/release-1.x")
    s = watching(scenario(), "release-1.x", "main").start()
    follow(world, "plate-api-stg", "HEAD")
    followed = s.remote_log("main")[0][0]
    wait_for(lambda: s.healthy_on("plate-api-stg", followed), what="the app deployed from HEAD")
    release_before = s.remote_log("release-1.x")
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": BAD})
    row = wait_for(lambda: s.revert_rows("pushed"), timeout=120, what="revert pushed")[0]
    assert row.culprits == (bad,)
    assert s.remote_log("main")[0][0] == row.revert_sha and s.remote_log("main")[1][0] == bad
    assert s.remote_log("release-1.x") == release_before
    decision = s.decision("plate-api-stg", "culprit_found")
    assert decision is not None and "revert on main" in decision.reason
    assert decision.evidence["branch"] == "main" and decision.evidence["head_assumed"] is False
    assert decision.evidence["head"] == "HEAD is the remote's default branch main"
    assert kinds(s, "plate-api-stg") == {EventKind.SYNC_FAILED}
