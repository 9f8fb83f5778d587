"""The incident page's view (pure): the story as a timeline, what Argo CD said, the blamed commits with their
bounded diffs, the decision with its rule, evidence and advice, the reverts, the Slack thread."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.core.policy import advice_for
from watcher.core.slack_message import Links
from watcher.domain import (
    DecisionRecord,
    Event,
    EventKind,
    Incident,
    RevertRecord,
    RevertState,
)
from watcher.run.fleet_view import REVERT_TONES, RevertRow, app_link, revert_row
from watcher.run.page_text import (
    MESSAGE_MAX,
    NAME_MAX,
    SUBJECT_MAX,
    Sha,
    When,
    as_list,
    as_mapping,
    as_text,
    aware,
    clean,
    safe_url,
    sha_of,
    when,
)

DIFF_MAX_LINES = 400
DIFF_LINE_MAX = 400
EVIDENCE_VALUE_MAX = 600


@dataclass(frozen=True, slots=True)
class Step:
    """One line of the story: when, what, and a tone for its colour (good, bad, running, neutral)."""

    at: When
    what: str
    detail: str = ""
    tone: str = "neutral"
    sha: Sha | None = None


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: str  # add, del, hunk, file, context
    text: str


@dataclass(frozen=True, slots=True)
class Culprit:
    sha: Sha
    link: str | None
    author: str
    subject: str
    committed: When | None
    also_touched: tuple[str, ...]
    diff: tuple[DiffLine, ...]
    diff_cut: int  # lines left out


@dataclass(frozen=True, slots=True)
class DecisionView:
    action: str
    rule: str
    reason: str
    advice: str
    mode: str
    at: When | None
    blame: str
    last_good: Sha | None
    evidence: tuple[tuple[str, str], ...]  # every other fact the policy read, as compact JSON
    evidence_line: str = ""  # what the decision rests on: the failing object and the culprit's change to it


@dataclass(frozen=True, slots=True)
class IncidentPage:
    id: int
    app: str
    app_link: str
    environment: str
    kind: str
    open: bool
    reason: str
    revision: Sha | None
    revision_commit: str
    detected: When | None
    resolved: When | None
    resolution: str
    argocd_message: str
    health: str
    health_message: str
    conditions: tuple[tuple[str, str], ...]
    failing_objects: tuple[str, ...]
    failing_pods: tuple[tuple[str, str, str, str], ...]  # name, reason, restarts, images
    paths: tuple[str, ...]
    steps: tuple[Step, ...]
    culprits: tuple[Culprit, ...]
    decision: DecisionView | None
    earlier_decisions: int
    reverts: tuple[RevertRow, ...]
    slack_thread: str | None
    argocd_link: str | None
    revision_link: str | None = None


def incident_page(
    incident: Incident,
    decisions: Sequence[DecisionRecord],
    reverts: Sequence[RevertRecord],
    events: Sequence[Event],
    diffs: Mapping[str, str],
    links: Links,
    environment: str,
    now: datetime,
    slack_thread: tuple[str, str] | None = None,
) -> IncidentPage:
    """The story of one incident. `decisions`/`reverts`: newest first (the store's order); `events`: the app's
    events around it, oldest first; `diffs`: culprit sha -> its patch on the app's paths; `slack_thread`:
    (channel, ts) of its Slack thread when a bot token posted one."""
    ev = incident.evidence
    decision = next((d for d in decisions if d.action.value != "wait"), decisions[0] if decisions else None)
    blame: Mapping[str, Any] = as_mapping((decision.evidence if decision else {}).get("blame"))
    culprits = tuple(_culprit(c, diffs, links, now) for c in as_list(blame.get("culprits")))
    commit = as_mapping(ev.get("commit"))
    conditions = tuple(
        (clean(c.get("type"), NAME_MAX), clean(c.get("message"), MESSAGE_MAX))
        for c in (as_mapping(x) for x in as_list(ev.get("conditions")))
    )
    pods = tuple(
        (
            clean(p.get("name"), NAME_MAX),
            clean(p.get("reason"), MESSAGE_MAX),
            clean(p.get("restarts"), 12),
            clean(", ".join(str(i) for i in as_list(p.get("images"))), MESSAGE_MAX),
        )
        for p in (as_mapping(x) for x in as_list(ev.get("failing_pods")))
    )
    objects = [
        *as_list(ev.get("degraded_resources")),
        *as_list(as_mapping(decision.evidence if decision else {}).get("untouched_degraded")),
    ]
    return IncidentPage(
        id=incident.id,
        app=clean(incident.app, NAME_MAX * 2),
        app_link=app_link(incident.app),
        environment=clean(environment, NAME_MAX),
        kind=incident.kind.value,
        open=incident.resolved_at is None,
        reason=clean(incident.reason, MESSAGE_MAX),
        revision=sha_of(incident.revision),
        revision_commit=_commit_text(commit),
        revision_link=safe_url(links.commit(incident.revision)) if incident.revision else None,
        detected=when(incident.detected_at, now),
        resolved=when(incident.resolved_at, now),
        resolution=clean(incident.resolution, MESSAGE_MAX),
        argocd_message=clean(ev.get("message") or ev.get("health_message") or "", MESSAGE_MAX),
        health=clean(ev.get("health") or "", 32),
        health_message=clean(ev.get("health_message") or "", MESSAGE_MAX),
        conditions=conditions,
        failing_objects=tuple(dict.fromkeys(clean(o, NAME_MAX * 3) for o in objects)),
        failing_pods=pods,
        paths=tuple(clean(p, NAME_MAX * 2) for p in as_list(ev.get("paths"))),
        steps=story(incident, decision, reverts, events, culprits, now),
        culprits=culprits,
        decision=_decision_view(decision, blame, now) if decision else None,
        earlier_decisions=max(0, len(decisions) - 1),
        reverts=tuple(revert_row(r, links, now) for r in reverts),
        slack_thread=_slack_link(slack_thread),
        argocd_link=safe_url(links.app(incident.app)),
    )


def story(
    incident: Incident,
    decision: DecisionRecord | None,
    reverts: Sequence[RevertRecord],
    events: Sequence[Event],
    culprits: Sequence[Culprit],
    now: datetime,
) -> tuple[Step, ...]:
    """The timeline, oldest first: committed, Argo CD saw it, sync tried (and each retry), detected, blamed,
    decided, reverted or a pull request opened, the revert deployed, verified, resolved. A step is left out
    when nothing recorded it (a time is never guessed)."""
    steps: list[tuple[datetime, int, Step]] = []

    def add(
        t: datetime | str | None, what: str, detail: str = "", tone: str = "neutral", sha: Sha | None = None
    ) -> None:
        w = when(t, now)
        if w is not None:
            steps.append((datetime.fromisoformat(w.iso), len(steps), Step(w, what, detail, tone, sha)))

    for c in culprits:
        # The commit's own time: when it was pushed is not recorded anywhere the watcher can read.
        if c.committed is not None:
            add(c.committed.iso, "Committed", f"{c.author}: {c.subject}", "neutral", c.sha)
    revision = incident.revision
    mine = [e for e in events if e.revision == revision and e.at <= aware(incident.detected_at)]
    if mine:
        # When the watcher first read Argo CD at the revision: Argo CD's own moment is not in its API.
        seen = f"first read at it: {clean(mine[0].reason, MESSAGE_MAX)}"
        add(mine[0].at, "Argo CD saw it", seen, "running", sha_of(revision))
    for e in mine:
        if e.kind is EventKind.DEPLOY_STARTED:
            add(as_text(e.evidence.get("started_at")) or e.at, "Sync tried", "Argo CD started a sync of it", "running")
        elif e.kind is EventKind.SYNC_FAILING:
            add(e.at, "Sync failing", clean(e.reason, MESSAGE_MAX), "bad")
    onset = aware(incident.onset)
    if onset < aware(incident.detected_at):
        add(onset, "Failing since", "as Argo CD reports it", "bad")
    add(incident.detected_at, "Detected", f"{incident.kind.value}: {clean(incident.reason, MESSAGE_MAX)}", "bad")
    if decision is not None:
        blame = as_mapping(decision.evidence.get("blame"))
        if blame:
            names = ", ".join(f"{c.sha.short} by {c.author}" for c in culprits) or clean(blame.get("outcome"), 64)
            add(decision.at, "Blamed", names, "bad" if culprits else "neutral")
        add(decision.at, "Decided", f"{decision.action.value} ({clean(decision.rule, 64)})", "neutral")
    for r in sorted(reverts, key=lambda r: r.id):
        label = {
            RevertState.PUSHED: "Reverted",
            RevertState.PULL_REQUEST_OPENED: "Pull request opened",
            RevertState.DRY_RUN: "Revert prepared (dry run, nothing pushed)",
        }.get(r.state, f"Revert {r.state.value.replace('_', ' ')}")
        add(r.finished_at or r.started_at, label, "", REVERT_TONES.get(r.state, "bad"), sha_of(r.revert_sha))
        if r.revert_sha:
            deployed = next((e for e in events if e.kind is EventKind.RECOVERED and e.revision == r.revert_sha), None)
            if deployed is not None:
                add(
                    deployed.at,
                    "Deployed",
                    "Argo CD synced the revert: Synced and Healthy",
                    "good",
                    sha_of(r.revert_sha),
                )
        if r.verified_at is not None:
            healed = r.verify_result.value == "healed"
            add(r.verified_at, "Verified", "healed" if healed else "not healed", "good" if healed else "bad")
    if incident.resolved_at is not None:
        add(incident.resolved_at, "Resolved", clean(incident.resolution, MESSAGE_MAX), "good")
    return tuple(s for _, _, s in sorted(steps, key=lambda x: (x[0], x[1])))


def _culprit(c: object, diffs: Mapping[str, str], links: Links, now: datetime) -> Culprit:
    m = as_mapping(c)
    sha = str(m.get("sha") or "")
    lines, cut = diff_lines(diffs.get(sha, ""))
    return Culprit(
        sha=Sha(clean(sha, 64)),
        link=safe_url(links.commit(sha)) if sha else None,
        author=clean(m.get("author"), NAME_MAX),
        subject=clean(m.get("subject"), SUBJECT_MAX),
        committed=when(as_text(m.get("committed_at")), now),
        also_touched=tuple(clean(a, NAME_MAX * 2) for a in as_list(m.get("also_touched"))),
        diff=lines,
        diff_cut=cut,
    )


def diff_lines(patch: str) -> tuple[tuple[DiffLine, ...], int]:
    """A patch as classified lines, at most DIFF_MAX_LINES of at most DIFF_LINE_MAX characters; the count cut."""
    all_lines = patch.splitlines()
    out = []
    for line in all_lines[:DIFF_MAX_LINES]:
        if line.startswith(("diff --git", "index ", "--- ", "+++ ", "new file", "deleted file")):
            kind = "file"
        elif line.startswith("@@"):
            kind = "hunk"
        elif line.startswith("+"):
            kind = "add"
        elif line.startswith("-"):
            kind = "del"
        else:
            kind = "context"
        out.append(DiffLine(kind, clean(line, DIFF_LINE_MAX)))
    return tuple(out), max(0, len(all_lines) - DIFF_MAX_LINES)


def _decision_view(d: DecisionRecord, blame: Mapping[str, Any], now: datetime) -> DecisionView:
    shown = {"blame", "culprits", "evidence_line"}
    evidence = tuple(
        (clean(k, 64), clean(json.dumps(v, default=str, ensure_ascii=False), EVIDENCE_VALUE_MAX))
        for k, v in d.evidence.items()
        if k not in shown and v not in (None, [], {}, "")
    )
    return DecisionView(
        action=d.action.value,
        rule=clean(d.rule, 64),
        reason=clean(d.reason, MESSAGE_MAX),
        advice=clean(advice_for(d.rule) or "", MESSAGE_MAX),
        mode=d.mode.value,
        at=when(d.at, now),
        blame=clean(f"{blame.get('outcome', '')}: {blame.get('reason', '')}" if blame else "", MESSAGE_MAX),
        last_good=sha_of(blame.get("last_good_revision")),
        evidence=evidence,
        evidence_line=clean(str(d.evidence.get("evidence_line") or ""), MESSAGE_MAX),
    )


def _slack_link(thread: tuple[str, str] | None) -> str | None:
    """Slack's permalink form for a message (the workspace's own host also works; slack.com redirects)."""
    if not thread:
        return None
    channel, ts = thread
    if not re.fullmatch(r"[A-Z0-9]{1,32}", channel) or not re.fullmatch(r"\d+\.\d+", ts):
        return None
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


def culprit_shas(decisions: Sequence[DecisionRecord]) -> list[str]:
    """The shas blame named in the newest decision that ran it: the commits whose diffs the page shows."""
    for d in decisions:
        blame = as_mapping(d.evidence.get("blame"))
        if blame:
            return [str(as_mapping(c).get("sha") or "") for c in as_list(blame.get("culprits"))]
    return []


def incident_paths(incident: Incident) -> list[str]:
    """The paths that define the app, as recorded when the incident opened (the diff is shown on these)."""
    return [str(p) for p in as_list(incident.evidence.get("paths"))]


def _commit_text(commit: Mapping[str, Any]) -> str:
    if not commit:
        return ""
    return f"{clean(commit.get('author'), NAME_MAX)}: {clean(commit.get('subject'), SUBJECT_MAX)}"
