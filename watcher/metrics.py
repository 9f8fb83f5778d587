"""Prometheus metrics: state mirrored at scrape time by a Collector, events counted as they happen."""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from watcher import __version__
from watcher.domain import INCIDENT_KINDS, AppSnapshot, RevertState, VerifyResult
from watcher.ledger import LedgerCounts

LATENCY_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
POLL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class StateView:
    """What the collector reads at scrape time; the service provides it."""

    apps: Callable[[], Iterable[AppSnapshot]]
    open_incidents: Callable[[], Mapping[tuple[str, str], int]]  # (app, kind) -> count
    environment: Callable[[str], str] = lambda _key: ""
    last_deploys: Callable[[], Iterable[tuple[str, float]]] = lambda: ()  # (app, unix time of its last deploy)


class StateCollector(Collector):
    def __init__(self, view: StateView):
        self.view = view

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(
            "sync_watcher_app_info",
            "One series per watched Argo CD Application with its current sync and health state.",
            # app_namespace, not namespace: a Kubernetes scrape adds the pod's own `namespace` label.
            labels=[
                "name",
                "app_namespace",
                "project",
                "environment",
                "sync_status",
                "health_status",
                "operation_phase",
            ],
        )
        for s in self.view.apps():
            info.add_metric(
                [
                    s.name,
                    s.namespace,
                    s.project,
                    self.view.environment(s.key),
                    s.sync_status.value if s.sync_status else "Unknown",
                    s.health.value if s.health else "Unknown",
                    s.phase.value if s.phase else "None",
                ],
                1.0,
            )
        yield info
        open_incidents = GaugeMetricFamily(
            "sync_watcher_open_incidents", "Incidents detected and not yet recovered.", labels=["name", "kind"]
        )
        for (app, kind), count in sorted(self.view.open_incidents().items()):
            open_incidents.add_metric([app, kind], float(count))
        yield open_incidents
        deployed = GaugeMetricFamily(
            "sync_watcher_app_last_deploy_timestamp_seconds",
            "Unix time of the app's last successful sync of a new revision.",
            labels=["name"],
        )
        for app, at in self.view.last_deploys():
            deployed.add_metric([app], at)
        yield deployed


class Metrics:
    """Every metric of one watcher, in its own registry (tests run several watchers in one process)."""

    def __init__(self, view: StateView | None = None):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.failures = Counter("sync_watcher_failures", "Failures detected, by kind.", ["name", "kind"], registry=r)
        self.events = Counter("sync_watcher_events", "Events the detector emitted, by kind.", ["kind"], registry=r)
        self.commit_to_sync = Histogram(
            "sync_watcher_commit_to_sync_seconds",
            "Time from a commit to Argo CD finishing a successful sync of it.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.time_to_detect = Histogram(
            "sync_watcher_time_to_detect_seconds",
            "Time from the failure's onset (as Argo CD reports it) to its detection.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.poll_duration = Histogram(
            "sync_watcher_poll_duration_seconds", "Duration of one poll.", ["source"], buckets=POLL_BUCKETS, registry=r
        )
        self.poll_errors = Counter("sync_watcher_poll_errors", "Polls that failed.", ["source", "error"], registry=r)
        self.last_success = Gauge(
            "sync_watcher_last_successful_poll_timestamp_seconds",
            "Unix time of the last successful poll.",
            ["source"],
            registry=r,
        )
        self.argocd_up = Gauge("sync_watcher_argocd_up", "1 when the last call to Argo CD succeeded.", registry=r)
        self.leader = Gauge(
            "sync_watcher_leader",
            "1 while this replica leads (decides, reverts, notifies); 0 on a standby.",
            registry=r,
        )
        self.stream_events = Counter(
            "sync_watcher_stream_events", "Application events received on the watch stream.", ["type"], registry=r
        )
        self.stream_reconnects = Counter(
            "sync_watcher_stream_reconnects", "Times the watch stream was lost and reconnected.", registry=r
        )
        self.unreadable_apps = Counter(
            "sync_watcher_unreadable_apps",
            "Apps Argo CD answered for in a shape the spec does not allow, or whose GET failed (kept as they were).",
            registry=r,
        )
        self.suspect_lists = Counter(
            "sync_watcher_suspect_lists",
            "Application lists that dropped most of the fleet (RBAC or a filter hiding apps): nothing was removed.",
            registry=r,
        )
        self.store_errors = Counter(
            "sync_watcher_store_errors", "Writes to the state store that failed (full or read-only disk).", registry=r
        )
        self.reverts = Counter(
            "sync_watcher_reverts",
            "Revert attempts by outcome (domain.RevertState: pushed, dry_run, pull_request_opened, conflict, ...).",
            ["outcome"],
            registry=r,
        )
        self.decisions = Counter(
            "sync_watcher_revert_decisions",
            "Policy decisions by action and the rule that decided.",
            ["action", "rule"],
            registry=r,
        )
        self.time_to_revert = Histogram(
            "sync_watcher_time_to_revert_seconds",
            "Time from a failure's onset to its revert being pushed or proposed.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.time_to_recover = Histogram(
            "sync_watcher_time_to_recover_seconds",
            "Time from a failure's onset to the app being Synced and Healthy on the revert.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.verifications = Counter(
            "sync_watcher_revert_verifications",
            "Pushed reverts checked after deploy, by result.",
            ["result"],
            registry=r,
        )
        self.suspended_apps = Gauge(
            "sync_watcher_suspended_apps", "Apps suspended from auto-revert until someone resumes them.", registry=r
        )
        self.circuit_open = Gauge(
            "sync_watcher_revert_circuit_open", "1 while the revert rate limit has stopped auto-revert.", registry=r
        )
        for state in RevertState:
            if state is not RevertState.STARTED:  # not an outcome: the intent, written before git is touched
                self.reverts.labels(state.value)
        # Slack delivery
        self.slack_notices = Counter(
            "sync_watcher_slack_notices",
            "Slack notices by outcome: sent, filtered (below the route's severity), deduplicated, failed, dropped.",
            ["outcome"],
            registry=r,
        )
        for outcome in ("sent", "filtered", "deduplicated", "failed", "dropped"):
            self.slack_notices.labels(outcome)
        self.slack_queue = Gauge("sync_watcher_slack_queue_depth", "Notices waiting for delivery.", registry=r)
        # DORA's four keys, per app and environment: kept as plain numbers and written at scrape time (a
        # labelled prometheus_client child per app and key cost 36 MB and 1.5 s per scrape at 10k apps).
        self.dora = DoraLedger()
        r.register(DoraCollector(self.dora))
        for kind in sorted(k.value for k in INCIDENT_KINDS):
            self.time_to_detect.labels(kind)
        for result in VerifyResult:
            if result is not VerifyResult.PENDING:
                self.verifications.labels(result.value)
        self.build = Info("sync_watcher_build", "Version of the running watcher.", registry=r)
        self.build.info({"version": __version__, "python": platform.python_version()})
        for source in ("argocd", "git"):
            self.poll_duration.labels(source)
        if view is not None:
            r.register(StateCollector(view))

    def count(self, app: str, environment: str, c: LedgerCounts) -> None:
        """Apply what the incident ledger says one event counts (ledger.fold decides; this only writes)."""
        if c.failure is not None:
            self.failures.labels(app, c.failure.value).inc()
            self.time_to_detect.labels(c.failure.value).observe(c.detect_seconds or 0.0)
        if c.change_failure_stage is not None:
            self.dora.change_failed(app, environment, c.change_failure_stage)
        if c.restore_seconds is not None:
            self.dora.restored(app, environment, c.restore_seconds)
        if c.deployed:
            if c.lead_seconds is not None:
                self.commit_to_sync.observe(c.lead_seconds)
            self.dora.deployed(app, environment, c.lead_seconds)


@dataclass(slots=True)
class DoraTotals:
    deployments: int = 0
    lead_sum: float = 0.0
    lead_count: int = 0
    restore_sum: float = 0.0
    restore_count: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # stage -> count


class DoraLedger:
    """Counters per (app, environment), since the process started (Prometheus handles the resets)."""

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str], DoraTotals] = {}
        self._lock = threading.Lock()

    def _of(self, app: str, environment: str) -> DoraTotals:
        return self.totals.setdefault((app, environment), DoraTotals())

    def deployed(self, app: str, environment: str, lead_seconds: float | None) -> None:
        with self._lock:
            t = self._of(app, environment)
            t.deployments += 1
            if lead_seconds is not None:
                t.lead_sum += lead_seconds
                t.lead_count += 1

    def change_failed(self, app: str, environment: str, stage: str) -> None:
        with self._lock:
            failures = self._of(app, environment).failures
            failures[stage] = failures.get(stage, 0) + 1

    def restored(self, app: str, environment: str, seconds: float) -> None:
        with self._lock:
            t = self._of(app, environment)
            t.restore_sum += seconds
            t.restore_count += 1

    def snapshot(self) -> list[tuple[tuple[str, str], DoraTotals]]:
        with self._lock:
            return [(k, replace(t, failures=dict(t.failures))) for k, t in self.totals.items()]


class DoraCollector(Collector):
    """A series appears with its app's first deploy, failure or restore; dashboards count that first one too."""

    def __init__(self, ledger: DoraLedger):
        self.ledger = ledger

    def collect(self) -> Iterable[Metric]:
        labels = ["name", "environment"]
        deployments = CounterMetricFamily(
            "sync_watcher_deployments", "Successful syncs of new revisions (deployment frequency).", labels=labels
        )
        failures = CounterMetricFamily(
            "sync_watcher_change_failures",
            "Revisions that opened an incident; stage=sync never deployed, stage=runtime broke the app after.",
            labels=[*labels, "stage"],
        )
        lead = SummaryMetricFamily(
            "sync_watcher_lead_time_seconds", "Commit time to a successful sync of it (lead time).", labels=labels
        )
        restore = SummaryMetricFamily(
            "sync_watcher_time_to_restore_seconds",
            "A failure's onset to the app being Synced and Healthy again (time to restore service).",
            labels=labels,
        )
        for (app, env), t in self.ledger.snapshot():
            if t.deployments:
                deployments.add_metric([app, env], t.deployments)
            if t.lead_count:
                lead.add_metric([app, env], t.lead_count, t.lead_sum)
            if t.restore_count:
                restore.add_metric([app, env], t.restore_count, t.restore_sum)
            for stage, count in sorted(t.failures.items()):
                failures.add_metric([app, env, stage], count)
        yield from (deployments, failures, lead, restore)
