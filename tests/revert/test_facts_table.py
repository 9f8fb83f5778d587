"""Pure: the reverter's three reads (Argo CD, git, the store) -> the policy's facts and the audit evidence."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from tests.support.reverter_rig import APP, BAD, CULPRIT, GOOD, NOW, OTHER, PATHS, REVERT, application
from watcher.core.appmap import OPT_ANNOTATION
from watcher.core.blame import BlameOutcome
from watcher.core.facts import ArgoCDView, Facts, GitView, facts_of
from watcher.core.narrow import Candidate
from watcher.core.snapshots import snapshot_from_app
from watcher.domain import AppContext, ChangedCommit, Commit, EventKind, Incident, RevertHistory

INCIDENT = Incident(7, APP, EventKind.SYNC_FAILED, BAD, NOW, None, "sync failed", {})
CONTEXT = AppContext(APP, APP, "", {}, None, (GOOD,), {}, dict(PATHS))
FAILING = ArgoCDView(snapshot_from_app(application(APP), complete=True))
GIT = GitView(GOOD, "watcher", True, (ChangedCommit(CULPRIT, ("apps/plate-api-stg/deployment.yaml",)),))
HISTORY = RevertHistory(reverted={}, suspension=None, circuit=None, last_revert_at=None, reverts_last_hour=0)
UNRELATED = "0the4" + "7" * 35


def facts(
    incident: Incident = INCIDENT,
    context: AppContext = CONTEXT,
    argocd: ArgoCDView = FAILING,
    git: GitView | None = GIT,
    history: RevertHistory = HISTORY,
    split: bool = True,
) -> Facts:
    return facts_of(incident, context, argocd, git, history, max_candidates=3, split=split)


def annotated(value: str) -> AppContext:
    return replace(CONTEXT, annotations={OPT_ANNOTATION: value})


# (what the reads said, what the policy is told: still_failing, culprits (None: blame unknown), already_reverted
# by the store, undone on the branch by git)
TABLE = [
    pytest.param({}, True, (BAD,), {}, {}, id="all_known"),
    pytest.param({"argocd": ArgoCDView(None, "GET app: ConnectTimeout")}, None, (BAD,), {}, {}, id="argocd_unknown"),
    pytest.param(
        {"argocd": ArgoCDView(snapshot_from_app(application(APP, operation_revision=GOOD), complete=True))},
        False,
        (BAD,),
        {},
        {},
        id="argocd_moved_on",
    ),
    pytest.param(
        {"argocd": ArgoCDView(snapshot_from_app(application(APP, phase="Running", retry_count=1), complete=True))},
        True,
        (BAD,),
        {},
        {},
        id="argocd_still_retrying",
    ),
    pytest.param({"git": None}, True, None, {}, {}, id="git_not_read"),
    pytest.param(
        {"git": GitView(GOOD, "watcher", error="fetch failed: timed out")}, True, None, {}, {}, id="git_error"
    ),
    pytest.param({"incident": replace(INCIDENT, revision=None)}, False, None, {}, {}, id="no_revision_to_blame"),
    pytest.param(
        {"history": replace(HISTORY, reverted={BAD: "revert #3 pushed"})},
        True,
        (BAD,),
        {BAD: "revert #3 pushed"},
        {},
        id="already_reverted_in_the_store",
    ),
    pytest.param(
        {"git": replace(GIT, undone={BAD: REVERT})},
        True,
        (BAD,),
        {},
        {BAD: REVERT},
        id="undone_on_the_branch_in_git",
    ),
    pytest.param(
        {"history": replace(HISTORY, reverted={BAD: "revert #3 started"}), "git": replace(GIT, undone={BAD: REVERT})},
        True,
        (BAD,),
        {BAD: "revert #3 started"},
        {BAD: REVERT},
        id="the_store_and_git_both_know",
    ),
    pytest.param(
        {"history": replace(HISTORY, reverted={UNRELATED: "revert #1 pushed"})},
        True,
        (BAD,),
        {},
        {},
        id="reverts_of_other_commits_do_not_count",
    ),
]


@pytest.mark.parametrize("reads, still_failing, culprits, already, undone", TABLE)
def test_facts_of(
    reads: dict[str, Any],
    still_failing: bool | None,
    culprits: tuple[str, ...] | None,
    already: dict[str, str],
    undone: dict[str, str],
) -> None:
    f = facts(**reads)
    assert f.policy.still_failing is still_failing
    assert (tuple(c.sha for c in f.blame.culprits) if f.blame else None) == culprits
    assert f.policy.blame is f.blame
    assert dict(f.policy.already_reverted) == already
    assert f.evidence["already_reverted"] == already and f.evidence["still_failing"] is still_failing
    assert dict(f.policy.undone_on_branch) == undone and f.evidence["undone_on_branch"] == undone


@pytest.mark.parametrize(
    "context, opt_in",
    [
        (CONTEXT, None),
        (annotated("true"), True),
        (annotated(" Enabled "), True),
        (annotated("false"), False),
        (annotated("disabled"), False),
        (annotated("maybe"), None),
    ],
)
def test_opt_in_from_the_annotation(context: AppContext, opt_in: bool | None) -> None:
    f = facts(context=context)
    assert f.policy.opt_in is opt_in and f.evidence["opt_in"] is opt_in


def test_argocd_unknown_is_in_the_evidence() -> None:
    f = facts(argocd=ArgoCDView(None, "GET app: ConnectTimeout"))
    assert f.evidence["argocd_now"] is None and f.evidence["argocd_error"] == "GET app: ConnectTimeout"


def test_what_argocd_said_is_in_the_evidence() -> None:
    seen = facts().evidence["argocd_now"]
    assert seen["phase"] == "Failed" and seen["operation_revision"] == BAD and seen["sync_status"] == "OutOfSync"
    assert seen["operation_message"].startswith("one or more objects failed to apply")


def test_git_error_is_in_the_evidence_and_blame_is_unknown() -> None:
    f = facts(git=GitView(GOOD, "argocd_history", error="fetch failed: timed out"))
    assert f.evidence["git_error"] == "fetch failed: timed out" and f.evidence["blame"] is None
    assert f.evidence["last_good_source"] == "argocd_history"


def test_blame_in_the_evidence_names_the_culprit_and_the_other_apps_it_changed() -> None:
    changed = ChangedCommit(CULPRIT, ("apps/plate-api-stg/deployment.yaml", "apps/plate-web-stg/hpa.yaml"))
    f = facts(git=replace(GIT, changes=(changed,)), split=False)
    assert f.blame is not None and f.blame.outcome is BlameOutcome.CULPRITS
    assert dict(f.blame.also_touched) == {BAD: (OTHER,)} and not f.blame.only
    blamed = f.evidence["blame"]
    assert blamed["last_good_revision"] == GOOD and blamed["culprits"][0]["also_touched"] == [OTHER]


def test_a_culprit_that_also_changed_a_healthy_app_is_reverted_only_in_the_failing_apps_files() -> None:
    changed = ChangedCommit(CULPRIT, ("apps/plate-api-stg/deployment.yaml", "apps/plate-web-stg/hpa.yaml"))
    f = facts(git=replace(GIT, changes=(changed,), healthy=frozenset({OTHER})))
    assert f.blame is not None and f.blame.culprits == (CULPRIT,)
    assert dict(f.blame.only) == {BAD: ("apps/plate-api-stg/deployment.yaml",)}
    assert dict(f.blame.kept) == {BAD: ("apps/plate-web-stg/hpa.yaml",)}
    assert not f.blame.also_touched  # the other app's change stays: it gets no revert to deploy
    assert "keeping apps/plate-web-stg/hpa.yaml" in f.blame.reason
    assert f.evidence["blame"]["culprits"][0]["kept_files"] == ["apps/plate-web-stg/hpa.yaml"]


def test_a_culprit_that_also_changed_an_app_not_known_healthy_is_reverted_whole() -> None:
    changed = ChangedCommit(CULPRIT, ("apps/plate-api-stg/deployment.yaml", "apps/plate-web-stg/hpa.yaml"))
    f = facts(git=replace(GIT, changes=(changed,)))
    assert f.blame is not None and not f.blame.only and dict(f.blame.also_touched) == {BAD: (OTHER,)}


def test_the_store_history_reaches_the_policy() -> None:
    last = NOW - timedelta(minutes=3)
    history = RevertHistory({}, "did not heal", "4 reverts in an hour", last, 4)
    p = facts(history=history).policy
    assert (p.suspended, p.circuit, p.last_revert_at, p.reverts_last_hour) == (
        "did not heal",
        "4 reverts in an hour",
        last,
        4,
    )


def test_a_failure_naming_no_object_has_argo_cds_words_and_the_commits_change_as_evidence() -> None:
    """kubectl's validation names a field, not an object: the line quotes it, and says what the one commit
    changed for the app and why it alone is blamed."""
    assert facts().policy.evidence_line == (
        "the object does not match its kind's schema (error validating data: ValidationError(Deployment.spec.replicas"
        '): invalid type for io.k8s.api.apps.v1.DeploymentSpec.replicas: got "string", expected "integer"); '
        f"{BAD[:7]} changed apps/plate-api-stg/deployment.yaml: the only change to {APP} since {GOOD[:7]}"
    )


def test_a_failing_image_narrowed_to_one_commit_names_the_image_and_that_commits_change() -> None:
    """A rollout's failing pods name no object of Argo CD's words: the line names the failing image (the rollout
    watch's) and the commit narrowing found introducing it, with the file it changed."""
    image = "harbor.plate.local/plate/plate-api:2.6.1"
    earlier = Commit("ea51" + "4" * 36, "Dev One", NOW - timedelta(minutes=9), "plate-api: more memory", (GOOD,))
    values = "apps/plate-api-stg/values.yaml"
    diff = f"diff --git a/{values} b/{values}\n--- a/{values}\n+++ b/{values}\n@@ -1 +1 @@\n"
    git = replace(
        GIT,
        changes=(ChangedCommit(CULPRIT, (values,)), ChangedCommit(earlier, (values,))),
        candidates=(
            Candidate(CULPRIT, (values,), diff + f"-image: {image[:-5]}:2.6.0\n+image: {image}\n"),
            Candidate(earlier, (values,), diff + "-memory: 256Mi\n+memory: 512Mi\n"),
        ),
    )
    deployed = application(APP, phase="Succeeded", sync="Synced", sync_revision=BAD, health="Degraded")
    rollout = Incident(
        7, APP, EventKind.ROLLOUT_FAILING, BAD, NOW, None, "new rollout failing: pod plate-api-7d9-x ImagePullBackOff",
        {"failing_images": [image], "health_message": "Deployment exceeded its progress deadline"},
    )  # fmt: skip
    f = facts(incident=rollout, argocd=ArgoCDView(snapshot_from_app(deployed, complete=True)), git=git)
    assert f.blame is not None and f.blame.culprits == (CULPRIT,)
    assert f.policy.evidence_line == (
        "new rollout failing: pod plate-api-7d9-x ImagePullBackOff (Deployment exceeded its progress deadline), "
        f"running {image}; {BAD[:7]} changed {values}: introduced image {image} (seen in the diff)"
    )
