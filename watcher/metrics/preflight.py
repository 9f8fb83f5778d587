"""The pre-flight's metrics: verdicts, how long a verdict took, whether Argo CD agreed, and Argo CD's own lag."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from watcher.core.preflight import Verdict

# From the watcher seeing a commit: a verdict takes seconds, Argo CD without a webhook minutes.
PREFLIGHT_BUCKETS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300)
LAG_BUCKETS = (5, 15, 30, 60, 120, 180, 240, 300, 420, 600, 1800)


class PreflightMetrics:
    def __init__(self, registry: CollectorRegistry):
        r = registry
        self.verdicts = Counter(
            "sync_watcher_preflight_verdicts",
            "Pre-flight verdicts on (app, commit), by verdict.",
            ["verdict"],
            registry=r,
        )
        self.seconds = Histogram(
            "sync_watcher_preflight_seconds",
            "Time from the watcher seeing a commit to the pre-flight's verdict on one app.",
            buckets=PREFLIGHT_BUCKETS,
            registry=r,
        )
        self.agreement = Counter(
            "sync_watcher_preflight_agreement",
            "Argo CD's own verdict on a judged commit (ComparisonError, sync result) agreed with the pre-flight.",
            ["agreed"],
            registry=r,
        )
        self.detect_lag = Histogram(
            "sync_watcher_argocd_detect_lag_seconds",
            "Time from the watcher seeing a commit to Argo CD comparing it (a webhook: seconds; none: minutes).",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.calls = Counter(
            "sync_watcher_preflight_argocd_calls", "Requests the pre-flight made to Argo CD's renderer.", registry=r
        )
        # Every series from the start, as registry.Metrics does: a dashboard shows 0, not "no data".
        for verdict in Verdict:
            self.verdicts.labels(verdict.value)
        for agreed in ("true", "false"):
            self.agreement.labels(agreed)
