"""Git content, not git words: hostile and stale commits on real git. Each test asserts the exact set of reverted
commits and the rule; every one of them failed on main before issue 25 (see the commit messages)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import yaml

from tests.scenarios.test_branch_rules import git_read_only_when_asked, on_failure
from tests.support.revert_world import Scenario, values_path
from tests.support.waiting import wait_for
from watcher.domain import RevertMode
from watcher.sim.world import SimWorld
from watcher.store import Store
from watcher.store.schema import incidents as incidents_table

BAD = ("replicaCount", -1)
BOT = {"name": "sync-watcher", "email": "sync-watcher@noreply.invalid"}  # the default revert identity


def as_bot(world: SimWorld, message: str, files: dict[str, str]) -> str:
    """A commit authored and committed with the bot's name and email: what anyone can type into git config."""
    for rel, text in files.items():
        (world.work.path / rel).parent.mkdir(parents=True, exist_ok=True)
        (world.work.path / rel).write_text(text, encoding="utf-8")
    world.work.git("add", "-A")
    who = ["-c", f"user.name={BOT['name']}", "-c", f"user.email={BOT['email']}"]
    world.work.git(*who, "commit", "-q", "-m", message)
    return world.work.git("rev-parse", "HEAD")


def test_an_old_revert_of_another_app_with_incident_1_is_not_taken_for_this_incidents_revert(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """After a store reset incident numbers start at 1 again: weeks-old revert #1 of another app, made by the bot,
    is on the branch. The new incident 1 pushes its own revert (main adopted the old one and pushed nothing)."""
    s = scenario()
    web = values_path("plate-web-stg")
    old_bad = s.commit("plate-web-stg: bump to 9.9", {"plate-web-stg": ("image.tag", "9.9")})
    world.work.git("revert", "--no-commit", old_bad)
    old_revert = as_bot(
        world,
        'Revert "plate-web-stg: bump to 9.9"\n\nSync-Watcher-Reverts: ' + old_bad + "\nSync-Watcher-Incident: 1\n",
        {web: world.work.read(web)},
    )
    world.work.push()
    s.start()
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": BAD})
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert s.d.store.detection.incident(row.incident_id) is not None and row.incident_id == 1
    assert row.culprits == (bad,) and row.revert_sha != old_revert
    assert s.remote_log()[0][0] == row.revert_sha and not row.detail.get("adopted")
    assert yaml.safe_load(s.remote_file(values_path("plate-api-stg")))["replicaCount"] == 1
    assert [c[0] for c in s.bot_commits()] == [row.revert_sha, old_revert]


def test_a_commit_that_only_says_it_reverts_the_culprit_does_not_stop_the_revert(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """ "This reverts commit <bad>" on a commit that adds an unrelated file: the change is still on the branch."""
    s = scenario()
    bad: list[str] = []

    def claim() -> None:
        claimed = world.work.git("rev-parse", "HEAD")
        bad.append(claimed)
        world.work.commit(f"Revert it\n\nThis reverts commit {claimed}.", {"docs/NOTES.md": "hello\n"}, "Mallory")
        world.work.push()

    s.start(before=on_failure("plate-api-stg", claim))
    git_read_only_when_asked(world)
    s.push("plate-api-stg: scale to -1", {"plate-api-stg": BAD})
    world.controller.refresh()
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (bad[0],)
    decision = s.decision("plate-api-stg", "culprit_found")
    assert decision is not None and s.decision("plate-api-stg", "undone_on_branch") is None
    assert yaml.safe_load(s.remote_file(values_path("plate-api-stg")))["replicaCount"] == 1


def test_a_bad_commit_carrying_a_reverts_trailer_is_still_reverted(scenario: Callable[..., Scenario]) -> None:
    s = scenario().start()
    earlier = s.remote_log()[0][0]
    bad = s.push(f"plate-api-stg: scale to -1\n\nSync-Watcher-Reverts: {earlier}", {"plate-api-stg": BAD})
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (bad,)
    assert s.decision("plate-api-stg", "culprit_is_revert") is None


def test_a_real_revert_that_breaks_the_app_is_not_reverted_back(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """The other side of content checks: a commit whose content does undo the commit its trailer names is a
    revert (culprit_is_revert: fix forward by hand), whoever wrote it."""
    s = scenario().start()
    fix = s.push("plate-api-stg: scale to -1 (the fix of the moment)", {"plate-api-stg": BAD})
    row = wait_for(lambda: s.revert_rows("pushed"), what="the bad commit reverted")[0]
    assert row.culprits == (fix,)
    world.work.git("pull", "-q", "--rebase", "origin", "main")
    world.work.git("revert", "--no-commit", row.revert_sha)
    path = values_path("plate-api-stg")
    again = as_bot(
        world, f"Revert the revert\n\nSync-Watcher-Reverts: {row.revert_sha}\n", {path: world.work.read(path)}
    )
    world.work.push()
    decision = wait_for(lambda: s.decision("plate-api-stg", "culprit_is_revert"), timeout=120, what="a decision")
    assert again[:12] in decision.reason and len(s.revert_rows()) == 1


def test_a_commit_with_the_bots_name_and_the_incidents_trailer_is_not_adopted_unless_it_undoes_the_culprit(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """What a kill -9 between "intent stored" and "pushed" leaves, then a commit that claims to be that revert:
    the bot's name and email, the incident's trailer (its number and its uid), content that undoes nothing."""
    s = scenario()
    store = Store(s.settings.store.url)
    now = datetime.now(UTC)
    bad = s.commit("plate-api-stg: scale to 2", {"plate-api-stg": ("replicaCount", 2)})  # deploys: start() waits
    uid = "0123456789abcdef"
    with store.engine.begin() as conn:
        row = {"app": "plate-api-stg", "kind": "sync_failed", "revision": bad, "detected_at": now, "reason": "r"}
        row |= {"uid": uid} if "uid" in incidents_table.c else {}
        incident_id = conn.execute(
            incidents_table.insert(), row | {"evidence": {}, "resolution": ""}
        ).inserted_primary_key[0]
    revert_id = store.audit.start_revert(incident_id, "plate-api-stg", RevertMode.PUSH, [bad], now)
    store.close()
    trailers = f"Sync-Watcher-Reverts: {bad}\nSync-Watcher-Incident: {incident_id}\nSync-Watcher-Incident: {uid}\n"
    forged = as_bot(world, f'Revert "plate-api-stg: scale to 2"\n\n{trailers}', {"FORGED": "x\n"})
    world.work.push()
    s.start()
    reconciled = wait_for(
        lambda: [r for r in s.d.store.audit.reverts() if r.id == revert_id and r.state != "started"], what="reconcile"
    )[0]
    assert reconciled.revert_sha != forged and reconciled.state != "pushed"
