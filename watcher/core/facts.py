"""Pure: what the reverter saw for one incident (Argo CD, git, the store) -> the policy's facts and the evidence.

The reverter reads three things once (`ArgoCDView`, `GitView`, `RevertHistory`) and hands them here; nothing in
this module does I/O, so every combination of answers is a table test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from watcher.core.appmap import deploys_from_repo
from watcher.core.blame import AppSources, Blame, BlameOutcome, blame, helm_dirs, touches
from watcher.core.branches import Follow, Following, RemoteBranches, following
from watcher.core.culprit import Evidence, evidence
from watcher.core.detect import untouched_by_the_sync
from watcher.core.failure_class import Failure, classify
from watcher.core.narrow import Candidate, clues_of, narrowed
from watcher.core.policy import PolicyFacts, opt_in_from, still_failing
from watcher.domain import AppContext, AppSnapshot, ChangedCommit, EventKind, Incident, RevertHistory

# The fields of Argo CD's fresh answer kept in the audit trail (the rest is in the incident's evidence).
SEEN_FIELDS = ("sync_status", "sync_revision", "health", "phase", "operation_revision", "retry_count")
MESSAGE_KEPT = 500
WORDS_KEPT = 160  # characters of Argo CD's words in an evidence line


@dataclass(frozen=True, slots=True)
class ArgoCDView:
    """A fresh GET of the app: the snapshot, or why there is none."""

    snapshot: AppSnapshot | None
    error: str | None = None
    progressive: bool = False  # its last sync was started by the ApplicationSet controller (RollingSync)
    old_pods: tuple[str, ...] = ()  # pods in trouble the blamed deploy did not create, none of its own failing


@dataclass(frozen=True, slots=True)
class GitView:
    """What git said about the range (last good, failing]: read only when the app still fails at a revision."""

    last_good: str | None = None
    last_good_source: str = ""  # "watcher" or "argocd_history"
    last_good_is_ancestor: bool = False
    changes: tuple[ChangedCommit, ...] = ()  # commits in the range that touched the app's paths, newest first
    truncated: bool = False
    undone: Mapping[str, str] = field(default_factory=dict)  # sha -> the commit on the branch that reverts it
    head: str | None = None  # the followed branch's head when read
    newer: tuple[str, ...] = ()  # commits in (failing, head] that touched the app's paths: a fix on its way?
    error: str | None = None  # git could not be read: blame is unknown
    remote: RemoteBranches | None = None  # the watched branches' heads and the remote's default branch
    candidates: tuple[Candidate, ...] = ()  # the app's commits with their diffs and renders, for narrowing
    healthy: frozenset[str] = frozenset()  # other apps the range changed, Synced and Healthy at the failing revision
    unexercised: tuple[str, ...] = ()  # commits before the last good one that changed the Application's spec only
    # The range's failing end: the incident's revision, or the branch head for a render error Argo CD resolved to
    # no commit (its sync.revision "main" or empty). None: git said nothing (the early returns).
    failing: str | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """The policy's input and the audit trail's evidence, built once from the three reads."""

    policy: PolicyFacts
    blame: Blame | None
    evidence: Mapping[str, Any]
    head: str | None = None  # the branch head git was read at (what Argo CD is asked to deploy)
    branch: str | None = None  # the watched branch the app follows: where blame read and a revert goes
    failure: Failure | None = None  # whose fault Argo CD's words say it is (sync and render failures only)


def sources_of(context: AppContext) -> tuple[AppSources, dict[str, AppSources]]:
    """The app's own repo paths and every other app's, as blame compares them."""

    def of(key: str, paths: tuple[str, ...]) -> AppSources:
        return AppSources(paths, helm_dirs(context.specs.get(key, {}), paths))

    own = of(context.key, context.paths.get(context.key, ()))
    return own, {k: of(k, p) for k, p in context.paths.items() if k != context.key}


@dataclass(frozen=True, slots=True)
class Watched:
    """What this watcher watches: the GitOps repo and its branches (the first holds the app-of-apps manifests)."""

    repo_url: str
    branches: tuple[str, ...]

    def following(self, context: AppContext, remote: RemoteBranches | None) -> Following:
        return following(context.specs.get(context.key, {}), self.repo_url, self.branches, remote)


def facts_of(
    incident: Incident,
    context: AppContext,
    argocd: ArgoCDView,
    git: GitView | None,
    history: RevertHistory,
    max_candidates: int,
    watched: Watched | None = None,
    split: bool = True,
    narrow: bool = True,
) -> Facts:
    """`git` is None when it was not read (the app no longer fails, or the incident has no revision)."""
    snap = argocd.snapshot
    failing = still_failing(snap, incident.kind, incident.revision) if snap is not None else None
    failure = failure_of(incident.kind, snap) if failing else None
    touched: Evidence | None = None
    candidates: tuple[Candidate, ...] = ()
    own = AppSources(())
    follows = watched.following(context, git.remote if git else None) if watched else None
    ours = follows is None or follows.kind is Follow.BRANCH  # else git was not read for blame: nothing to blame
    found: Blame | None = None
    revision = git.failing if git is not None and git.failing else incident.revision
    if git is not None and git.error is None and revision and ours:
        own, others = sources_of(context)
        found = blame(
            incident.app,
            revision,
            git.last_good,
            git.last_good_is_ancestor,
            git.changes,
            own,
            others,
            max_candidates,
            git.truncated,
        )
        # Several commits: the one that introduced what fails; one commit: only its change to this app.
        candidates = git.candidates or tuple(Candidate(c.commit, c.files) for c in git.changes)
        if failure is not None and found.outcome is BlameOutcome.CULPRITS:
            touched = _touching(failure, found, candidates, context, own, snap)
            # WATCHER_REVERT__NARROW=false keeps every commit blame found; none touched: the policy alerts anyway.
            found = _kept(found, touched) if touched is not None and narrow else found
        clues = clues_of(incident.kind.value, incident.evidence)
        found = narrowed(incident.app, found, candidates, clues, own, others, split, git.healthy, narrow)
    shas = {c.sha for c in found.culprits} if found else set()
    undone = {k: v for k, v in git.undone.items() if k in shas} if git else {}
    already = {k: v for k, v in history.reverted.items() if k in shas}
    policy = PolicyFacts(
        app=incident.app,
        kind=incident.kind,
        detected_at=incident.detected_at,
        opt_in=opt_in_from(context.annotations),
        suspended=history.suspension,
        circuit=history.circuit,
        still_failing=failing,
        blame=found,
        already_reverted=already,
        undone_on_branch=undone,
        newer_changes=git.newer if git else (),
        revision=revision,
        head=git.head if git else None,
        following=follows,
        untouched_degraded=tuple(untouched_by_the_sync(snap, incident.revision))
        if snap is not None and incident.kind is EventKind.DEGRADED and incident.revision
        else (),
        from_watched_repo=deploys_from_repo(context.specs.get(context.key, {}), watched.repo_url) if watched else None,
        not_from_deploy=argocd.old_pods,
        initiated_by=snap.initiated_by if snap else "",
        # RollingSync turns automated off and syncs the app itself, as automated (core/sync_permit.py).
        auto_sync=True if argocd.progressive else (snap.auto_sync if snap else None),
        last_revert_at=history.last_revert_at,
        reverts_last_hour=history.reverts_last_hour,
        failure_class=failure.cls.value if failure else None,
        failure_cause=failure.cause if failure else "",
        evidence_line=touched.line_for(c.sha for c in found.culprits)
        if touched is not None and found
        else _unnamed_line(incident, failure, found, candidates, own)
        if found and found.outcome is BlameOutcome.CULPRITS
        else "",
        evidence_missing=touched is not None and not touched.touches,
    )
    branch = follows.branch if follows is not None and follows.kind is Follow.BRANCH else None
    seen = _evidence(policy, found, argocd, git) | {"failure": failure.evidence() if failure else None}
    if git is not None and git.unexercised:
        seen["unexercised_spec_changes"] = list(git.unexercised)
    if revision != incident.revision:  # say where the failing end came from: Argo CD showed no commit
        seen["failing_revision_from"] = {"argocd_showed": incident.revision or "", "branch_head": revision}
    return Facts(policy, found, seen, git.head if git else None, branch, failure)


# Failures told in Argo CD's words (an operation's message and results, a render's condition): the other kinds are
# health and pods, which the rollout watch and the resource tree describe.
WORDED_KINDS = frozenset({EventKind.SYNC_FAILED, EventKind.MANIFEST_ERROR})


def failure_of(kind: EventKind, snap: AppSnapshot | None) -> Failure | None:
    """Whose fault a sync or render failure is, from the fresh snapshot's words (None for other kinds)."""
    if snap is None or kind not in WORDED_KINDS:
        return None
    if kind is EventKind.MANIFEST_ERROR:  # the last operation's words are about an earlier sync
        return classify("", snap.conditions)
    return classify(snap.operation_message, snap.conditions, snap.failed_resources)


def manifest_files(context: AppContext, own: AppSources) -> tuple[str, ...]:
    """The repo files holding the app's Application itself: its paths that no source of its own renders (a value
    file is inside its chart) and that another app renders (the app-of-apps directory holding it)."""
    mine = _source_dirs(context.specs.get(context.key, {}))
    others = [d for k, spec in context.specs.items() if k != context.key for d in _source_dirs(spec)]

    def under(p: str, dirs: list[str]) -> bool:
        return any(p == d or p.startswith(d + "/") for d in dirs)

    return tuple(
        p for p in own.paths if not under(p, mine) and under(p, others) and p.endswith((".yaml", ".yml", ".json"))
    )


def _source_dirs(spec: Mapping[str, Any]) -> list[str]:
    sources = (spec.get("spec") or {}).get("sources") or [] if isinstance(spec, Mapping) else []
    return [str(s.get("path") or "").strip("/") for s in sources if isinstance(s, dict) and s.get("path")]


def _touching(
    failure: Failure,
    found: Blame,
    candidates: tuple[Candidate, ...],
    context: AppContext,
    own: AppSources,
    snap: AppSnapshot | None,
) -> Evidence | None:
    blamed = {c.sha for c in found.culprits}
    mine = [c for c in candidates if c.commit.sha in blamed]
    options = snap.sync_options if snap is not None else ()
    return evidence(failure, mine, manifest_files(context, own), options, own.helm_dirs)


def _kept(found: Blame, touched: Evidence) -> Blame:
    """Blame's culprits cut to those that touched what failed (none: the policy alerts with what was missing)."""
    if not touched.touches:
        return found
    keep = {c.sha for c in touched.commits}
    culprits = tuple(c for c in found.culprits if c.sha in keep)
    if len(culprits) == len(found.culprits):
        return found
    why = "; ".join(dict.fromkeys(t.why for t in touched.touches))
    shown = ", ".join(f"{c.sha[:12]} ({c.subject[:60]})" for c in culprits)
    seen = " (seen in the render)" if "rendered output" in why else ""
    return replace(found, culprits=culprits, reason=f"{found.reason}; narrowed to {shown}: {why}", named=why + seen)


def _unnamed_line(
    incident: Incident, failure: Failure | None, found: Blame, candidates: tuple[Candidate, ...], own: AppSources
) -> str:
    """The evidence line of a failure that names no object (a render error, a failing pod, a degraded app): what
    failed, in Argo CD's or the rollout watch's words, and each culprit's change to the app's files, with how
    narrowing named it (or why it could not) or, for one commit, that it is the only change since the last good."""
    ev = incident.evidence
    if failure is not None:  # Argo CD's words name what failed (a field, a file) even when they name no object
        said = next((v.message for v in failure.verdicts if v.cls is failure.cls), "")
        what = failure.cause + (f" ({said[:WORDS_KEPT]})" if said else "")
    else:  # the detector's, with the app's health message
        health = str(ev.get("health_message") or "")[:WORDS_KEPT]
        what = incident.reason + (f" ({health})" if health and health not in incident.reason else "")
        images = ev.get("failing_images")
        if isinstance(images, list) and images:
            what += f", running {', '.join(str(i) for i in images[:3])}"
    files = {c.commit.sha: c.files for c in candidates} | {x.commit.sha: x.files for c in candidates for x in c.side}
    changes = [f"{c.sha[:7]} {_change(files.get(c.sha, ()), own, c.subject)}" for c in found.culprits]
    since = f"{incident.app} since {(found.last_good or '')[:7]}"
    how = found.named or (f"the only change to {since}" if len(changes) == 1 else f"every change to {since}")
    return f"{what}; {'; '.join(changes)}: {how}"


def _change(files: tuple[str, ...], own: AppSources, subject: str) -> str:
    mine = [f for f in files if touches(f, own)]
    more = f" and {len(mine) - 3} more" if len(mine) > 3 else ""
    return f"changed {', '.join(mine[:3])}{more}" if mine else f"({subject[:60]})"


def _evidence(p: PolicyFacts, found: Blame | None, argocd: ArgoCDView, git: GitView | None) -> dict[str, Any]:
    seen: dict[str, Any] | None = None
    if argocd.snapshot is not None:
        s = argocd.snapshot
        seen = {k: _plain(getattr(s, k)) for k in SEEN_FIELDS}
        seen["operation_message"] = s.operation_message[:MESSAGE_KEPT]
    evidence: dict[str, Any] = {
        "argocd_now": seen,
        "still_failing": p.still_failing,
        "blame": found.evidence() if found else None,
        "opt_in": p.opt_in,
        "suspended": p.suspended,
        "circuit": p.circuit,
        "already_reverted": dict(p.already_reverted),
        "undone_on_branch": dict(p.undone_on_branch),
        "newer_changes": list(p.newer_changes),
        "last_revert_at": p.last_revert_at.isoformat() if p.last_revert_at else None,
        "reverts_last_hour": p.reverts_last_hour,
        "pinned": p.following.pinned if p.following else None,
        "from_watched_repo": p.from_watched_repo,
        "untouched_degraded": list(p.untouched_degraded),
        "pods_not_from_this_deploy": list(p.not_from_deploy),
        "initiated_by": p.initiated_by,
        "auto_sync": p.auto_sync,
    }
    if argocd.error:
        evidence["argocd_error"] = argocd.error
    if git is not None and git.error:
        evidence["git_error"] = git.error
    if git is not None and git.last_good_source:
        evidence["last_good_source"] = git.last_good_source
    if p.following is not None:  # which branch blame read and a revert goes to, and how HEAD was resolved
        evidence |= p.following.evidence()
    if git is not None and git.remote is not None:
        evidence["remote_default_branch"] = git.remote.default
    return evidence


def _plain(v: object) -> object:
    return getattr(v, "value", v)
