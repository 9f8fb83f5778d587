"""The reverter's git read: a spec change that no sync exercised stays a candidate (Argo CD shows the app Synced at
a commit that changed only its Application, with no sync run: controller/appcontroller.go autoSync compares the
rendered state), unless it was reverted within the range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from watcher.core.blame import AppSources
from watcher.domain import AppContext, ChangedCommit, Commit
from watcher.revert.reads import IncidentReader

T = datetime(2026, 12, 8, tzinfo=UTC)
MANIFEST = "environments/argocd/apps/plate-api-stg.yaml"
CHART = "helm/applications/plate-api"
DEPLOYED, OPTION, REVERTED, REVERT, GOOD = (c * 40 for c in "01234")
SPECS = {
    "plate-api-stg": {"spec": {"sources": [{"path": CHART, "helm": {"valueFiles": ["values-stg.yaml"]}}]}},
    "app-of-apps": {"spec": {"sources": [{"path": "environments/argocd/apps"}]}},
}
PATHS = {"plate-api-stg": (CHART, MANIFEST), "app-of-apps": ("environments/argocd/apps",)}
CONTEXT = AppContext("plate-api-stg", "plate-api-stg", "argocd", {}, None, (DEPLOYED, GOOD), SPECS, PATHS)


def changed(sha: str, reverts: tuple[str, ...] = ()) -> ChangedCommit:
    return ChangedCommit(Commit(sha, "Dev", T, sha[:1], reverts=reverts), (MANIFEST,))


class Repo:
    """What the read asks git: the commits to the manifest in a range, ancestry, reverts on the branch."""

    def __init__(self, found: list[ChangedCommit], reverts: dict[str, str]):
        self.found, self.reverts = found, reverts
        self.asked: list[tuple[str, str, tuple[str, ...]]] = []

    def changes(self, since: str, until: str, paths: Any, limit: int) -> tuple[list[ChangedCommit], bool]:
        self.asked.append((since, until, tuple(paths)))
        return self.found, False

    def is_ancestor(self, a: str, b: str) -> bool:
        return True

    def find_reverts(
        self, shas: Any, branch: str | None = None, paths: Any = (), at: str | None = None
    ) -> dict[str, str]:
        return {s: r for s, r in self.reverts.items() if s in shas}

    def confirmed_reverts(self, commit: Commit) -> tuple[str, ...]:
        return commit.reverts  # the content check itself is GitRepo's (tests/scenarios/test_trust_scenarios.py)


@pytest.mark.parametrize(
    ("found", "reverts", "history", "kept"),
    [
        pytest.param([changed(OPTION)], {}, (DEPLOYED,), (OPTION,), id="a-sync-option-no-sync-used"),
        pytest.param([changed(REVERT), changed(REVERTED)], {REVERTED: REVERT}, (DEPLOYED,), (), id="bump-and-revert"),
        pytest.param([changed(REVERT, (REVERTED,))], {}, (DEPLOYED,), (), id="a-bot-revert"),
        pytest.param([changed(OPTION)], {}, (GOOD,), (), id="deployed-is-the-last-good"),
        pytest.param([changed(OPTION)], {}, (), (), id="no-history"),
    ],
)
def test_spec_changes_since_the_last_deploy_stay_candidates(
    found: list[ChangedCommit], reverts: dict[str, str], history: tuple[str, ...], kept: tuple[str, ...]
) -> None:
    repo = Repo(found, reverts)
    reader = IncidentReader(None, None, repo, None, 3)  # type: ignore[arg-type]
    got = reader.unexercised(CONTEXT, AppSources(PATHS["plate-api-stg"], (CHART,)), GOOD, history, "f" * 40)
    assert tuple(c.commit.sha for c in got) == kept
    if repo.asked:  # only the Application's own file is asked about, between the deploy and the last good
        assert repo.asked == [(DEPLOYED, GOOD, (MANIFEST,))]
