"""What people are told (pure): detector events and revert actions become notices with a severity and a route."""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.core.dora import environment_of
from watcher.domain import Event, EventKind, RevertReport, RevertStep


class Severity(enum.IntEnum):
    INFO = 1
    WARNING = 2
    CRITICAL = 3


# A notice is news of a detector event or of a revert step: its kind is that event's or that step's, so a new
# kind of either is a notice kind without a list to keep in step here.
NoticeKind = EventKind | RevertStep
LEGACY_KINDS = {"not_reverted": RevertStep.ALERT_ONLY}  # what notices stored before 2026-12 called it


def notice_kind(value: str) -> NoticeKind:
    """The kind a stored notice names (a recovery is the detector's: the reverter's own is never a notice)."""
    if value in LEGACY_KINDS:
        return LEGACY_KINDS[value]
    return EventKind(value) if value in set(EventKind) else RevertStep(value)


@dataclass(frozen=True, slots=True)
class CommitRef:
    sha: str
    author: str = ""
    subject: str = ""


@dataclass(frozen=True, slots=True)
class Notice:
    """One message's content. `headline` and `detail` are ours; `argocd_message` and commit text are not."""

    kind: NoticeKind
    app: str
    severity: Severity
    headline: str
    detail: str
    revision: str | None = None
    incident_id: int | None = None
    argocd_message: str = ""
    revision_commit: CommitRef | None = None  # the revision Argo CD tried (the head of a push, maybe innocent)
    culprits: tuple[CommitRef, ...] = ()  # the commits blame found: these are the ones to look at
    revert_sha: str | None = None
    url: str | None = None  # pull or merge request
    rule: str = ""
    environment: str = ""
    evidence: str = ""  # what a revert (or an alert) rests on: the failing object and the culprit's change to it
    resolves: bool = False  # the app is healthy again (or gone): close the incident's thread
    only_to_close: bool = False  # news only where an incident is open (an app removed while failing)

    @property
    def dedup_key(self) -> str:
        return f"{self.app}|{self.revision or '-'}|{self.kind.value}"


# (severity, headline) per detector event that people hear about; deploys are not news.
EVENT_NOTICES: dict[EventKind, tuple[Severity, str]] = {
    EventKind.SYNC_FAILING: (Severity.WARNING, "Sync failing"),
    EventKind.SYNC_FAILED: (Severity.CRITICAL, "Sync failed"),
    EventKind.MANIFEST_ERROR: (Severity.CRITICAL, "Manifests cannot be generated"),
    EventKind.DEGRADED: (Severity.CRITICAL, "Degraded after deploy"),
    EventKind.ROLLOUT_FAILING: (Severity.CRITICAL, "New rollout failing"),
    EventKind.STUCK_PROGRESSING: (Severity.WARNING, "Stuck progressing"),
    EventKind.DEGRADED_UNATTRIBUTED: (Severity.WARNING, "Degraded, not caused by a commit"),
    EventKind.RECOVERED: (Severity.INFO, "Recovered"),
    EventKind.APP_REMOVED: (Severity.INFO, "Application removed"),
}
# Rules under which not reverting is the expected, configured outcome rather than a call for a human.
QUIET_RULES = frozenset({"mode_off", "not_allowed", "denied", "opted_out", "no_longer_failing", "undone_on_branch"})


def from_event(e: Event, environment: str | None = None) -> Notice | None:
    """`environment`: the watcher's (from the Application's labels); default: from the app's name."""
    spec = EVENT_NOTICES.get(e.kind)
    if spec is None:
        return None
    kind = e.kind
    severity, headline = spec
    ev = e.evidence
    detail = e.reason
    if kind is EventKind.APP_REMOVED:
        detail = "The Application was deleted from Argo CD; its open incidents are closed."
    if kind is EventKind.ROLLOUT_FAILING:
        detail = failing_pods_text(ev.get("failing_pods"))
    if kind is EventKind.RECOVERED:
        onset = ev.get("incident_onset")
        took = (e.at - datetime.fromisoformat(onset)).total_seconds() if isinstance(onset, str) else None
        detail = "Synced and Healthy again" + (f" after {human_duration(took)}" if took is not None else "")
    return Notice(
        kind=kind,
        app=e.app,
        severity=severity,
        headline=headline,
        detail=detail,
        revision=e.revision,
        incident_id=e.incident_id,
        argocd_message=_argocd_message(e.kind, ev),
        revision_commit=_commit_ref(ev.get("commit")),
        environment=environment_of(e.app) if environment is None else environment,
        resolves=kind in (EventKind.RECOVERED, EventKind.APP_REMOVED),
        only_to_close=kind is EventKind.APP_REMOVED,
    )


def failing_pods_text(pods: object, shown: int = 3) -> str:
    """Which of the new rollout's pods fail and why, one line each: what on-call looks at first."""
    rows = [p for p in pods if isinstance(p, dict)] if isinstance(pods, list) else []
    if not rows:
        return "The new rollout's pods keep failing"
    lines = []
    for p in rows[:shown]:
        restarts = f", {p.get('restarts')} restarts" if p.get("restarts") else ""
        images = ", ".join(str(i) for i in p.get("images") or [])
        lines.append(f"{p.get('name')}: {p.get('reason')}{restarts}" + (f" ({images})" if images else ""))
    more = f"\n…and {len(rows) - shown} more" if len(rows) > shown else ""
    return "The new rollout's pods keep failing:\n" + "\n".join(lines) + more


ReportText = Callable[[RevertReport, str], str]  # (the report, "`sha1`, `sha2`") -> our words
# What the reverter reports (ports.Listener.on_report) -> (severity, headline, detail). Its own "recovered"
# is absent on purpose: the detector's recovery event tells it, once, with the time to recover.
REPORT_NOTICES: dict[RevertStep, tuple[Severity, ReportText, ReportText]] = {
    RevertStep.REVERT_PUSHED: (
        Severity.WARNING,
        lambda r, names: "Reverted",
        lambda r, names: f"Pushed a revert of {names}; Argo CD deploys it now.",
    ),
    RevertStep.REVERT_PROPOSED: (
        Severity.WARNING,
        lambda r, names: "Revert proposed",
        lambda r, names: f"Opened a pull request that reverts {names}; merge it to deploy the revert.",
    ),
    RevertStep.REVERT_DRY_RUN: (
        Severity.INFO,
        lambda r, names: "Would revert (dry run)",
        lambda r, names: f"Dry-run mode: a revert of {names} applies cleanly; nothing was pushed.",
    ),
    RevertStep.REVERT_FAILED: (
        Severity.CRITICAL,
        lambda r, names: f"Revert failed ({(r.detail.outcome or 'failed').replace('_', ' ')})",
        lambda r, names: "Nothing was pushed to the branch; a human must fix or revert it.",
    ),
    RevertStep.ALERT_ONLY: (
        Severity.WARNING,
        lambda r, names: "Not reverted",
        lambda r, names: r.detail.reason,
    ),
    RevertStep.SUSPENDED: (
        Severity.CRITICAL,
        lambda r, names: "Auto-revert suspended",
        lambda r, names: f"{r.detail.reason}. Run `sync-watcher resume {r.app}` once it is fixed.",
    ),
    RevertStep.CIRCUIT_OPEN: (
        Severity.CRITICAL,
        lambda r, names: "Auto-revert stopped (circuit open)",
        lambda r, names: f"{r.detail.reason}. No app is reverted until `sync-watcher resume --circuit`.",
    ),
}


def from_report(r: RevertReport, environment: str | None = None) -> Notice | None:
    """A revert step the reverter reported as a notice; None for steps not worth one."""
    spec = REPORT_NOTICES.get(r.step)
    if spec is None:
        return None
    severity, headline, detail = spec
    culprits = tuple(CommitRef(c.sha, c.author, c.subject) for c in r.culprits)
    names = ", ".join(f"`{c.sha[:10]}`" for c in culprits) or "the culprit"
    if r.detail.rule in QUIET_RULES:
        severity = Severity.INFO
    return Notice(
        r.step,
        app=r.app,
        severity=severity,
        headline=headline(r, names),
        detail=detail(r, names),
        revision=r.revision,
        incident_id=r.incident_id,
        argocd_message=r.detail.error,
        culprits=culprits,
        revert_sha=r.detail.revert,
        url=r.detail.url,
        rule=r.detail.rule,
        environment=environment_of(r.app) if environment is None else environment,
        evidence=r.detail.evidence,
    )


@dataclass(frozen=True, slots=True)
class Route:
    apps: str
    channel: str
    min_severity: Severity | None  # None: muted


@dataclass(frozen=True, slots=True)
class Routing:
    routes: tuple[Route, ...]
    default_channel: str
    min_severity: Severity


def route(notice: Notice, routing: Routing) -> str | None:
    """The channel of the first route whose apps match and whose bar the notice reaches (a route with
    min_severity "off" mutes its apps); else the default channel if the notice reaches the global bar."""
    for r in routing.routes:
        if not fnmatch.fnmatchcase(notice.app, r.apps):
            continue
        if r.min_severity is None:
            return None
        if notice.severity >= r.min_severity:
            return r.channel or routing.default_channel
    return routing.default_channel if notice.severity >= routing.min_severity else None


def destination(n: Notice, open_thread_channels: Sequence[str], routing: Routing) -> str | None:
    """Where a notice goes: a recovery (or removal) to where the app's open alerts went, whatever its own
    severity; a removal with nothing open nowhere; everything else by `route`."""
    if n.resolves and open_thread_channels:
        return open_thread_channels[0]
    return None if n.only_to_close else route(n, routing)


def routing_from(routes: Sequence[Mapping[str, str]], default_channel: str, min_severity: str) -> Routing:
    def level(name: str) -> Severity | None:
        return None if name == "off" else Severity[name.upper()]

    return Routing(
        tuple(Route(r.get("apps", "*"), r.get("channel", ""), level(r.get("min_severity", "info"))) for r in routes),
        default_channel,
        Severity[min_severity.upper()],
    )


def human_duration(seconds: float) -> str:
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def _argocd_message(kind: EventKind, ev: Mapping[str, Any]) -> str:
    if kind is EventKind.MANIFEST_ERROR:
        return "\n".join(str(c.get("message", "")) for c in ev.get("conditions") or () if isinstance(c, dict))
    if kind in (
        EventKind.DEGRADED,
        EventKind.DEGRADED_UNATTRIBUTED,
        EventKind.STUCK_PROGRESSING,
        EventKind.ROLLOUT_FAILING,
    ):
        return str(ev.get("health_message") or "")
    if kind in (EventKind.RECOVERED, EventKind.APP_REMOVED):
        return ""
    return str(ev.get("message") or "")


def _commit_ref(c: object) -> CommitRef | None:
    if not isinstance(c, Mapping) or not c.get("sha"):
        return None
    return CommitRef(str(c["sha"]), str(c.get("author", "")), str(c.get("subject", "")))


def notice_to_json(n: Notice) -> dict[str, Any]:
    return {
        "kind": n.kind.value,
        "app": n.app,
        "severity": n.severity.name.lower(),
        "headline": n.headline,
        "detail": n.detail,
        "revision": n.revision,
        "incident_id": n.incident_id,
        "argocd_message": n.argocd_message,
        "revision_commit": _commit_json(n.revision_commit) if n.revision_commit else None,
        "culprits": [_commit_json(c) for c in n.culprits],
        "revert_sha": n.revert_sha,
        "url": n.url,
        "rule": n.rule,
        "environment": n.environment,
        "evidence": n.evidence,
    }


def notice_from_json(d: Mapping[str, Any]) -> Notice:
    return Notice(
        kind=notice_kind(str(d["kind"])),
        app=str(d["app"]),
        severity=Severity[str(d["severity"]).upper()],
        headline=str(d["headline"]),
        detail=str(d["detail"]),
        revision=d.get("revision"),
        incident_id=d.get("incident_id"),
        argocd_message=str(d.get("argocd_message") or ""),
        revision_commit=_commit_ref(d.get("revision_commit")),
        environment=str(d.get("environment") or ""),
        culprits=tuple(c for c in (_commit_ref(x) for x in d.get("culprits") or ()) if c is not None),
        revert_sha=d.get("revert_sha"),
        url=d.get("url"),
        rule=str(d.get("rule") or ""),
        evidence=str(d.get("evidence") or ""),
    )


def _commit_json(c: CommitRef) -> dict[str, str]:
    return {"sha": c.sha, "author": c.author, "subject": c.subject}
