"""Pure: Argo CD's render of an app at a new commit and at its synced revision -> the pre-flight verdict.

The watcher asks Argo CD's own renderer (GET /api/v1/applications/{name}/manifests?revision=, read-only) what a
commit will do before Argo CD deploys it; this module judges the two answers. It judges the change, not the repo:
an error counts only if it is new at the new commit, and (for objects) only on an object the commit changed. When
the synced revision fails the same way, or Argo CD could not be asked, the verdict is `cannot_judge`: the
pre-flight never guesses.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from watcher.core.appmap import PREFLIGHT_REVERT_ANNOTATION, deploys_from_repo, render_roots, watched_git_source
from watcher.core.blame import AppSources, Blame, BlameOutcome, touches
from watcher.core.branches import following
from watcher.core.detect import is_commit
from watcher.core.failure_class import strip
from watcher.core.notices import CommitRef, Notice, Severity
from watcher.core.policy import PolicyFacts, RevertRules, decide, opt_in_from
from watcher.domain import Action, AppContext, Commit, Decision, EventKind, RevertHistory

# The annotation and its values: "true" lets the pre-flight revert a commit Argo CD cannot render before Argo CD
# syncs it (opt-in), "false" keeps it to a warning even in an environment opted in as a whole.
REVERT_ANNOTATION = PREFLIGHT_REVERT_ANNOTATION
RULE = "preflight_render_failed"  # the reverter's rule for a revert decided by the pre-flight
ERROR_KEPT = 2000  # characters of Argo CD's error text kept in the verdict (the store, Slack, the forge)


class Verdict(enum.StrEnum):
    RENDERS = "renders"
    WILL_FAIL_TO_RENDER = "will_fail_to_render"
    INVALID_OBJECTS = "invalid_objects"
    CANNOT_JUDGE = "cannot_judge"


@dataclass(frozen=True, slots=True)
class Render:
    """One answer of Argo CD's renderer: the manifests, or its error text, or why it could not be asked."""

    manifests: tuple[Mapping[str, Any], ...] = ()
    error: str = ""  # Argo CD's own words: the manifests cannot be generated at this revision
    unreachable: str = ""  # Argo CD could not be asked (network, auth, a deadline): nothing is known

    @property
    def failed(self) -> bool:
        return bool(self.error)


@dataclass(frozen=True, slots=True)
class Problems:
    """What a schema says about one object. `schema` None: no schema for its kind (skipped, never an alarm)."""

    schema: str | None  # "builtin" (Kubernetes' own kinds, strict) | "custom" (a CRD's schema) | None
    errors: tuple[str, ...] = ()


Validate = Callable[[Mapping[str, Any]], Problems]


def no_schemas(_obj: Mapping[str, Any]) -> Problems:
    """The validator when none is installed: every object is skipped."""
    return Problems(None)


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    reason: str
    argocd_error: str = ""  # Argo CD's words when the new commit does not render
    invalid: tuple[str, ...] = ()  # "<object>: <error>" for built-in kinds the commit made invalid
    warnings: tuple[str, ...] = ()  # the same for custom resources (never an alarm on their own)
    skipped: tuple[str, ...] = ()  # changed objects of kinds without a schema
    changed: tuple[str, ...] = ()  # the objects the commit changed (as rendered)

    @property
    def failing(self) -> bool:
        """A verdict that warns people (Slack, a failing commit status)."""
        return self.verdict in (Verdict.WILL_FAIL_TO_RENDER, Verdict.INVALID_OBJECTS)

    def evidence(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "argocd_error": self.argocd_error,
            "invalid": list(self.invalid),
            "warnings": list(self.warnings),
            "skipped": list(self.skipped[:20]),
            "changed": list(self.changed[:50]),
        }


def object_key(obj: Mapping[str, Any]) -> str:
    """group/Kind/namespace/name, as Argo CD names a resource (core kinds have an empty group)."""
    api = str(obj.get("apiVersion", ""))
    group = api.rpartition("/")[0] if "/" in api else ""
    meta = obj.get("metadata") or {}
    return f"{group}/{obj.get('kind', '')}/{meta.get('namespace', '')}/{meta.get('name', '')}"


def _by_key(manifests: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {object_key(m): m for m in manifests}


def changed_objects(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The objects of `new` that are not in `old` as they are: what the commit changed, as Argo CD renders it."""
    before = {k: json.dumps(v, sort_keys=True, default=str) for k, v in _by_key(old).items()}
    return tuple(
        sorted(k for k, v in _by_key(new).items() if before.get(k) != json.dumps(v, sort_keys=True, default=str))
    )


def judge(
    new: Render, old: Render, validate: Validate = no_schemas, changed: Collection[str] | None = None
) -> Judgement:
    """The verdict on a commit for one app: `new` is Argo CD's render at the commit, `old` at the app's synced
    revision. `changed`: the objects the commit changed (None: every object whose render differs)."""
    if new.unreachable or old.unreachable:
        return Judgement(Verdict.CANNOT_JUDGE, f"Argo CD could not be asked: {new.unreachable or old.unreachable}")
    if new.failed and old.failed:
        same = _core_of(new.error) == _core_of(old.error)
        how = "the same way" if same else "too (differently)"
        return Judgement(
            Verdict.CANNOT_JUDGE,
            f"the synced revision fails to render {how}: the commit did not break it",
            argocd_error=new.error[:ERROR_KEPT],
        )
    if new.failed:
        return Judgement(
            Verdict.WILL_FAIL_TO_RENDER,
            "Argo CD cannot render the app at this commit; it renders at the synced revision",
            argocd_error=new.error[:ERROR_KEPT],
        )
    touched = tuple(sorted(changed)) if changed is not None else changed_objects(old.manifests, new.manifests)
    before = _by_key(old.manifests) if not old.failed else {}
    invalid: list[str] = []
    warnings: list[str] = []
    skipped: list[str] = []
    for key, obj in _by_key(new.manifests).items():
        if key not in touched:
            continue
        problems = validate(obj)
        if problems.schema is None:
            skipped.append(key)
            continue
        had = set(validate(before[key]).errors) if key in before else set()
        fresh = [f"{key}: {e}" for e in problems.errors if e not in had]
        (invalid if problems.schema == "builtin" else warnings).extend(fresh)
    if invalid:
        return Judgement(
            Verdict.INVALID_OBJECTS,
            f"{len(invalid)} object{'s' if len(invalid) > 1 else ''} the commit changed would be refused by the "
            "cluster's API",
            invalid=tuple(invalid),
            warnings=tuple(warnings),
            skipped=tuple(skipped),
            changed=touched,
        )
    reason = "Argo CD renders the app at this commit"
    if old.failed:
        reason += " (the synced revision does not: the commit fixes it)"
    if warnings:
        reason += f"; {len(warnings)} warning{'s' if len(warnings) > 1 else ''} on custom resources"
    return Judgement(Verdict.RENDERS, reason, warnings=tuple(warnings), skipped=tuple(skipped), changed=touched)


def _core_of(error: str) -> str:
    """The error without Argo CD's wrapping: a cached repeat says the same as the first failure."""
    return error.replace("Manifest generation error (cached): ", "").strip()


# -- which revision of which source to ask about -------------------------------------------------------------
def compared_with(synced: str | None, commit: Commit) -> str | None:
    """The revision a commit's render is compared with: the one Argo CD last synced the app at, unless that names
    no commit (a branch, nothing) or is the commit itself; then the commit's parent, which Argo CD has not compared
    either (None for a root commit: nothing to compare with)."""
    if synced and synced != commit.sha and is_commit(synced):
        return synced
    return commit.parents[0] if commit.parents else None


def source_position(spec: Mapping[str, Any], repo_url: str) -> int:
    """The 1-based position of the watched repo's git source among the app's sources (0: none is): the API's
    `sourcePositions`, paired with `revisions` for a multi-source app (argo-cd server/application/application.go:
    528-538), while a single-source app reads `revision` (application.go:539-551). The watcher's copy of an app
    keeps its sources as a list either way, so the pre-flight sends both and each shape reads its own."""
    sources = spec.get("sources") or ([spec["source"]] if spec.get("source") else [])
    found = watched_git_source(sources, repo_url)
    return 0 if found is None else found + 1


# -- acting on a verdict -------------------------------------------------------------------------------------
def revert_opted_in(environment: str, annotations: Mapping[str, str], environments: Collection[str]) -> bool:
    """Opt-in per app (the annotation) or per environment (WATCHER_PREFLIGHT__REVERT_ENVIRONMENTS); the app's
    annotation "false" wins over its environment."""
    said = str(annotations.get(REVERT_ANNOTATION, "")).strip().lower()
    if said in ("false", "disabled"):
        return False
    return said in ("true", "enabled") or (bool(environment) and environment in environments) or "*" in environments


def revert_wanted(j: Judgement, opted_in: bool) -> bool:
    """Revert before Argo CD syncs only when Argo CD's own render of the commit failed and its render of the
    synced revision did not (that is what WILL_FAIL_TO_RENDER means): never for a local schema's opinion."""
    return opted_in and j.verdict is Verdict.WILL_FAIL_TO_RENDER


# -- keeping score: Argo CD's own verdict, when it arrives ---------------------------------------------------
class ArgoSaid(enum.StrEnum):
    RENDER_FAILED = "render_failed"  # ComparisonError at the commit
    SYNC_FAILED = "sync_failed"  # the sync of the commit failed (the API refused an object)
    DEPLOYED = "deployed"  # the commit synced


@dataclass(frozen=True, slots=True)
class Score:
    agreed: bool
    note: str


def agreement(verdict: Verdict, argo: ArgoSaid) -> Score | None:
    """Did Argo CD agree with the pre-flight? None: the verdict made no prediction (cannot_judge)."""
    if verdict is Verdict.CANNOT_JUDGE:
        return None
    predicted = {
        Verdict.WILL_FAIL_TO_RENDER: ArgoSaid.RENDER_FAILED,
        Verdict.INVALID_OBJECTS: ArgoSaid.SYNC_FAILED,
        Verdict.RENDERS: ArgoSaid.DEPLOYED,
    }[verdict]
    # A sync that fails for a reason the render cannot see (a quota, a webhook) is no disagreement with "renders".
    agreed = argo is predicted or (verdict is Verdict.RENDERS and argo is ArgoSaid.SYNC_FAILED)
    return Score(agreed, f"pre-flight said {verdict.value}, Argo CD {argo.value}")


@dataclass(frozen=True, slots=True)
class LocalChecks:
    """Whether the local schema checks may still raise `invalid_objects` for an app (they stop after Argo CD
    disagreed with one, until a person resets them). Argo CD's own render errors are never paused."""

    paused: Mapping[str, str] = field(default_factory=dict)  # app -> why

    def apply(self, app: str, j: Judgement) -> Judgement:
        why = self.paused.get(app)
        if why is None or j.verdict is not Verdict.INVALID_OBJECTS:
            return j
        return Judgement(
            Verdict.RENDERS,
            f"Argo CD renders the app at this commit; local schema checks are paused for this app ({why})",
            warnings=j.invalid + j.warnings,
            skipped=j.skipped,
            changed=j.changed,
        )


# -- which apps a commit affects -----------------------------------------------------------------------------
def affected_apps(files: Sequence[str], apps: Mapping[str, AppSources]) -> list[str]:
    """The apps whose renderer reads a file the commit changed (the path mapping, renderer inputs included)."""
    return sorted(key for key, sources in apps.items() if any(touches(f, sources) for f in files))


def spec_changes(
    files: Sequence[str], app: Mapping[str, Any], repo_url: str, manifest_dirs: Collection[str]
) -> tuple[str, ...]:
    """The files of a commit that change the Application itself (its manifest, read by the app-of-apps) rather
    than what it renders. Argo CD renders an app with the spec it holds (only the revision is overridden:
    application.go:528-551), so such a change cannot be judged before the app-of-apps syncs it."""
    roots = render_roots(app, repo_url)
    return tuple(f for f in files if _under(f, manifest_dirs) and not _under(f, roots))


def _under(path: str, directories: Collection[str]) -> bool:
    return any(d and (path == d or path.startswith(d.rstrip("/") + "/")) for d in directories)


def spec_change_judgement(files: Sequence[str]) -> Judgement:
    return Judgement(
        Verdict.CANNOT_JUDGE,
        f"the commit changes the Application itself ({', '.join(files[:3])}): Argo CD renders with the spec it "
        "holds until the app-of-apps syncs the new one",
    )


# -- what people are told ------------------------------------------------------------------------------------
def notice_of(app: str, commit: Commit, j: Judgement, environment: str, done: str = "") -> Notice:
    """The Slack warning for a failing verdict: the commit, the app and Argo CD's words."""
    if j.verdict is Verdict.WILL_FAIL_TO_RENDER:
        headline = "Argo CD will not be able to render this commit"
        detail = f"Pre-flight of `{commit.sha[:10]}` for {app}: {j.reason}."
        said = j.argocd_error
    else:
        headline = "This commit makes objects the cluster would refuse"
        detail = f"Pre-flight of `{commit.sha[:10]}` for {app}: {j.reason}."
        said = "\n".join(j.invalid[:5])
    if done:
        detail += f" {done}"
    return Notice(
        EventKind.PREFLIGHT_FAILED,
        app=app,
        severity=Severity.WARNING,
        headline=headline,
        detail=detail,
        revision=commit.sha,
        argocd_message=said,
        culprits=(CommitRef(commit.sha, commit.author, commit.subject),),
        rule=RULE if "revert" in done else "",
        environment=environment,
    )


def status_of(j: Judgement) -> tuple[str, str]:
    """The commit status (state, description) for a verdict: a failing verdict fails the commit's check."""
    state = {Verdict.RENDERS: "success", Verdict.CANNOT_JUDGE: "success"}.get(j.verdict, "failure")
    said = j.argocd_error or (j.invalid[0] if j.invalid else "")
    return state, f"{j.verdict.value}: {said or j.reason}"


# -- the revert before Argo CD syncs, through the reverter's own safety checks ------------------------------
def before_sync_facts(
    context: AppContext,
    commit: Commit,
    blame: Blame,
    history: RevertHistory,
    repo_url: str,
    branches: Sequence[str],
    now: datetime,
    argocd_error: str = "",
    files: Sequence[str] = (),
) -> PolicyFacts:
    """The policy's facts on a commit Argo CD cannot render, before it synced it: the render error Argo CD would
    report once it compared the commit, still failing, at the commit itself. The pre-flight's opt-in (its
    environments and annotation, revert_opted_in) stands unless the app opts out of auto-revert altogether; of the
    revert history only this commit's revert counts. `argocd_error` and `files` (the commit's, among the app's) are
    the evidence line's."""
    spec = context.specs.get(context.key, {})
    return PolicyFacts(
        app=context.key,
        kind=EventKind.MANIFEST_ERROR,
        detected_at=now,
        opt_in=opt_in_from(context.annotations) is not False,
        suspended=history.suspension,
        circuit=history.circuit,
        still_failing=True,
        blame=blame,
        already_reverted={k: v for k, v in history.reverted.items() if k == commit.sha},
        revision=commit.sha,
        head=commit.sha,
        following=following(spec, repo_url, branches),
        from_watched_repo=deploys_from_repo(spec, repo_url),
        auto_sync=context.last.auto_sync if context.last else None,
        last_revert_at=history.last_revert_at,
        reverts_last_hour=history.reverts_last_hour,
        evidence_line=evidence_line(context.key, commit, argocd_error, files),
    )


def evidence_line(app: str, commit: Commit, argocd_error: str, files: Sequence[str]) -> str:
    """What a pre-flight revert rests on: the failing object (the app's render at the commit, in Argo CD's words)
    and the commit's change to it (its files among the app's)."""
    words = strip(argocd_error).rpartition("Error: ")[2].strip().splitlines()  # Helm's words, not its command line
    said = words[0][:200] if words else "Argo CD gave no reason"
    more = f" and {len(files) - 3} more" if len(files) > 3 else ""
    how = f"changed {', '.join(files[:3])}{more}" if files else "changed the app's files"
    return f"{app} does not render at {commit.sha[:7]} ({said}); {commit.sha[:7]} {how}; the synced revision renders"


def decide_before_sync(facts: PolicyFacts, rules: RevertRules, now: datetime) -> Decision:
    """The reverter's policy on the commit the pre-flight found unrenderable (every check of a revert after a
    failure applies: scope, suspension, circuit, cooldown, rate limit, already reverted); a revert is recorded
    under the rule `preflight_render_failed`."""
    decision = decide(facts, rules, now)
    if decision.action is Action.REVERT:
        return replace(decision, rule=RULE, reason=f"Argo CD's render of the commit fails, before Argo CD synced it; "
                       f"{decision.reason}")  # fmt: skip
    return decision


def blame_of(commit: Commit, synced: str | None, also: tuple[str, ...]) -> Blame:
    """The pre-flight's blame: the one commit whose render fails, against the synced revision that renders."""
    return Blame(
        BlameOutcome.CULPRITS,
        f"Argo CD cannot render {commit.sha[:12]}; it renders the synced revision {(synced or '?')[:12]}",
        commit.sha,
        synced,
        (commit,),
        {commit.sha: also} if also else {},
        named="preflight",
    )
