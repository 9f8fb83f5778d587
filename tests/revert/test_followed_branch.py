"""The reverter on fakes: blame and the revert use the branch the app follows, and no other branch is touched."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from tests.support.reverter_rig import APP, BAD, PATHS, Rig
from watcher.domain import RevertState

MakeRig = Callable[..., Rig]


def following(r: Rig, target: str, *watched: str) -> Rig:
    """`APP` deploys `target` of the watched repo; the watcher watches `watched` (a new process on the same store)."""
    source = {"repoURL": r.settings.git.url, "path": PATHS[APP][0], "targetRevision": target}
    r.fleet.contexts[APP] = replace(r.fleet.contexts[APP], specs={APP: {"spec": {"sources": [source]}}})
    git = r.settings.git.model_copy(update={"branches": list(watched)})
    r.settings = r.settings.model_copy(update={"git": git})
    r.repo.watched, r.repo.remote_branches = watched, ("release-1.x",)
    r.restart()
    return r


@pytest.mark.parametrize(
    ("mode", "outcome"), [("push", RevertState.PUSHED), ("pull-request", RevertState.PULL_REQUEST_OPENED)]
)
def test_the_revert_goes_to_the_branch_the_app_follows(rig: MakeRig, mode: str, outcome: RevertState) -> None:
    r = following(rig(mode), "release-1.x", "main", "release-1.x")
    handled = r.reverter.handle(r.fail())

    assert (handled.rule, handled.outcome, handled.culprits) == ("culprit_found", outcome, (BAD,))
    [call] = r.repo.reverts
    assert call.onto == "release-1.x"
    if mode == "push":
        assert call.push_branch == "release-1.x"
    else:
        assert call.push_branch is not None and call.push_branch.startswith("sync-watcher/revert-")
        assert [base for _, base, _ in r.pulls.opened] == ["release-1.x"]
    [decision] = r.decisions(handled.incident)
    assert decision.evidence["branch"] == "release-1.x" and decision.reason.endswith("; revert on release-1.x")


def test_a_branch_nobody_watches_is_alerted_without_reading_its_history(rig: MakeRig) -> None:
    r = following(rig("push"), "release-1.x", "main")
    handled = r.reverter.handle(r.fail())

    assert (handled.action, handled.rule, handled.outcome) == ("alert", "unwatched_branch", None)
    assert r.repo.calls == ["sync"] and r.repo.reverts == []  # the fetch, and no blame of main's history
    assert ("alert_only", "unwatched_branch") in [(told.step, told.detail.rule) for told in r.told]
