"""`sync-watcher demo`: a GitOps repo, the Argo CD simulator and the watcher, one good and one bad change."""

from __future__ import annotations

import shutil
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.core.notices import Notice, from_event, from_report
from watcher.core.slack_message import header_text
from watcher.domain import Commit, Event, EventKind, RevertReport, RevertStep
from watcher.ports import Listener
from watcher.run.daemon import Daemon
from watcher.sim.world import SimWorld

BAD_APP = "plate-api-stg"


@dataclass
class Timeline(Listener):
    started: float = field(default_factory=time.monotonic)
    entries: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    reports: list[RevertReport] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def add(self, what: str, **details: Any) -> None:
        with self.lock:
            self.entries.append({"t": round(time.monotonic() - self.started, 2), "what": what, **details})

    def on_event(self, e: Event) -> None:
        with self.changed:
            self.events.append(e)
            self.changed.notify_all()

    def on_report(self, r: RevertReport) -> None:
        with self.changed:
            self.reports.append(r)
            self.changed.notify_all()

    def wait_report(self, step: RevertStep | tuple[RevertStep, ...], timeout: float) -> RevertReport:
        """The first report of `step` (or of any of them)."""
        steps = (step,) if isinstance(step, RevertStep) else step
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for r in self.reports:
                    if r.step in steps:
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"the demo did not see {' or '.join(s.value for s in steps)} in time")
                self.changed.wait(left)

    def wait_for(self, test: Callable[[Event], bool], timeout: float) -> Event:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for e in self.events:
                    if test(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the demo did not see the expected event in time")
                self.changed.wait(left)


DASHBOARD = "config/grafana/sync-watcher.json"
ALERT_RULES = "config/prometheus/sync-watcher-rules.yaml"
ARGOCD_MESSAGE_SHOWN = 400


def repo_file(relative: str) -> str:
    """The file's full path in this checkout, or its path in the repository when installed from a wheel."""
    path = Path(__file__).resolve().parents[1] / relative
    return str(path) if path.exists() else f"{relative} (in the sync-watcher repository)"


def run_demo(
    workdir: Path | None = None,
    *,
    http_port: int = 0,
    before_stop: Callable[[Daemon], None] | None = None,
    hold: Callable[[dict[str, Any]], None] | None = None,
    changes: list[tuple[str, str, Any, str, str]] | None = None,
) -> dict[str, Any]:
    """The whole loop once. A test can fix the metrics port and look at the running watcher before it stops;
    `hold` gets the result while the watcher still serves its pages (the CLI waits there for Enter); `changes`
    replaces the pushed commits (app, values key, value, subject, author; a value of -1 breaks the app)."""
    root = Path(workdir or tempfile.mkdtemp(prefix="sync-watcher-demo-"))
    timeline = Timeline()
    slack = SlackPreview()
    world = SimWorld.start(root)
    daemon: Daemon | None = None
    try:
        settings = world.watcher_settings(root)
        settings = settings.model_copy(
            update={
                "revert": settings.revert.model_copy(update={"mode": "push"}),
                "http": settings.http.model_copy(update={"port": http_port}),
                # act two: a commit Argo CD cannot render is reverted in stg before Argo CD syncs it
                "preflight": settings.preflight.model_copy(
                    update={"revert_environments": ["stg"], "poll_interval_seconds": 0.5}
                ),
            }
        )
        daemon = Daemon(settings, argocd_retry_max_wait=0.5, listeners=[timeline, slack])
        daemon.preflight.listeners.append(slack._add)
        initial = world.work.git("rev-parse", "HEAD")
        timeline.add("commit", sha=initial[:10], author="Platform Team", subject="Initial GitOps layout")
        daemon.start()
        apps = {a["metadata"]["name"] for a in world.controller.snapshot()}
        for app in sorted(apps):
            timeline.wait_for(_deployed(app), 30)
        timeline.add("all_synced", apps=len(apps), revision=initial[:10])

        # One push, three commits: two good changes to other apps around one bad change.
        commits: list[dict[str, Any]] = []
        for app, key, value, subject, author in changes or CHANGES:
            values = f"helm/applications/{app.rsplit('-', 1)[0]}/values-{app.rsplit('-', 1)[1]}.yaml"
            sha = world.work.commit(subject, {values: world.work.set_value(values, key, value)}, author)
            commits.append({"app": app, "sha": sha, "subject": subject, "author": author, "good": value != -1})
        pushed_at = time.monotonic()
        world.work.push()
        for c in commits:
            timeline.add("commit", sha=c["sha"][:10], author=c["author"], subject=c["subject"])
        bad = next(c for c in commits if not c["good"])
        for c in commits:
            if c["good"]:
                timeline.wait_for(_deployed(c["app"], commits[-1]["sha"]), 30)  # Argo CD syncs the head
                timeline.add("deployed", app=c["app"], revision=commits[-1]["sha"][:10])
        failed = timeline.wait_for(lambda e: e.app == BAD_APP and e.kind is EventKind.SYNC_FAILED, 30)
        detected_at = time.monotonic()
        timeline.add(
            "failure_detected",
            app=BAD_APP,
            kind=failed.kind.value,
            revision=(failed.revision or "")[:10],
            message=str(failed.evidence.get("message", "")),
        )
        pushed = timeline.wait_report(RevertStep.REVERT_PUSHED, 30)
        decision = daemon.store.audit.decisions(app=BAD_APP, limit=1)[0]
        blamed: Any = decision.evidence.get("blame") or {}
        culprits = blamed.get("culprits") or []
        for c in culprits:
            timeline.add("blamed", app=BAD_APP, sha=c["sha"][:10], author=c["author"], subject=c["subject"])
        reverted_at = time.monotonic()
        revert_sha = str(pushed.detail.revert)
        timeline.add("revert_pushed", app=BAD_APP, revert=revert_sha[:10], culprit=bad["sha"][:10])
        # The refused sync never changed the cluster, so the revert needs no sync: "restored", not "healed".
        back = timeline.wait_report((RevertStep.RECOVERED, RevertStep.RESTORED), 60)
        recovered_at = time.monotonic()
        timeline.add(back.step.value, app=BAD_APP, revision=revert_sha[:10])
        preflight = _act_two(world, daemon, timeline, slack)
        remote = daemon.repo.commits_touching([], preflight["revert"], limit=7)
        revert_commit = daemon.repo.commit(revert_sha)
        if before_stop is not None:
            before_stop(daemon)
        base = f"http://127.0.0.1:{daemon.http.port}"
        result = {
            "repo": world.repo_url,
            "argocd": world.argocd_url,
            "timeline": timeline.entries,
            "commits": commits,
            "detected": {
                "app": failed.app,
                "kind": failed.kind.value,
                "revision": failed.revision,
                "culprit_matches_bad_commit": [c["sha"] for c in culprits] == [bad["sha"]],
                "seconds_from_push": round(detected_at - pushed_at, 2),
            },
            "decision": {"action": decision.action.value, "rule": decision.rule, "reason": decision.reason},
            "revert": {
                "sha": revert_sha,
                **revert_summary(revert_commit, bad["sha"]),
                "seconds_from_detection": round(reverted_at - detected_at, 2),
            },
            "recovered": {"seconds_from_push": round(recovered_at - pushed_at, 2)},
            "preflight": preflight,
            "branch_now": [f"{c.sha[:10]} {c.author}: {c.subject}" for c in remote],
            "open_incidents": [
                {"id": i.id, "app": i.app, "kind": i.kind.value}
                for i in daemon.store.detection.incidents(open_only=True)
            ],
            "total_seconds": round(time.monotonic() - timeline.started, 2),
            "slack": slack.lines,
            "metrics_url": f"{base}/metrics",
            "fleet_url": f"{base}/ui/",
            "incident_url": f"{base}/ui/incidents/{decision.incident_id}",
        }
        if hold is not None:
            hold(result)
        return result
    finally:
        if daemon is not None:
            daemon.stop()
        world.stop()
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)


PREFLIGHT_APP = "plate-web-stg"
BROKEN_SUBJECT = f"{PREFLIGHT_APP}: raise the memory limit"
# Argo CD without a webhook first looks at a push 0-7 min later (docs/argocd-conformance.md rows 10-12); here, seconds.
ARGOCD_POLL_ACT_TWO = 8.0


def _act_two(world: SimWorld, daemon: Daemon, timeline: Timeline, slack: SlackPreview) -> dict[str, Any]:
    """A values file that is no longer YAML: Argo CD's own renderer, asked by the pre-flight, cannot render it,
    and the commit is reverted before Argo CD has even looked at it (so it is never synced)."""
    world.controller.timings.git_poll_seconds = ARGOCD_POLL_ACT_TWO
    # A tick under way finishes on the fast period; the next one sees the new period and restarts the resync
    # (sim/refresh.py rearm), skipping apps compared less than ARGOCD_POLL_ACT_TWO ago, so the push below is first
    # compared a whole period later.
    time.sleep(0.6)
    world.work.git("pull", "-q", "--rebase", "origin", "main")  # the revert of act one
    values = "helm/applications/plate-web/values-stg.yaml"
    broken = world.work.commit(
        BROKEN_SUBJECT, {values: world.work.read(values) + "resources: {limits: [\n"}, "Dev Four"
    )
    pushed_at = time.monotonic()
    world.work.push()
    timeline.add("commit", sha=broken[:10], author="Dev Four", subject=BROKEN_SUBJECT)
    records = daemon.store.preflight
    found = _until(lambda: records.verdicts(app=PREFLIGHT_APP, commit_sha=broken, limit=1), 30, "pre-flight verdict")[0]
    error = str(found.evidence.get("argocd_error", ""))
    timeline.add("preflight", app=PREFLIGHT_APP, sha=broken[:10], verdict=found.verdict, message=error)
    row = _until(
        lambda: [r for r in daemon.store.audit.reverts() if r.culprits == (broken,) and r.revert_sha], 30, "revert"
    )[0]
    assert row.revert_sha is not None
    reverted_after = time.monotonic() - pushed_at
    timeline.add("preflight_reverted", app=PREFLIGHT_APP, revert=row.revert_sha[:10], culprit=broken[:10])
    incident = daemon.store.detection.incident(row.incident_id)
    _until(lambda: (i := daemon.store.detection.incident(row.incident_id)) and i.resolved_at, 30, "revert verified")
    seen = [e for e in daemon.store.detection.events(app=PREFLIGHT_APP) if e.get("revision") == broken]
    decision = next(d for d in daemon.store.audit.decisions(app=PREFLIGHT_APP) if d.incident_id == row.incident_id)
    return {
        "app": PREFLIGHT_APP,
        "commit": broken,
        "verdict": found.verdict,
        "argocd_error": error,
        "seconds_to_verdict": round((found.judged_at - found.seen_at).total_seconds(), 2),
        "seconds_from_push_to_revert": round(reverted_after, 2),
        "rule": decision.rule,
        "revert": row.revert_sha,
        "incident": incident.id if incident else None,
        "argocd_saw_it": bool(seen),
    }


def _until(test: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = test()
        if found:
            return found
        time.sleep(0.05)
    raise TimeoutError(f"the demo did not see the {what} in time")


CHANGES = [
    ("plate-web-stg", "image.tag", "1.26.0", "plate-web-stg: bump image to 1.26.0", "Dev One"),
    (BAD_APP, "replicaCount", -1, f"{BAD_APP}: scale down for the weekend", "Dev Two"),
    ("plate-cache-stg", "image.tag", "7.2.5", "plate-cache-stg: bump redis to 7.2.5", "Dev Three"),
]


def revert_summary(revert_commit: Commit | None, bad_sha: str) -> dict[str, Any]:
    """What the revert commit's trailers say it undid, and whether that is the bad commit alone."""
    reverts = revert_commit.reverts if revert_commit else ()
    return {"reverts": list(reverts), "only_the_bad_commit": revert_commit is not None and reverts == (bad_sha,)}


def _deployed(app: str, revision: str | None = None) -> Callable[[Event], bool]:
    return lambda e: e.app == app and e.kind is EventKind.DEPLOYED and revision in (None, e.revision)


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def render_text(result: dict[str, Any]) -> str:
    lines = ["sync-watcher demo: simulated Argo CD + a real git daemon on 127.0.0.1, auto-revert in push mode", ""]
    for e in result["timeline"]:
        what = e["what"]
        if what == "commit":
            text = f"commit   {e['sha']}  {e['author']:<14} {e['subject']}"
        elif what == "all_synced":
            text = f"synced   {e['apps']} apps synced and healthy at {e['revision']}"
        elif what == "deployed":
            text = f"deployed {e['app']} at {e['revision']}: sync succeeded"
        elif what == "revert_pushed":
            text = f"REVERTED {e['app']}: pushed {e['revert']} reverting {e['culprit']} (and nothing else)"
        elif what == "recovered":
            text = f"healthy  {e['app']} synced and healthy on the revert {e['revision']}"
        elif what == "preflight":
            text = (
                f"JUDGED   {e['sha']} for {e['app']} before Argo CD looked at it: {e['verdict']}\n"
                f"{argocd_message(e['message'])}"
            )
        elif what == "preflight_reverted":
            text = f"REVERTED {e['app']}: pushed {e['revert']} reverting {e['culprit']}, never synced by Argo CD"
        elif what == "restored":
            text = (
                f"restored {e['app']} Synced and Healthy on the revert {e['revision']} with no sync needed: the "
                "refused change never reached the cluster (this restores the live state; it proves no culprit)"
            )
        elif what == "blamed":
            text = f"BLAMED   {e['sha']} by {e['author']}: {e['subject']} (the only new commit that changed {e['app']})"
        else:
            text = f"DETECTED {e['kind']} on {e['app']} at revision {e['revision']}\n{argocd_message(e['message'])}"
        lines.append(f"  +{e['t']:>6.2f}s  {text}")
    d, r, p = result["detected"], result["revert"], result["preflight"]
    lines += [
        "",
        f"decision: {result['decision']['action']} ({result['decision']['rule']}): {result['decision']['reason']}",
        f"time to detect: {d['seconds_from_push']}s from the push; revert pushed {r['seconds_from_detection']}s "
        f"after detection; healthy again {result['recovered']['seconds_from_push']}s after the push",
        f"the revert undoes only the bad commit: {'yes' if r['only_the_bad_commit'] else 'NO'}",
        f"pre-flight: {p['verdict']} {p['seconds_to_verdict']}s after the watcher saw {p['commit'][:10]}, reverted "
        f"({p['rule']}) {p['seconds_from_push_to_revert']}s after the push; Argo CD "
        f"{'saw it first' if p['argocd_saw_it'] else 'never saw it'}",
        "branch now:",
        *[f"  {line}" for line in result["branch_now"]],
        f"open incidents: {len(result['open_incidents'])}; demo took {result['total_seconds']}s; nothing left running",
        "",
        "Slack would have posted (set WATCHER_SLACK__WEBHOOK_URL, or a bot token for one thread per incident):",
        *[f"  {line}" for line in result["slack"]],
        "",
        f"Grafana dashboard: {repo_file(DASHBOARD)}",
        "  import it: Grafana > Dashboards > New > Import > upload the file, pick your Prometheus data source;",
        "  the Helm chart ships it as a ConfigMap for Grafana's dashboard sidecar.",
        f"Prometheus alert rules: {repo_file(ALERT_RULES)} (promtool tests beside it)",
        f"Metrics were served at {result['metrics_url']} while the demo ran (`sync-watcher run` serves them too).",
        f"The incident's page, the whole story in a browser: {result['incident_url']}",
    ]
    return "\n".join(lines)


def argocd_message(message: str) -> str:
    """Argo CD's message under the timeline's text, wrapped; a long one is cut at a word, with "…"."""
    short = textwrap.shorten(message, ARGOCD_MESSAGE_SHOWN, placeholder=" …")
    return textwrap.fill(short, 118, initial_indent=f"{'':19}Argo CD: ", subsequent_indent=f"{'':28}")


class SlackPreview(Listener):
    """What the Slack notifier would post, as one line per notice, without a workspace."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def on_event(self, e: Event) -> None:
        self._add(from_event(e))

    def on_report(self, r: RevertReport) -> None:
        self._add(from_report(r))

    def _add(self, notice: Notice | None) -> None:
        if notice is None:
            return
        culprits = ", ".join(f"{c.sha[:10]} by {c.author}" for c in notice.culprits)
        line = f"[{notice.severity.name.lower():<8}] {header_text(notice)}: {notice.detail}"
        with self._lock:
            self.lines.append(line + (f" (culprit: {culprits})" if culprits else ""))
