"""What Argo CD really shows, on real git: a render error names no commit, and a list cannot carry a multi-source
app's revisions (docs/argocd-conformance.md). Each test asserts the exact set of reverted commits and the rule.

- A render error leaves `sync.revision` at the unresolved targetRevision ("main", Argo CD 3.2+) or empty (before):
  argo-cd 37ee0097 controller/state.go:696-708,1101-1106. The watcher blames the commits since the app's last good
  revision, up to the branch head, that touched what the app renders.
- The list's `fields=` cannot select `status.sync.revisions` (pkg/apiclient/application/forwarder_overwrite.go
  :29-87): a multi-source app's recovery is confirmed by a GET.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import yaml

from tests.support.multi_source import make_multi_source
from tests.support.revert_world import Scenario
from tests.support.waiting import wait_for
from watcher.domain import EventKind, VerifyResult
from watcher.sim.world import SimWorld

API = "plate-api-stg"
MULTI_APP = "plate-cache-stg"
API_VALUES = "helm/applications/plate-api/values-stg.yaml"
BROKEN_YAML = "replicaCount: [1\nimage:\n  pullPolicy: Always\n"


def reverted(s: Scenario) -> set[str]:
    return {sha for row in s.revert_rows() for sha in row.culprits}


@pytest.mark.parametrize(
    ("shown", "unresolved_text"), [("main", True), ("", False)], ids=["argocd-3.2+-main", "argocd-before-3.2-empty"]
)
def test_a_render_error_at_no_commit_is_blamed_on_the_apps_commits_since_its_last_good_revision(
    world: SimWorld, scenario: Callable[..., Scenario], shown: str, unresolved_text: bool
) -> None:
    world.controller.timings.revision_on_render_error = unresolved_text
    s = scenario().start()
    bad = world.work.commit("api: tune the replicas", {API_VALUES: BROKEN_YAML}, "Dev Two")
    # A good commit to another app lands after it: the branch head is not the culprit, and not reverted.
    web = s.commit("web: bump", {"plate-web-stg": ("image.tag", "1.26.0")})
    world.work.push()

    incident = wait_for(lambda: s.d.store.detection.incidents(app=API), what="the render error's incident")[0]
    assert (incident.kind, incident.revision or "") == (EventKind.MANIFEST_ERROR, shown)
    row = wait_for(lambda: s.revert_rows("pushed"), what="the revert", timeout=120)[0]
    assert reverted(s) == {bad} and bad != web
    decision = s.decision(API, "culprit_found")
    assert decision is not None and bad[:12] in decision.reason
    assert decision.evidence["failing_revision_from"] == {"argocd_showed": shown, "branch_head": web}
    assert yaml.safe_load(s.remote_file(API_VALUES))["replicaCount"] == 1
    assert yaml.safe_load(s.remote_file("helm/applications/plate-web/values-stg.yaml"))["image"]["tag"] == "1.26.0"
    # The bad commit never rendered, so nothing of it was applied: the revert's manifests are the live ones and Argo
    # CD shows it Synced with no sync run. That restores the live state; it proves nothing about the culprit.
    verified = wait_for(
        lambda: [r for r in s.revert_rows() if r.verify_result is VerifyResult.RESTORED], what="restored", timeout=120
    )
    assert [r.id for r in verified] == [row.id]


def test_a_second_render_error_at_main_is_a_new_incident(world: SimWorld, scenario: Callable[..., Scenario]) -> None:
    """ "main" names no commit: once the first error is gone, the next one at "main" is not deduplicated away."""
    s = scenario().start()
    first = world.work.commit("api: broken values", {API_VALUES: BROKEN_YAML}, "Dev Two")
    world.work.push()
    wait_for(lambda: reverted(s) == {first}, what="the first revert", timeout=120)
    wait_for(lambda: s.healthy_on(API, s.remote_log()[0][0]), what="healthy on the revert", timeout=120)
    world.work.git("pull", "-q", "--rebase", "origin", "main")
    second = world.work.commit("api: broken values again", {API_VALUES: BROKEN_YAML}, "Dev Three")
    world.work.push()
    wait_for(lambda: reverted(s) == {first, second}, what="the second revert", timeout=120)
    incidents = s.d.store.detection.incidents(app=API)
    assert [(i.kind, i.revision) for i in incidents] == [(EventKind.MANIFEST_ERROR, "main")] * 2


def test_a_multi_source_apps_recovery_is_confirmed_by_a_get_not_the_list(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    """Without the stream the watcher reads the list, where a multi-source app shows no revision: the revert of
    a bad image heals (a new sync, Succeeded), and only a GET can say it is Synced and Healthy on the revert."""
    s = scenario()
    s.settings = s.settings.model_copy(update={"argocd": s.settings.argocd.model_copy(update={"stream": False})})
    s.start()
    multi = make_multi_source(world, MULTI_APP)
    wait_for(lambda: _deployed(world, multi), what="the multi-source app deployed", timeout=120)
    bad = s.push("cache: an image the registry lacks", {MULTI_APP: ("image.tag", "9.9.9-missing")})
    row = wait_for(
        lambda: [r for r in s.revert_rows() if r.verify_result is not VerifyResult.PENDING],
        what="the revert verified",
        timeout=120,
    )[0]
    assert reverted(s) == {bad}
    assert row.verify_result is VerifyResult.HEALED
    assert s.app_state(MULTI_APP) == ("Synced", "Healthy", None)  # what the list shows: no revision


def _deployed(world: SimWorld, sha: str) -> bool:
    status = (world.controller.get(MULTI_APP) or {}).get("status", {})
    return sha in status["sync"].get("revisions", []) and status["health"]["status"] == "Healthy"
