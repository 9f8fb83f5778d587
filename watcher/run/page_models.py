"""What the pages show, built from plain data (store records, the fleet's status, `now`): text clipped and
cleaned, links checked, rows paged. Pure: no store, no git, no clock; `watcher.run.pages` only renders it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from watcher.core.dora import CHANGE_FAILURE_STAGE
from watcher.core.policy import advice_for
from watcher.core.slack_message import Links
from watcher.domain import (
    DecisionRecord,
    Event,
    EventKind,
    Incident,
    RevertRecord,
    RevertState,
    Suspension,
    app_key,
)
from watcher.ports import FleetStatus

PAGE_SIZE = 100
MESSAGE_MAX = 2000  # Argo CD's message, a reason, a condition
SUBJECT_MAX = 200
NAME_MAX = 253  # a Kubernetes name
DIFF_MAX_LINES = 400
DIFF_LINE_MAX = 400
EVIDENCE_VALUE_MAX = 600
LAST_REVERTS = 10
RECENT_SHOWN = 10
APP_HISTORY = 50

# Characters that change how the text around them is shown (bidi overrides and isolates, as in "Trojan Source",
# CVE-2021-42574) or that a terminal or browser would act on: shown as their code point, never applied.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: object, limit: int) -> str:
    """Untrusted text (git, Argo CD) made inert for display: bidi and control characters shown as `<U+202E>`,
    cut at `limit` characters with the count left out. HTML escaping is the template's (autoescape)."""
    s = "" if text is None else str(text)
    shown = "".join(f"<U+{ord(c):04X}>" if c in BIDI_CONTROLS else c for c in s)
    shown = UNSAFE.sub(lambda m: f"<U+{ord(m.group()):04X}>", shown)
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit]}… ({len(shown) - limit} more characters)"


def safe_url(url: object) -> str | None:
    """Only http(s) links reach an href: a stored URL (a forge's answer) must not be `javascript:`."""
    if not isinstance(url, str) or not re.match(r"https?://[^\s<>\"']+$", url):
        return None
    return url


@dataclass(frozen=True, slots=True)
class Sha:
    """A revision: shown short, the full form in the same element (selectable, and its title)."""

    full: str

    @property
    def short(self) -> str:
        return self.full[:10]


def sha_of(value: object) -> Sha | None:
    return Sha(clean(value, 64)) if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class When:
    """A time in UTC and how long ago it was."""

    iso: str
    text: str
    ago: str


def when(t: datetime | str | None, now: datetime) -> When | None:
    if isinstance(t, str):
        try:
            t = datetime.fromisoformat(t)
        except ValueError:
            return None
    if t is None:
        return None
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return When(t.isoformat(), t.strftime("%Y-%m-%d %H:%M:%S UTC"), age(now - t))


def age(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 0:
        return "in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


# -- the fleet ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Filters:
    environment: str = ""
    namespace: str = ""
    project: str = ""
    page: int = 1

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> Filters:
        """From the query string: unknown keys are ignored, a bad page is page 1 (a page only reads)."""
        page = query.get("page", "1")
        return cls(
            clean(query.get("environment", ""), NAME_MAX),
            clean(query.get("namespace", ""), NAME_MAX),
            clean(query.get("project", ""), NAME_MAX),
            int(page) if page.isdigit() and 0 < int(page) < 1_000_000 else 1,
        )

    def query(self, page: int) -> str:
        """The query string of `page` with the same filters."""
        kept = {"environment": self.environment, "namespace": self.namespace, "project": self.project}
        return urlencode({k: v for k, v in kept.items() if v} | {"page": page})


@dataclass(frozen=True, slots=True)
class AppRow:
    key: str
    name: str
    namespace: str
    project: str
    environment: str
    sync: str
    health: str
    phase: str
    revision: Sha | None
    deployed: When | None
    open_incidents: tuple[str, ...]
    link: str


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: int
    app: str
    app_link: str
    kind: str
    revision: Sha | None
    detected: When | None
    resolved: When | None
    reason: str


@dataclass(frozen=True, slots=True)
class RevertRow:
    id: int
    incident_id: int
    app: str
    state: str
    tone: str
    mode: str
    culprits: tuple[Sha, ...]
    revert: Sha | None
    revert_link: str | None
    pull_request: str | None
    verify: str
    at: When | None


@dataclass(frozen=True, slots=True)
class FleetPage:
    filters: Filters
    apps: list[AppRow]
    total_apps: int
    matching: int
    page: int
    pages: int
    choices: Mapping[str, list[str]]  # filter -> the values seen in the fleet
    incidents: list[IncidentRow]
    recent: list[IncidentRow]  # the last resolved ones: a Slack reader often arrives after the fix
    suspended: list[tuple[str, str, When | None]]
    circuit: str | None
    reverts: list[RevertRow]


def app_link(key: str) -> str:
    """/ui/apps/<namespace>/<name>: an app in Argo CD's own namespace is stored by name alone."""
    namespace, _, name = key.rpartition("/")
    return f"/ui/apps/{quote(namespace or 'argocd', safe='')}/{quote(name, safe='')}"


def key_of(namespace: str, name: str) -> str:
    return app_key(name, namespace)


def fleet_page(
    status: FleetStatus,
    environment_of: Callable[[str], str],
    filters: Filters,
    open_incidents: Sequence[Incident],
    recent_incidents: Sequence[Incident],
    suspended: Mapping[str, Suspension],
    circuit: str | None,
    reverts: Sequence[RevertRecord],
    links: Links,
    now: datetime,
) -> FleetPage:
    """Open incidents first, then the apps (those with an open incident first, then by name), one page of them."""
    open_kinds: dict[str, list[str]] = {}
    for (app, kind), n in status.open_incidents.items():
        if n:
            open_kinds.setdefault(app, []).append(kind)
    rows: list[tuple[bool, str, Any, str]] = []
    choices: dict[str, set[str]] = {"environment": set(), "namespace": set(), "project": set()}
    for key, t in status.trackers.items():
        s = t.last
        if s is None:
            continue
        env = environment_of(key)
        choices["environment"].add(env)
        choices["namespace"].add(s.namespace)
        choices["project"].add(s.project)
        if filters.environment and env != filters.environment:
            continue
        if filters.namespace and s.namespace != filters.namespace:
            continue
        if filters.project and s.project != filters.project:
            continue
        rows.append((key not in open_kinds, key, t, env))
    rows.sort(key=lambda r: (r[0], r[1]))
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page = min(filters.page, pages)
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return FleetPage(
        filters=filters,
        apps=[_app_row(key, t, env, tuple(sorted(open_kinds.get(key, ()))), now) for _, key, t, env in shown],
        total_apps=sum(1 for t in status.trackers.values() if t.last is not None),
        matching=len(rows),
        page=page,
        pages=pages,
        choices={k: sorted(clean(v, NAME_MAX) for v in vs if v) for k, vs in choices.items()},
        incidents=[incident_row(i, now) for i in open_incidents],
        recent=[incident_row(i, now) for i in recent_incidents if i.resolved_at is not None][:RECENT_SHOWN],
        suspended=[
            (clean(a, NAME_MAX), clean(s.reason, MESSAGE_MAX), when(s.since, now)) for a, s in sorted(suspended.items())
        ],
        circuit=clean(circuit, MESSAGE_MAX) if circuit else None,
        reverts=[revert_row(r, links, now) for r in reverts[:LAST_REVERTS]],
    )


def _app_row(key: str, t: Any, env: str, open_kinds: tuple[str, ...], now: datetime) -> AppRow:
    s = t.last
    return AppRow(
        key=clean(key, NAME_MAX * 2),
        name=clean(s.name, NAME_MAX),
        namespace=clean(s.namespace, NAME_MAX),
        project=clean(s.project, NAME_MAX),
        environment=clean(env, NAME_MAX),
        sync=s.sync_status.value if s.sync_status else "Unknown",
        health=s.health.value if s.health else "Unknown",
        phase=s.phase.value if s.phase else "",
        revision=sha_of(s.sync_revision),
        deployed=when(t.deployed_at, now),
        open_incidents=open_kinds,
        link=app_link(key),
    )


def incident_row(i: Incident, now: datetime) -> IncidentRow:
    return IncidentRow(
        id=i.id,
        app=clean(i.app, NAME_MAX * 2),
        app_link=app_link(i.app),
        kind=i.kind.value,
        revision=sha_of(i.revision),
        detected=when(i.detected_at, now),
        resolved=when(i.resolved_at, now),
        reason=clean(i.reason, MESSAGE_MAX),
    )


REVERT_TONES = {
    RevertState.PUSHED: "good",
    RevertState.PULL_REQUEST_OPENED: "good",
    RevertState.DRY_RUN: "neutral",
    RevertState.ALREADY_UNDONE: "neutral",
    RevertState.STARTED: "running",
    RevertState.NOT_PUSHED: "warning",
}


def revert_row(r: RevertRecord, links: Links, now: datetime) -> RevertRow:
    return RevertRow(
        id=r.id,
        incident_id=r.incident_id,
        app=clean(r.app, NAME_MAX * 2),
        state=r.state.value,
        tone=REVERT_TONES.get(r.state, "bad"),
        mode=r.mode.value,
        culprits=tuple(Sha(clean(c, 64)) for c in r.culprits),
        revert=sha_of(r.revert_sha),
        revert_link=safe_url(links.commit(r.revert_sha)) if r.revert_sha else None,
        pull_request=safe_url(r.url),
        verify=r.verify_result.value
        or ("pending" if r.state in (RevertState.PUSHED, RevertState.PULL_REQUEST_OPENED) else ""),
        at=when(r.finished_at or r.started_at, now),
    )


# -- one incident ------------------------------------------------------------------------------------------
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
    notes: tuple[str, ...] = field(default=())


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
    blame: Mapping[str, Any] = _mapping((decision.evidence if decision else {}).get("blame"))
    culprits = tuple(_culprit(c, diffs, links, now) for c in _list(blame.get("culprits")))
    commit = _mapping(ev.get("commit"))
    conditions = tuple(
        (clean(c.get("type"), NAME_MAX), clean(c.get("message"), MESSAGE_MAX))
        for c in (_mapping(x) for x in _list(ev.get("conditions")))
    )
    pods = tuple(
        (
            clean(p.get("name"), NAME_MAX),
            clean(p.get("reason"), MESSAGE_MAX),
            clean(p.get("restarts"), 12),
            clean(", ".join(str(i) for i in _list(p.get("images"))), MESSAGE_MAX),
        )
        for p in (_mapping(x) for x in _list(ev.get("failing_pods")))
    )
    objects = [
        *_list(ev.get("degraded_resources")),
        *_list(_mapping(decision.evidence if decision else {}).get("untouched_degraded")),
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
        paths=tuple(clean(p, NAME_MAX * 2) for p in _list(ev.get("paths"))),
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
    mine = [e for e in events if e.revision == revision and e.at <= _aware(incident.detected_at)]
    if mine:
        add(
            mine[0].at, "Argo CD saw it", clean(mine[0].reason, MESSAGE_MAX), "running", sha_of(revision)
        )
    for e in mine:
        if e.kind is EventKind.DEPLOY_STARTED:
            add(_str(e.evidence.get("started_at")) or e.at, "Sync tried", "Argo CD started a sync of it", "running")
        elif e.kind is EventKind.SYNC_FAILING:
            add(e.at, "Sync failing", clean(e.reason, MESSAGE_MAX), "bad")
    onset = _aware(incident.onset)
    if onset < _aware(incident.detected_at):
        add(onset, "Failing since", "as Argo CD reports it", "bad")
    add(incident.detected_at, "Detected", f"{incident.kind.value}: {clean(incident.reason, MESSAGE_MAX)}", "bad")
    if decision is not None:
        blame = _mapping(decision.evidence.get("blame"))
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
    m = _mapping(c)
    sha = str(m.get("sha") or "")
    lines, cut = diff_lines(diffs.get(sha, ""))
    return Culprit(
        sha=Sha(clean(sha, 64)),
        link=safe_url(links.commit(sha)) if sha else None,
        author=clean(m.get("author"), NAME_MAX),
        subject=clean(m.get("subject"), SUBJECT_MAX),
        committed=when(_str(m.get("committed_at")), now),
        also_touched=tuple(clean(a, NAME_MAX * 2) for a in _list(m.get("also_touched"))),
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
    shown = {"blame", "culprits"}
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
        blame = _mapping(d.evidence.get("blame"))
        if blame:
            return [str(_mapping(c).get("sha") or "") for c in _list(blame.get("culprits"))]
    return []


def incident_paths(incident: Incident) -> list[str]:
    """The paths that define the app, as recorded when the incident opened (the diff is shown on these)."""
    return [str(p) for p in _list(incident.evidence.get("paths"))]


def _commit_text(commit: Mapping[str, Any]) -> str:
    if not commit:
        return ""
    return f"{clean(commit.get('author'), NAME_MAX)}: {clean(commit.get('subject'), SUBJECT_MAX)}"


# -- one app -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Dora:
    deployments: int
    change_failures: int
    change_failure_rate: str
    lead_time: str
    time_to_restore: str


@dataclass(frozen=True, slots=True)
class AppPage:
    key: str
    environment: str
    row: AppRow | None
    paths: tuple[str, ...]
    incidents: tuple[IncidentRow, ...]
    reverts: tuple[RevertRow, ...]
    suspended: str | None
    dora: Dora
    argocd_link: str | None


def app_page(
    key: str,
    status: FleetStatus,
    environment: str,
    incidents: Sequence[Incident],
    reverts: Sequence[RevertRecord],
    deployed: Iterable[Event],
    suspension: Suspension | None,
    links: Links,
    now: datetime,
    since: datetime,
) -> AppPage:
    """One app: its state, its last incidents and reverts (newest first), and DORA's figures since `since`
    (`deployed`: its DEPLOYED events since then)."""
    t = status.trackers.get(key)
    open_kinds = tuple(sorted(k for (a, k), n in status.open_incidents.items() if a == key and n))
    return AppPage(
        key=clean(key, NAME_MAX * 2),
        environment=clean(environment, NAME_MAX),
        row=_app_row(key, t, environment, open_kinds, now) if t is not None and t.last is not None else None,
        paths=tuple(clean(p, NAME_MAX * 2) for p in status.paths.get(key, ())),
        incidents=tuple(incident_row(i, now) for i in incidents[:APP_HISTORY]),
        reverts=tuple(revert_row(r, links, now) for r in reverts[:APP_HISTORY]),
        suspended=clean(suspension.reason, MESSAGE_MAX) if suspension else None,
        dora=dora(list(deployed), [i for i in incidents if _aware(i.detected_at) >= since]),
        argocd_link=safe_url(links.app(key)),
    )


def dora(deployed: Sequence[Event], incidents: Sequence[Incident]) -> Dora:
    """Over the recorded history: deployments, failed changes (incidents a revision opened, as the metrics count
    them: core.dora.CHANGE_FAILURE_STAGE), their share of the attempts, and the mean lead and restore times."""
    failures = [i for i in incidents if i.kind in CHANGE_FAILURE_STAGE]
    never_deployed = sum(1 for i in failures if CHANGE_FAILURE_STAGE[i.kind] == "sync")
    attempts = len(deployed) + never_deployed
    leads = []
    for e in deployed:
        committed = _str(_mapping(e.evidence.get("commit")).get("committed_at"))
        finished = _str(e.evidence.get("finished_at"))
        if committed and finished:
            leads.append(
                (_aware(datetime.fromisoformat(finished)) - _aware(datetime.fromisoformat(committed))).total_seconds()
            )
    restores = [(_aware(i.resolved_at) - _aware(i.onset)).total_seconds() for i in failures if i.resolved_at]
    return Dora(
        deployments=len(deployed),
        change_failures=len(failures),
        change_failure_rate=f"{100 * len(failures) / attempts:.0f} %" if attempts else "-",
        lead_time=_duration(sum(leads) / len(leads)) if leads else "-",
        time_to_restore=_duration(sum(restores) / len(restores)) if restores else "-",
    )


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
