"""Narrowing end to end: the simulator, a real git daemon, the daemon. Several commits changed the failing app,
a merge carried a good and a bad commit, one commit changed two apps: only what broke the app is reverted."""

from __future__ import annotations

from collections.abc import Callable

import yaml

from tests.support.revert_world import Scenario, values_path
from tests.support.waiting import wait_for
from watcher.sim.gitops_repo import REGISTRY

API, WEB = "plate-api-stg", "plate-web-stg"


def values(s: Scenario, app: str) -> dict[str, object]:
    return yaml.safe_load(s.remote_file(values_path(app)))


def test_of_two_commits_to_the_app_only_the_one_that_set_the_refused_value_is_reverted(
    scenario: Callable[..., Scenario],
) -> None:
    s = scenario().start()
    bad = s.commit("plate-api-stg: scale to -1", {API: ("replicaCount", -1)})
    path = values_path(API)  # newer, and good: a config change at the top of the same file (no conflict)
    good = s.world.work.commit(
        "plate-api-stg: team annotation", {path: "podAnnotations:\n  team: plate\n" + s.world.work.read(path)}
    )
    s.world.work.push()
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (bad,)
    assert [sha for sha, _, _ in s.remote_log()[:3]] == [row.revert_sha, good, bad]
    assert values(s, API)["replicaCount"] == 1 and values(s, API)["podAnnotations"] == {"team": "plate"}
    decision = s.decision(API, "culprit_found")
    assert decision is not None
    # The good commit's render leaves the Deployment as it was: the culprit rule (core/culprit.py) names the other.
    assert f"narrowed to {bad[:12]} (plate-api-stg: scale to -1): changed Deployment/{API} in the rendered output" in (
        decision.reason
    )
    assert decision.evidence["blame"]["named"].endswith("(seen in the render)")  # the Helm engine rendered both
    wait_for(lambda: s.healthy_on(API, row.revert_sha), what="app healthy on the revert, with the good bump")


def test_a_missing_image_names_the_commit_that_introduced_it(scenario: Callable[..., Scenario]) -> None:
    s = scenario().start()
    good = s.commit("plate-api-stg: one replica more", {API: ("replicaCount", 2)}, "Dev One")
    bad = s.commit("plate-api-stg: image 9.9.9", {API: ("image.tag", "9.9.9")})  # the registry has no 9.9.9
    s.world.work.push()
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (bad,) and values(s, API)["replicaCount"] == 2
    decision = s.decision(API, "culprit_found")
    assert decision is not None and f"introduced image {REGISTRY}/plate-api:9.9.9 in Deployment/{API}" in (
        decision.reason
    )
    assert good in [sha for sha, _, _ in s.remote_log()]


def test_in_a_merged_pull_request_only_the_bad_branch_commit_is_reverted(scenario: Callable[..., Scenario]) -> None:
    s = scenario().start()
    work = s.world.work
    work.git("checkout", "-q", "-b", "feature")
    good = s.commit("plate-api-stg: bump to 2.5.0", {API: ("image.tag", "2.5.0")}, "Dev One")
    bad = s.commit("plate-api-stg: memory in bananas", {API: ("resources.limits.memory", "12bananas")})
    work.git("checkout", "-q", "main")
    email = ["-c", "user.name=Reviewer", "-c", "user.email=reviewer@plate.example"]
    work.git(*email, "merge", "-q", "--no-ff", "-m", "Merge pull request #7 from feature", "feature")
    merge = work.git("rev-parse", "HEAD")
    work.push()
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (bad,)  # the branch commit, not the merge: the good bump stays
    revert = s.d.repo.commit(row.revert_sha)
    assert revert is not None and revert.reverts == (bad,) and revert.parents == (merge,)
    assert values(s, API)["image"] == {"pullPolicy": "Always", "tag": "2.5.0"}
    assert "resources" not in values(s, API)
    decision = s.decision(API, "culprit_found")
    assert decision is not None and f"in {bad[:12]} on the branch merged by {merge[:12]}" in decision.reason
    assert good in [sha for sha, _, _ in s.remote_log()]
    wait_for(lambda: s.healthy_on(API, row.revert_sha), what="app healthy on the revert")


def test_one_commit_to_two_apps_is_undone_only_for_the_app_it_broke(scenario: Callable[..., Scenario]) -> None:
    s = scenario().start()
    both = s.push("stg: web to 1.26.0, api to -1 replicas", {WEB: ("image.tag", "1.26.0"), API: ("replicaCount", -1)})
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (both,) and len(s.revert_rows()) == 1
    assert values(s, API)["replicaCount"] == 1
    assert values(s, WEB)["image"]["tag"] == "1.26.0"  # plate-web's change is kept
    assert s.remote_log()[0][0] == row.revert_sha
    body = row.detail["message"]
    assert f"Only its changes to {API} are undone; kept as they are: {values_path(WEB)}." in body
    decision = s.decision(API, "culprit_found")
    assert decision is not None and f"keeping {values_path(WEB)}" in decision.reason
    wait_for(lambda: s.healthy_on(API, row.revert_sha), what="api healthy on the revert")
    wait_for(lambda: s.healthy_on(WEB, row.revert_sha), what="web healthy on the revert, still on 1.26.0")


def test_when_nothing_narrows_every_candidate_is_reverted_and_the_reason_says_so(
    scenario: Callable[..., Scenario],
) -> None:
    s = scenario().start()
    # The container is OOM-killed: Argo CD's message names no image, field or file, so neither commit is named.
    starved = s.commit("plate-api-stg: memory 64Mi", {API: ("resources.limits.memory", "64Mi")})
    path = values_path(API)
    other = s.world.work.commit(
        "plate-api-stg: team annotation", {path: "podAnnotations:\n  team: plate\n" + s.world.work.read(path)}
    )
    s.world.work.push()
    row = wait_for(lambda: s.revert_rows("pushed"), timeout=120, what="revert pushed")[0]
    assert row.culprits == (other, starved)
    decision = s.decision(API, "culprit_found")
    assert decision is not None
    assert decision.reason.endswith(
        "could not narrow: the failure names no image, field or file: reverting all 2; revert on main"
    )
    wait_for(lambda: s.healthy_on(API, row.revert_sha), what="app healthy on the revert")


def test_a_render_error_names_the_commit_after_which_the_app_no_longer_renders(
    scenario: Callable[..., Scenario],
) -> None:
    s = scenario().start()
    work = s.world.work
    broken = work.commit("plate-web-stg: values", {values_path(WEB): "replicaCount: [1\n"}, "Dev Two")
    manifest = "environments/argocd/apps/plate-web-stg.yaml"
    labelled = work.commit(
        "plate-web-stg: team label", {manifest: work.set_value(manifest, "metadata.labels", {"team": "web"})}
    )
    work.push()
    row = wait_for(lambda: s.revert_rows("pushed"), timeout=120, what="revert pushed")[0]
    assert row.culprits == (broken,)
    assert values(s, WEB)["replicaCount"] == 1
    assert yaml.safe_load(s.remote_file(manifest))["metadata"]["labels"] == {"team": "web"}  # the good one stays
    decision = s.decision(WEB, "culprit_found")
    assert decision is not None and f"narrowed to {broken[:12]} (plate-web-stg: values): broke the render" in (
        decision.reason
    )
    assert labelled in [sha for sha, _, _ in s.remote_log()]
    wait_for(lambda: s.healthy_on(WEB, row.revert_sha), what="app healthy on the revert")
