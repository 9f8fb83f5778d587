"""Prometheus metrics: events counted as they happen; per-app series from fleet_metrics' collectors over plain
state; /metrics writes both (exposition)."""

from __future__ import annotations

import platform
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from watcher import __version__
from watcher.core.ledger import LedgerCounts
from watcher.core.sync_permit import Held
from watcher.domain import INCIDENT_KINDS, RevertState, VerifyResult
from watcher.metrics.fleet import DoraCollector, DoraLedger, FailureCounts, StateCollector, StateView
from watcher.metrics.preflight import PreflightMetrics

LATENCY_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
POLL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every metric of one watcher, in its own registry (tests run several watchers in one process).

    `registry` holds them all, as prometheus_client sees them (get_sample_value). /metrics writes the same
    series faster (exposition): prometheus_client renders the event metrics, the per-app collectors their text.
    """

    def __init__(self, view: StateView | None = None):
        self._events = CollectorRegistry(auto_describe=True)
        r = self._events
        # Per app and kind: plain numbers written at scrape time, like DORA's below.
        self.failures = FailureCounts()
        self.preflight = PreflightMetrics(r)  # the pre-flight wing's (watcher/preflight)
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
        self.rollout_reads = Counter(
            "sync_watcher_rollout_tree_reads",
            "Resource trees the rollout watch read (outcome=read) or could not read (outcome=failed: no verdict).",
            ["outcome"],
            registry=r,
        )
        for outcome in ("read", "failed"):
            self.rollout_reads.labels(outcome)  # both series from the start: a dashboard shows 0, not "no data"
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
        self.revert_waits = Counter(
            "sync_watcher_revert_waits",
            "Reverts (or revert decisions) held because Argo CD may not deploy now, by reason: sync_window, "
            "progressive_sync, manual_sync_app.",
            ["reason"],
            registry=r,
        )
        self.apps_held = Gauge(
            "sync_watcher_reverts_held",
            "Pushed reverts waiting past their deadline for Argo CD to be allowed to deploy.",
            registry=r,
        )  # fmt: skip
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
        for kind in sorted(k.value for k in INCIDENT_KINDS):
            self.time_to_detect.labels(kind)
        for reason in Held:
            self.revert_waits.labels(reason.value)
        for result in VerifyResult:
            if result is not VerifyResult.PENDING:
                self.verifications.labels(result.value)
        self.build = Info("sync_watcher_build", "Version of the running watcher.", registry=r)
        self.build.info({"version": __version__, "python": platform.python_version()})
        for source in ("argocd", "git"):
            self.poll_duration.labels(source)
        self.per_app: list[FailureCounts | DoraCollector | StateCollector] = [self.failures, DoraCollector(self.dora)]
        if view is not None:
            self.per_app.append(StateCollector(view))
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in [RegistryCollector(self._events), *self.per_app]:
            self.registry.register(collector)

    def exposition(self) -> bytes:
        """What /metrics answers: every series of `registry`, in the text format."""
        return generate_latest(self._events) + "".join(c.text() for c in self.per_app).encode()

    def count(self, app: str, environment: str, c: LedgerCounts) -> None:
        """Apply what the incident ledger says one event counts (ledger.fold decides; this only writes)."""
        if c.failure is not None:
            self.failures.add(app, c.failure.value)
            self.time_to_detect.labels(c.failure.value).observe(c.detect_seconds or 0.0)
        if c.change_failure_stage is not None:
            self.dora.change_failed(app, environment, c.change_failure_stage)
        if c.restore_seconds is not None:
            self.dora.restored(app, environment, c.restore_seconds)
        if c.deployed:
            if c.lead_seconds is not None:
                self.commit_to_sync.observe(c.lead_seconds)
            self.dora.deployed(app, environment, c.lead_seconds)


class RegistryCollector(Collector):
    """Another registry's metrics, as one collector of this one."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()
