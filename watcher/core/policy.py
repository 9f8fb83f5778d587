"""Pure revert policy: from the facts about one incident, revert or only alert, with the rule and the reason."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from watcher.core.appmap import OPT_ANNOTATION
from watcher.core.blame import Blame, BlameOutcome
from watcher.core.branches import Follow, Following
from watcher.core.detect import superseded
from watcher.domain import (
    AUTOMATED,
    FINAL_FAILURE_PHASES,
    MANIFEST_ERROR_CONDITIONS,
    Action,
    AppSnapshot,
    Decision,
    EventKind,
    Health,
    Phase,
    RevertMode,
)

REVERTIBLE_KINDS = frozenset(
    {
        EventKind.SYNC_FAILED,
        EventKind.MANIFEST_ERROR,
        EventKind.DEGRADED,
        EventKind.ROLLOUT_FAILING,
        EventKind.STUCK_PROGRESSING,
    }
)
# Rules that say no commit is at fault: an alert under them names no commit as the one to look at.
NOT_A_COMMIT = frozenset({"cluster_fault"})
# Trouble that shows only after a deploy: only these are bounded by the attribution window. A sync that fails
# is caused by the revision it applies however long that commit waited (a sync window, a paused app).
RUNTIME_KINDS = frozenset({EventKind.DEGRADED, EventKind.ROLLOUT_FAILING, EventKind.STUCK_PROGRESSING})


@dataclass(frozen=True, slots=True)
class RevertRules:
    mode: RevertMode = RevertMode.DRY_RUN
    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()
    cooldown: timedelta = timedelta(minutes=15)
    max_reverts_per_hour: int = 3
    attribution_window: timedelta = timedelta(hours=1)
    fix_wait: timedelta = timedelta(minutes=10)
    revert_without_auto_sync: bool = False


@dataclass(frozen=True, slots=True)
class PolicyFacts:
    """Everything the policy looks at; None means 'could not be found out' and never leads to a revert."""

    app: str
    kind: EventKind
    detected_at: datetime
    opt_in: bool | None = None  # the app's annotation: True opts in, False opts out, None says nothing
    suspended: str | None = None  # why the app is suspended from auto-revert
    circuit: str | None = None  # why the circuit is open
    still_failing: bool | None = None  # None: Argo CD could not be asked
    blame: Blame | None = None  # None: git could not be read
    already_reverted: Mapping[str, str] = field(default_factory=dict)  # culprit sha -> by which revert
    undone_on_branch: Mapping[str, str] = field(default_factory=dict)  # culprit sha -> the commit undoing it
    newer_changes: tuple[str, ...] = ()  # commits after the failing revision that touch the app (a fix?)
    revision: str | None = None  # the failing revision
    head: str | None = None  # the followed branch's head, when git was read
    following: Following | None = None  # which watched branch the app follows (None: not known, no check)
    from_watched_repo: bool | None = None  # False: no source of the app is the watched repo
    untouched_degraded: tuple[str, ...] = ()  # degraded resources the blamed sync did not change
    not_from_deploy: tuple[str, ...] = ()  # failing pods the blamed sync did not create (and none it did)
    initiated_by: str = ""  # who started the failing operation: AUTOMATED, a username, "" unknown
    auto_sync: bool | None = None  # the app has automated sync (None: unknown)
    last_revert_at: datetime | None = None  # this app's last revert pushed or proposed
    reverts_last_hour: int = 0
    failure_class: str | None = None  # content / cluster / unknown from Argo CD's words (None: not a worded kind)
    failure_cause: str = ""  # what the words say, for a person
    evidence_line: str = ""  # the failing object and each culprit's change to it (or which evidence is missing)
    evidence_missing: bool = False  # the failure names objects, and no candidate touched them


def opt_in_from(annotations: Mapping[str, str]) -> bool | None:
    value = str(annotations.get(OPT_ANNOTATION, "")).strip().lower()
    return {"true": True, "enabled": True, "false": False, "disabled": False}.get(value)


def still_failing(snap: AppSnapshot, kind: EventKind, revision: str | None) -> bool:
    """Does a fresh look at the app still show the failure of `kind` at `revision`?"""
    if kind is EventKind.SYNC_FAILED:
        if snap.operation_revision != revision or superseded(snap):
            return False
        return snap.phase in FINAL_FAILURE_PHASES or (snap.phase is Phase.RUNNING and snap.retry_count > 0)
    if kind is EventKind.MANIFEST_ERROR:
        return snap.sync_revision == revision and any(c.type in MANIFEST_ERROR_CONDITIONS for c in snap.conditions)
    if kind is EventKind.DEGRADED:
        return still_deployed(snap, revision) and snap.health is Health.DEGRADED
    if kind is EventKind.STUCK_PROGRESSING:
        return still_deployed(snap, revision) and snap.health is Health.PROGRESSING
    if kind is EventKind.ROLLOUT_FAILING:
        # The rollout has not come good: still on R and not Healthy (Progressing until the deadline, then
        # Degraded), or R's sync still waits on its failing hook or gave up on it. Healthy on R: the pods
        # recovered after all, nothing to revert.
        if snap.operation_revision == revision and not superseded(snap):
            if snap.phase is Phase.RUNNING or snap.phase in FINAL_FAILURE_PHASES:
                return True
        return still_deployed(snap, revision) and snap.health in (Health.PROGRESSING, Health.DEGRADED)
    return False


def still_deployed(snap: AppSnapshot, revision: str | None) -> bool:
    """The live content is still what the sync of `revision` deployed. Argo CD moves `status.sync.revision` to
    every new branch head whose manifests compare equal for the app, running no sync (controller/state.go:1093-1106,
    appcontroller.go:2538-2543), so the revision string alone would end the incident at the next commit to another
    app; the last operation - a successful sync of `revision`, nothing run since - keeps its identity."""
    if not revision:
        return False
    return snap.sync_revision == revision or (snap.phase is Phase.SUCCEEDED and snap.operation_revision == revision)


def decide(f: PolicyFacts, rules: RevertRules, now: datetime) -> Decision:
    """The first rule that stops a revert decides; a revert needs every fact known and every check passed.
    Three stages, in order: may this app be reverted at all, is enough known (and is it the branch's failure),
    and do the culprits pass every safety check."""
    stopped = _scope(f, rules) or _knowledge(f, rules, now) or _culprit_checks(f, rules, now)
    if stopped is not None:
        return stopped
    assert f.blame is not None
    b = f.blame
    culprits = tuple(c.sha for c in b.culprits)
    also = sorted({a for apps in b.also_touched.values() for a in apps})
    reason = b.reason + (f"; the culprit also changed {', '.join(also)}" if also else "")
    if f.following is not None and f.following.branch:
        reason += f"; revert on {f.following.branch}"
    return Decision(Action.REVERT, "culprit_found", reason, culprits=culprits, evidence=_evidence_line(f, b))


def _evidence_line(f: PolicyFacts, b: Blame) -> str:
    """What the revert rests on: the failing object and the culprit's change to it, or (a failure that names no
    object: a render error, a failing image) what blame and narrowing saw."""
    if f.evidence_line:
        return f.evidence_line
    shas = ", ".join(c.sha[:7] for c in b.culprits)
    said = f"{f.failure_cause}; " if f.failure_cause else ""
    since = (b.last_good or "")[:7]
    only = f"the only change to {f.app} since {since}" if len(b.culprits) == 1 else f"changed {f.app} since {since}"
    how = b.named or only
    return f"{said}{shas}: {how}"


def _alert(
    rule: str, reason: str, culprits: tuple[str, ...] = (), open_circuit: bool = False, evidence: str = ""
) -> Decision:
    return Decision(Action.ALERT, rule, reason, culprits, open_circuit, evidence)


def _scope(f: PolicyFacts, rules: RevertRules) -> Decision | None:
    """Configuration and state that rule out a revert whatever happened."""
    if rules.mode is RevertMode.OFF:
        return _alert("mode_off", "auto-revert is off (WATCHER_REVERT__MODE=off)")
    if f.kind not in REVERTIBLE_KINDS:
        return _alert("not_attributed", f"{f.kind.value} is not attributed to a commit")
    if f.opt_in is False:
        return _alert("opted_out", f"the app opts out with the annotation {OPT_ANNOTATION}")
    if f.opt_in is None:
        if not any(fnmatch.fnmatchcase(f.app, g) for g in rules.allow):
            return _alert("not_allowed", f"{f.app} matches none of WATCHER_REVERT__ALLOW {list(rules.allow)}")
        denied = [g for g in rules.deny if fnmatch.fnmatchcase(f.app, g)]
        if denied:
            return _alert("denied", f"{f.app} matches WATCHER_REVERT__DENY {denied[0]!r}")
    if f.suspended:
        return _alert("suspended", f"auto-revert is suspended for {f.app}: {f.suspended}")
    if f.circuit:
        return _alert("circuit_open", f"the revert circuit is open: {f.circuit}")
    if f.from_watched_repo is False:
        return _alert(
            "not_from_watched_repo",
            f"{f.app} deploys {f.revision!r} from outside the watched repo (a Helm repository chart or another "
            "repo): no commit of the watched repo to revert",
        )
    follows = f.following
    if follows is not None and follows.kind is not Follow.BRANCH:
        return _alert(follows.kind.value, _not_followed(f.app, follows))
    return None


def _not_followed(app: str, f: Following) -> str:
    how = f" ({f.note})" if f.note else ""
    if f.kind is Follow.PINNED:
        return f"{app} deploys targetRevision {f.pinned!r}, not a watched branch{how}: nothing on a branch to revert"
    if f.kind is Follow.MIXED:
        return (
            f"{app}'s sources in the watched repo follow different branches ({', '.join(f.branches)}){how}: a "
            "revert on one of them would not undo what the others deploy"
        )
    return f"{app} follows branch {f.branch!r}{how}, which is not in WATCHER_GIT__BRANCHES: nothing is reverted there"


def _knowledge(f: PolicyFacts, rules: RevertRules, now: datetime) -> Decision | None:
    """Unknown facts wait; a failure that is not the branch's (gone, manual, a fix on its way) is no revert."""
    if f.still_failing is None:
        return Decision(Action.WAIT, "argocd_unknown", "Argo CD could not be asked whether the app still fails")
    if not f.still_failing:
        return _alert("no_longer_failing", "a fresh look at the app no longer shows the failure")
    if f.untouched_degraded:
        return _alert(
            "untouched_by_sync",
            f"{', '.join(f.untouched_degraded[:3])} degraded, but the sync of {(f.revision or '')[:12]} did not "
            "change it (a node, a quota, a certificate, the registry): not the commit's doing",
        )
    if f.not_from_deploy:
        pods = ", ".join(p.rsplit("/", 1)[-1] for p in f.not_from_deploy[:3])
        return _alert(
            "pods_not_from_this_deploy",
            f"the pods in trouble ({pods}{' and more' if len(f.not_from_deploy) > 3 else ''}) were not created by "
            f"the sync of {(f.revision or '')[:12]} (an older ReplicaSet's, or older than the sync), and none of its "
            "own pods fails: a node, capacity or the registry, not the commit",
            evidence=f"{', '.join(f.not_from_deploy[:3])} predate the deploy of {(f.revision or '')[:12]}",
        )
    if f.failure_class == "cluster":
        return _alert("cluster_fault", f"{f.failure_cause}; not reverting", evidence=f.failure_cause)
    if f.failure_class == "unknown":
        return _alert(
            "unknown_failure",
            f"Argo CD's words do not say whether a commit or the cluster is at fault ({f.failure_cause}); "
            "not reverting",
            evidence=f.failure_cause,
        )
    if f.blame is None:
        return Decision(Action.WAIT, "git_unknown", "the git history could not be read")
    if f.initiated_by not in ("", AUTOMATED) and f.head and f.revision and f.revision != f.head:
        return _alert(
            "manual_sync",
            f"{f.initiated_by} synced {f.revision[:12]} by hand (the branch head is {f.head[:12]}): a manual sync "
            "or rollback is not a failure of the branch",
        )
    if f.newer_changes:
        newer = ", ".join(sha[:12] for sha in f.newer_changes[:3])
        if now - f.detected_at < rules.fix_wait:
            return Decision(
                Action.WAIT,
                "fix_on_branch",
                f"the branch has newer commits that change {f.app} ({newer}); Argo CD was asked to deploy them",
            )
        return _alert(
            "fix_not_deployed",
            f"newer commits that change {f.app} ({newer}) were not deployed within {ago(rules.fix_wait)}; "
            "not reverting on top of a possible fix",
        )
    return None


def _culprit_checks(f: PolicyFacts, rules: RevertRules, now: datetime) -> Decision | None:
    """What blame found, checked: exactly these commits, not undone already, recent enough, within the limits."""
    b = f.blame
    assert b is not None
    if b.outcome is not BlameOutcome.CULPRITS:
        return _alert(b.outcome.value, b.reason)
    if f.evidence_missing:
        return _alert(
            "culprit_not_touching", f"no commit touched what failed: {f.evidence_line}", evidence=f.evidence_line
        )
    culprits = tuple(c.sha for c in b.culprits)
    bot_reverts = [c for c in b.culprits if c.reverts]  # confirmed by content (revert/reads.py), not by the trailer
    if bot_reverts:
        return _alert(
            "culprit_is_revert",
            f"{bot_reverts[0].sha[:12]} is a revert: its content undoes {bot_reverts[0].reverts[0][:12]}",
            culprits=culprits,
        )
    undone = [sha for sha in culprits if sha in f.undone_on_branch]
    if undone:
        by = f.undone_on_branch[undone[0]][:12]
        if len(undone) < len(culprits):  # a person undid part of it: what is left is theirs to judge
            return _alert(
                "partly_undone_on_branch",
                f"{undone[0][:12]} is already reverted on the branch by {by}, the other culprits are not",
                culprits=culprits,
            )
        return _alert(
            "undone_on_branch",
            f"{undone[0][:12]} is already reverted on the branch by {by}; Argo CD was asked to deploy it",
            culprits=culprits,
        )
    done = [sha for sha in culprits if sha in f.already_reverted]
    if done:
        return _alert(
            "already_reverted",
            f"{done[0][:12]} was already reverted ({f.already_reverted[done[0]]}); not reverting it twice",
            culprits=culprits,
        )
    window = rules.attribution_window
    stale = [c for c in b.culprits if f.kind in RUNTIME_KINDS and f.detected_at - c.committed_at > window]
    if stale:
        return _alert(
            "outside_attribution_window",
            f"{stale[0].sha[:12]} was committed {ago(f.detected_at - stale[0].committed_at)} before the failure "
            f"(window {ago(rules.attribution_window)})",
            culprits=culprits,
        )
    if f.last_revert_at is not None and now - f.last_revert_at < rules.cooldown:
        return _alert(
            "cooldown",
            f"{f.app} was reverted {ago(now - f.last_revert_at)} ago (cooldown {ago(rules.cooldown)})",
            culprits=culprits,
        )
    if f.reverts_last_hour >= rules.max_reverts_per_hour:
        return _alert(
            "rate_limit",
            f"{f.reverts_last_hour} reverts in the last hour (limit {rules.max_reverts_per_hour}): circuit opened",
            culprits=culprits,
            open_circuit=True,
        )
    if f.auto_sync is False and not rules.revert_without_auto_sync:
        return _alert(
            "no_automated_sync",
            f"{f.app} has no automated sync, so Argo CD would not deploy a revert by itself; proposed: revert "
            f"{', '.join(c[:12] for c in culprits)} and sync (WATCHER_REVERT__WITHOUT_AUTO_SYNC=revert to push it)",
            culprits=culprits,
        )
    return None


def ago(d: timedelta) -> str:
    """A duration as the reasons say it: `4m05s`, `2h10m`."""
    s = int(d.total_seconds())
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# What an operator can do about each rule's outcome: `sync-watcher explain` prints it under the reason.
RULE_ADVICE: dict[str, str] = {
    "mode_off": "Nothing to do if intended; set WATCHER_REVERT__MODE=dry-run, push or pull-request to act.",
    "not_attributed": "No commit caused this: look at the cluster (nodes, quotas, certificates, the registry).",
    "opted_out": "The app's annotation sync-watcher.io/auto-revert says false: fix or revert by hand.",
    "not_allowed": "The app is outside WATCHER_REVERT__ALLOW: fix or revert by hand, or widen the globs.",
    "denied": "The app matches WATCHER_REVERT__DENY: fix or revert by hand.",
    "suspended": "A revert of this app did not heal it: fix it by hand, then `sync-watcher resume APP`.",
    "circuit_open": "Too many reverts in an hour: check what is going on, then `sync-watcher resume --circuit`.",
    "pinned_revision": "The app deploys a tag, a commit or a semver range: point its targetRevision at a good one.",
    "unwatched_branch": "The app follows a branch the watcher does not watch: revert on that branch by hand, or add "
    "it to WATCHER_GIT__BRANCHES.",
    "mixed_branches": "The app's sources follow different branches: find the bad change on each and revert by hand.",
    "not_from_watched_repo": "The app deploys a chart version or another repo: set its Application's targetRevision "
    "back to the last good one.",
    "untouched_by_sync": "What degraded was not changed by the deploy: look at the cluster (nodes, quotas, "
    "certificates, the registry).",
    "pods_not_from_this_deploy": "The failing pods predate the deploy: look at their nodes, capacity and images.",
    "sync_window": "A sync window keeps Argo CD from deploying: the watcher decides again when it ends; revert and "
    "sync by hand (where the window allows manual syncs) if it cannot wait.",
    "held_too_long": "Argo CD has not been allowed to sync for long: revert and sync by hand, or open the window.",
    "argocd_unknown": "Waiting for Argo CD to answer; check the watcher's Argo CD token and network if it lasts.",
    "no_longer_failing": "Nothing to do: the app recovered or moved on by itself (for rollout_failing: the new "
    "pods came good after all).",
    "git_unknown": "Waiting for git to answer; check the remote, the credentials and the host key if it lasts.",
    "manual_sync": "A person synced an older revision by hand: sync the branch head, or revert by hand.",
    "fix_on_branch": "A newer commit may fix it: the watcher waits for Argo CD to deploy the branch head.",
    "fix_not_deployed": "Newer commits did not deploy: check the app's sync (is it paused, out of a sync window?).",
    "no_commit_touches_app": "No commit in the range changed the app: look for a shared chart or the cluster.",
    "too_many_candidates": "Several commits changed the app: revert the bad one by hand (the culprits are listed).",
    "unknown": "History does not line up (no good revision, or rewritten): revert by hand.",
    "culprit_is_revert": "The culprit undoes an earlier commit (by content, whoever made it): fix forward by hand.",
    "undone_on_branch": "Already reverted on the branch: the watcher asked Argo CD to deploy it; nothing else to do.",
    "partly_undone_on_branch": "Some culprits were reverted by hand: revert the rest by hand if they are bad.",
    "already_reverted": "This commit was already reverted: look at that revert's outcome.",
    "outside_attribution_window": "The commit is older than the attribution window: likely the cluster, not git.",
    "cooldown": "The app was reverted moments ago: wait for that revert, or revert by hand.",
    "rate_limit": "Too many reverts in an hour opened the circuit: check, then `sync-watcher resume --circuit`.",
    "no_automated_sync": "Argo CD will not deploy a revert by itself: push the proposed revert and sync the app.",
    "culprit_found": "Reverted (or proposed): watch the app come back; the incident closes when it does.",
    "preflight_render_failed": "Reverted before Argo CD synced it (Argo CD cannot render the commit): fix the commit "
    "and push it again.",
    "cluster_fault": "No commit is at fault: fix the cluster side named in the reason (the webhook, the API server, "
    "Argo CD's credentials or repo server), then sync the app: Argo CD's auto-sync does not retry a revision whose "
    "sync failed (controller/appcontroller.go:2595-2599) until a new commit comes.",
    "unknown_failure": "Argo CD's words do not say who is at fault: read the message; revert by hand if a commit "
    "caused it.",
    "culprit_not_touching": "The failure names objects no candidate changed: look at the cluster or at the "
    "Application's project and policies; revert by hand if a commit is at fault after all.",
}


def advice_for(rule: str) -> str:
    return RULE_ADVICE.get(rule, "")
