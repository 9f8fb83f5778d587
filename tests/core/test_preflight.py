"""The pre-flight judge: Argo CD's render at the new commit and at the synced revision -> the verdict."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from watcher.core.appmap import OPT_ANNOTATION
from watcher.core.branches import Follow
from watcher.core.policy import RevertRules, advice_for
from watcher.core.preflight import (
    ArgoSaid,
    Judgement,
    LocalChecks,
    Problems,
    Render,
    Verdict,
    agreement,
    before_sync_facts,
    blame_of,
    changed_objects,
    compared_with,
    decide_before_sync,
    judge,
    revert_opted_in,
    revert_wanted,
    source_position,
)
from watcher.domain import Action, AppContext, Commit, EventKind, RevertHistory, RevertMode

REPO = "https://git.example.com/org/gitops.git"
# Argo CD's words for a broken template (repo-server text, as the manifests endpoint returns it)
BROKEN = (
    "`helm template . --name-template plate-api` failed exit status 1: Error: parse error at "
    '(plate/templates/deployment.yaml:7): unexpected "}" in operand'
)


def deployment(replicas: Any = 2, image: str = "plate:1", extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "plate-api", "namespace": "plate"},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"image": image}]}}, **(extra or {})},
    }


def widget(size: Any = 1) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "plate"},
            "spec": {"size": size}}  # fmt: skip


def unknown_kind(n: int = 1) -> dict[str, Any]:
    return {"apiVersion": "other.io/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"n": n}}


def fake_validate(obj: Mapping[str, Any]) -> Problems:
    """Deployments: replicas must be an int (strict: no unknown spec fields); Widgets: size an int; else no schema."""
    spec = obj.get("spec") or {}
    if obj["kind"] == "Deployment":
        errors = [] if isinstance(spec.get("replicas"), int) else [f"{spec.get('replicas')!r} is not of type 'integer'"]
        errors += [f"unknown field spec.{k}" for k in spec if k not in ("replicas", "template")]
        return Problems("builtin", tuple(errors))
    if obj["kind"] == "Widget":
        return Problems("custom", () if isinstance(spec.get("size"), int) else ("size is not an integer",))
    return Problems(None)


ok = Render
CASES = [
    # (name, new render, old render, verdict, what the reason or evidence must say)
    ("healthy change", ok((deployment(3),)), ok((deployment(2),)), Verdict.RENDERS, "renders"),
    ("unchanged app", ok((deployment(),)), ok((deployment(),)), Verdict.RENDERS, "renders"),
    ("broken template", Render(error=BROKEN), ok((deployment(),)), Verdict.WILL_FAIL_TO_RENDER, "cannot render"),
    ("old fails the same way", Render(error=BROKEN), Render(error=BROKEN), Verdict.CANNOT_JUDGE, "the same way"),
    ("old fails, cached repeat", Render(error=BROKEN),
     Render(error="Manifest generation error (cached): " + BROKEN), Verdict.CANNOT_JUDGE, "the same way"),
    ("old fails otherwise", Render(error=BROKEN), Render(error="other"), Verdict.CANNOT_JUDGE, "differently"),
    ("commit fixes a broken app", ok((deployment(),)), Render(error=BROKEN), Verdict.RENDERS, "fixes it"),
    ("argo cd unreachable (new)", Render(unreachable="timeout"), ok(()), Verdict.CANNOT_JUDGE, "could not be asked"),
    ("argo cd unreachable (old)", ok(()), Render(unreachable="HTTP 403"), Verdict.CANNOT_JUDGE, "could not be asked"),
    ("built-in made invalid", ok((deployment("two"),)), ok((deployment(2),)), Verdict.INVALID_OBJECTS, "refused"),
    ("built-in unknown field", ok((deployment(2, extra={"replica": 3}),)), ok((deployment(2),)),
     Verdict.INVALID_OBJECTS, "refused"),
    ("invalid before, still: not new", ok((deployment("two", "plate:2"),)), ok((deployment("two"),)),
     Verdict.RENDERS, "renders"),
    ("invalid object the commit did not change", ok((deployment("two"), widget(2))), ok((deployment("two"), widget(1))),
     Verdict.RENDERS, "renders"),
    ("custom resource invalid: a warning only", ok((widget("big"),)), ok((widget(1),)), Verdict.RENDERS, "warning"),
    ("kind without a schema: skipped", ok((unknown_kind(2),)), ok((unknown_kind(1),)), Verdict.RENDERS, "renders"),
    ("new invalid object", ok((deployment(2), {**deployment("x"), "metadata": {"name": "b"}})), ok((deployment(2),)),
     Verdict.INVALID_OBJECTS, "refused"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "new", "old", "verdict", "says"), CASES, ids=[c[0] for c in CASES])
def test_verdict(name: str, new: Render, old: Render, verdict: Verdict, says: str) -> None:
    j = judge(new, old, fake_validate)
    assert j.verdict is verdict, j
    assert says in j.reason, j.reason


def test_argo_cds_own_words_are_kept() -> None:
    j = judge(Render(error=BROKEN), Render((deployment(),)), fake_validate)
    assert j.argocd_error == BROKEN and j.failing
    assert j.evidence()["argocd_error"] == BROKEN


def test_warnings_and_skips_are_named() -> None:
    j = judge(Render((widget("big"), unknown_kind(2))), Render((widget(1), unknown_kind(1))), fake_validate)
    assert j.warnings == ("example.com/Widget/plate/w: size is not an integer",)
    assert j.skipped == ("other.io/Gadget//g",)
    assert not j.failing


def test_only_the_given_changed_objects_count() -> None:
    new, old = Render((deployment("two"),)), Render(())
    assert judge(new, old, fake_validate, changed=set()).verdict is Verdict.RENDERS
    only = {"apps/Deployment/plate/plate-api"}
    assert judge(new, old, fake_validate, changed=only).verdict is Verdict.INVALID_OBJECTS


def test_changed_objects() -> None:
    assert changed_objects([deployment(2), widget(1)], [deployment(3), widget(1), unknown_kind()]) == (
        "apps/Deployment/plate/plate-api",
        "other.io/Gadget//g",
    )


@pytest.mark.parametrize(
    ("spec", "position"),
    [
        ({"source": {"repoURL": REPO, "path": "a"}}, 1),
        ({"source": {"repoURL": "https://charts.example.com", "chart": "c"}}, 0),
        ({"sources": [{"repoURL": "https://charts.example.com", "chart": "c"}, {"repoURL": REPO, "ref": "v"}]}, 2),
        ({"sources": [{"repoURL": REPO, "path": "a"}]}, 1),
        ({"sources": [{"repoURL": "https://other.example.com/x.git", "path": "a"}]}, 0),
    ],
)
def test_source_position(spec: dict[str, Any], position: int) -> None:
    assert source_position(spec, REPO) == position


@pytest.mark.parametrize(
    ("environment", "annotation", "environments", "opted"),
    [
        ("prod", None, ("prod",), True),
        ("stg", None, ("prod",), False),
        ("stg", "true", (), True),
        ("prod", "false", ("prod",), False),
        ("", None, ("*",), True),
        ("", None, (), False),
    ],
)
def test_revert_opt_in(environment: str, annotation: str | None, environments: tuple[str, ...], opted: bool) -> None:
    annotations = {"sync-watcher.io/preflight-revert": annotation} if annotation else {}
    assert revert_opted_in(environment, annotations, environments) is opted


@pytest.mark.parametrize(
    ("verdict", "opted", "wanted"),
    [
        (Verdict.WILL_FAIL_TO_RENDER, True, True),
        (Verdict.WILL_FAIL_TO_RENDER, False, False),
        (Verdict.INVALID_OBJECTS, True, False),  # a local schema's opinion never reverts
        (Verdict.CANNOT_JUDGE, True, False),
        (Verdict.RENDERS, True, False),
    ],
)
def test_revert_only_when_argo_cd_cannot_render(verdict: Verdict, opted: bool, wanted: bool) -> None:
    assert revert_wanted(Judgement(verdict, ""), opted) is wanted


@pytest.mark.parametrize(
    ("verdict", "argo", "agreed"),
    [
        (Verdict.WILL_FAIL_TO_RENDER, ArgoSaid.RENDER_FAILED, True),
        (Verdict.WILL_FAIL_TO_RENDER, ArgoSaid.DEPLOYED, False),
        (Verdict.RENDERS, ArgoSaid.DEPLOYED, True),
        (Verdict.RENDERS, ArgoSaid.RENDER_FAILED, False),
        (Verdict.RENDERS, ArgoSaid.SYNC_FAILED, True),
        (Verdict.INVALID_OBJECTS, ArgoSaid.SYNC_FAILED, True),
        (Verdict.INVALID_OBJECTS, ArgoSaid.DEPLOYED, False),
        (Verdict.CANNOT_JUDGE, ArgoSaid.DEPLOYED, None),
    ],
)
def test_agreement(verdict: Verdict, argo: ArgoSaid, agreed: bool | None) -> None:
    score = agreement(verdict, argo)
    assert (score.agreed if score else None) is agreed


def test_paused_local_checks_turn_invalid_objects_into_warnings() -> None:
    j = judge(Render((deployment("two"),)), Render((deployment(2),)), fake_validate)
    paused = LocalChecks({"plate-api": "Argo CD synced a commit they called invalid"})
    assert paused.apply("plate-api", j).verdict is Verdict.RENDERS
    assert paused.apply("plate-api", j).warnings == j.invalid
    assert paused.apply("other", j) is j
    broken = judge(Render(error=BROKEN), Render(()), fake_validate)
    assert paused.apply("plate-api", broken) is broken  # Argo CD's own render is never paused


@pytest.mark.parametrize(
    ("files", "changed"),
    [
        (["environments/apps/api.yaml"], ("environments/apps/api.yaml",)),  # the Application's own manifest
        (["apps/api/values.yaml"], ()),  # what it renders
        (["environments/apps/api.yaml", "apps/api/values.yaml"], ("environments/apps/api.yaml",)),
    ],
)
def test_a_change_to_the_application_itself_is_told_apart(files: list[str], changed: tuple[str, ...]) -> None:
    from watcher.core.preflight import spec_change_judgement, spec_changes

    app = {"spec": {"sources": [{"repoURL": REPO, "path": "apps/api"}]}}
    assert spec_changes(files, app, REPO, ("environments/apps",)) == changed
    parent = {"spec": {"sources": [{"repoURL": REPO, "path": "environments/apps"}]}}
    assert spec_changes(files, parent, REPO, ("environments/apps",)) == ()  # the app-of-apps renders that directory
    if changed:
        assert spec_change_judgement(changed).verdict is Verdict.CANNOT_JUDGE


def test_the_watchers_copy_of_an_app_keeps_the_opt_in_annotation() -> None:
    from watcher.core.appmap import compact_fields, expand_fields

    app = {"metadata": {"name": "a", "annotations": {"sync-watcher.io/preflight-revert": "true", "other": "x"}}}
    kept = expand_fields(compact_fields(app))["metadata"]["annotations"]
    assert kept == {"sync-watcher.io/preflight-revert": "true"}
    assert revert_opted_in("", kept, ())


PARENT, SYNCED, NEW = "a" * 40, "b" * 40, "c" * 40
NEW_COMMIT = Commit(NEW, "Dev", datetime(2026, 11, 23, tzinfo=UTC), "bump", (PARENT,))


@pytest.mark.parametrize(
    ("synced", "parents", "expected"),
    [
        (SYNCED, (PARENT,), SYNCED),  # what Argo CD last synced
        ("d" * 64, (PARENT,), "d" * 64),  # a SHA-256 repo's commit
        (None, (PARENT,), PARENT),  # a new app: nothing synced yet
        ("main", (PARENT,), PARENT),  # a render error left the branch's name, no commit
        (NEW, (PARENT,), PARENT),  # Argo CD already synced the commit itself
        (None, (), None),  # a root commit: nothing to compare with
    ],
)
def test_a_commit_is_compared_with_the_synced_revision_else_its_parent(
    synced: str | None, parents: tuple[str, ...], expected: str | None
) -> None:
    assert compared_with(synced, replace(NEW_COMMIT, parents=parents)) == expected


BEFORE_SYNC_AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
OTHER_SHA = "e" * 40


def app_context(annotations: Mapping[str, str]) -> AppContext:
    spec = {"metadata": {"name": "api-stg"}, "spec": {"source": {"repoURL": REPO, "path": "apps/api/stg"}}}
    return AppContext("api-stg", "api-stg", "", dict(annotations), None, (), {"api-stg": spec}, {})


@pytest.mark.parametrize(
    ("annotations", "reverted", "action", "rule"),
    [
        ({}, {}, Action.REVERT, "preflight_render_failed"),  # the pre-flight's opt-in stands
        ({OPT_ANNOTATION: "true"}, {}, Action.REVERT, "preflight_render_failed"),
        ({OPT_ANNOTATION: "false"}, {}, Action.ALERT, "opted_out"),  # out of auto-revert altogether
        ({}, {NEW: "r" * 40}, Action.ALERT, "already_reverted"),  # this commit was reverted already
        ({}, {OTHER_SHA: "r" * 40}, Action.REVERT, "preflight_render_failed"),  # another commit's revert: no matter
    ],
)
def test_a_commit_argo_cd_cannot_render_is_reverted_before_sync_through_the_reverters_checks(
    annotations: Mapping[str, str], reverted: Mapping[str, str], action: Action, rule: str
) -> None:
    history = RevertHistory(reverted, None, None, None, 0)
    blame = blame_of(NEW_COMMIT, SYNCED, ())
    facts = before_sync_facts(app_context(annotations), NEW_COMMIT, blame, history, REPO, ("main",), BEFORE_SYNC_AT)
    assert (facts.kind, facts.revision, facts.head, facts.still_failing) == (EventKind.MANIFEST_ERROR, NEW, NEW, True)
    assert facts.following is not None and (facts.following.kind, facts.following.branch) == (Follow.BRANCH, "main")
    rules = RevertRules(mode=RevertMode.PUSH, cooldown=timedelta(0), revert_without_auto_sync=True)
    decision = decide_before_sync(facts, rules, BEFORE_SYNC_AT)
    assert (decision.action, decision.rule) == (action, rule)


def test_a_revert_before_sync_names_the_failing_render_and_the_commits_change() -> None:
    """The revert's evidence line: the app's render at the commit in Argo CD's words (Helm's error, not its command
    line) and the files the commit changed for the app; `sync-watcher explain` has words for its rule."""
    history = RevertHistory({}, None, None, None, 0)
    said = "rpc error: code = Unknown desc = " + BROKEN
    facts = before_sync_facts(
        app_context({}), NEW_COMMIT, blame_of(NEW_COMMIT, SYNCED, ()), history, REPO, ("main",), BEFORE_SYNC_AT,
        said, ["apps/api/stg/values.yaml"],
    )  # fmt: skip
    rules = RevertRules(mode=RevertMode.PUSH, cooldown=timedelta(0), revert_without_auto_sync=True)
    d = decide_before_sync(facts, rules, BEFORE_SYNC_AT)
    assert (d.action, d.rule, d.culprits) == (Action.REVERT, "preflight_render_failed", (NEW,))
    assert d.evidence == (
        'api-stg does not render at ccccccc (parse error at (plate/templates/deployment.yaml:7): unexpected "}" '
        "in operand); ccccccc changed apps/api/stg/values.yaml; the synced revision renders"
    )
    assert advice_for(d.rule), "`sync-watcher explain` has no words for the pre-flight's revert"
