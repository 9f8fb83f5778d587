"""Per-app series: what each app is (info, last deploy, open incidents) and what it has counted (failures, DORA's
four keys), read from plain state at scrape time. No prometheus_client child per label set: at 10k apps those
cost 36 MB and 1.5 s a scrape. Each collector yields its families for the registry (collect) and writes the same
series as exposition text (text), where an app's lines are rendered again only when the app changed: at 10k
apps, formatting every sample anew is most of a 400 ms scrape."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from watcher.domain import AppSnapshot
from watcher.metrics.exposition import header, sample


@dataclass(frozen=True)
class Family:
    name: str  # as prometheus_client names it: a counter's without `_total`
    documentation: str
    labels: tuple[str, ...]


APP_INFO = Family(
    "sync_watcher_app_info",
    "One series per watched Argo CD Application with its current sync and health state.",
    # app_namespace, not namespace: a Kubernetes scrape adds the pod's own `namespace` label.
    ("name", "app_namespace", "project", "environment", "sync_status", "health_status", "operation_phase"),
)
OPEN_INCIDENTS = Family("sync_watcher_open_incidents", "Incidents detected and not yet recovered.", ("name", "kind"))
LAST_DEPLOY = Family(
    "sync_watcher_app_last_deploy_timestamp_seconds",
    "Unix time of the app's last successful sync of a new revision.",
    ("name",),
)
FAILURES = Family("sync_watcher_failures", "Failures detected, by kind.", ("name", "kind"))
DEPLOYMENTS = Family(
    "sync_watcher_deployments", "Successful syncs of new revisions (deployment frequency).", ("name", "environment")
)
CHANGE_FAILURES = Family(
    "sync_watcher_change_failures",
    "Revisions that opened an incident; stage=sync never deployed, stage=runtime broke the app after.",
    ("name", "environment", "stage"),
)
LEAD_TIME = Family(
    "sync_watcher_lead_time_seconds", "Commit time to a successful sync of it (lead time).", ("name", "environment")
)
TIME_TO_RESTORE = Family(
    "sync_watcher_time_to_restore_seconds",
    "A failure's onset to the app being Synced and Healthy again (time to restore service).",
    ("name", "environment"),
)


def _line(family: Family, values: Sequence[str], value: float, suffix: str = "") -> str:
    return sample(family.name + suffix, tuple(zip(family.labels, values, strict=True)), value)


@dataclass(frozen=True)
class StateView:
    """What the collector reads at scrape time; the service provides it."""

    apps: Callable[[], Iterable[AppSnapshot]]
    open_incidents: Callable[[], Mapping[tuple[str, str], int]]  # (app, kind) -> count
    environment: Callable[[str], str] = lambda _key: ""
    last_deploys: Callable[[], Iterable[tuple[str, float]]] = lambda: ()  # (app, unix time of its last deploy)


def _info(s: AppSnapshot, environment: str) -> list[str]:
    return [
        s.name,
        s.namespace,
        s.project,
        environment,
        s.sync_status.value if s.sync_status else "Unknown",
        s.health.value if s.health else "Unknown",
        s.phase.value if s.phase else "None",
    ]


class StateCollector(Collector):
    """Mirrors the watcher's state: one app_info series per app, its last deploy, the open incidents."""

    def __init__(self, view: StateView):
        self.view = view
        self._text_lock = threading.Lock()
        self._info: dict[str, tuple[AppSnapshot, str, str]] = {}  # app -> (snapshot, environment, its line)
        self._deploys: dict[str, tuple[float, str]] = {}

    def collect(self) -> Iterable[Metric]:
        info = GaugeMetricFamily(APP_INFO.name, APP_INFO.documentation, labels=APP_INFO.labels)
        for s in self.view.apps():
            info.add_metric(_info(s, self.view.environment(s.key)), 1.0)
        yield info
        incidents = GaugeMetricFamily(OPEN_INCIDENTS.name, OPEN_INCIDENTS.documentation, labels=OPEN_INCIDENTS.labels)
        for (app, kind), count in sorted(self.view.open_incidents().items()):
            incidents.add_metric([app, kind], float(count))
        yield incidents
        deployed = GaugeMetricFamily(LAST_DEPLOY.name, LAST_DEPLOY.documentation, labels=LAST_DEPLOY.labels)
        for app, at in self.view.last_deploys():
            deployed.add_metric([app], at)
        yield deployed

    def text(self) -> str:
        """The same series as collect(), an app's lines kept while its snapshot (the same object: snapshots are
        immutable and kept until they change), environment and last deploy are the same."""
        with self._text_lock:
            out = [header(APP_INFO.name, "gauge", APP_INFO.documentation)]
            info: dict[str, tuple[AppSnapshot, str, str]] = {}
            for s in self.view.apps():
                key = s.key
                environment = self.view.environment(key)
                held = self._info.get(key)
                if held is None or held[0] is not s or held[1] != environment:
                    held = (s, environment, _line(APP_INFO, _info(s, environment), 1.0))
                info[key] = held
                out.append(held[2])
            out.append(header(OPEN_INCIDENTS.name, "gauge", OPEN_INCIDENTS.documentation))
            for (app, kind), count in sorted(self.view.open_incidents().items()):
                out.append(_line(OPEN_INCIDENTS, (app, kind), float(count)))
            out.append(header(LAST_DEPLOY.name, "gauge", LAST_DEPLOY.documentation))
            deploys: dict[str, tuple[float, str]] = {}
            for app, at in self.view.last_deploys():
                kept = self._deploys.get(app)
                if kept is None or kept[0] != at:
                    kept = (at, _line(LAST_DEPLOY, (app,), at))
                deploys[app] = kept
                out.append(kept[1])
            self._info, self._deploys = info, deploys  # apps gone since the last scrape are dropped
            return "".join(out)


class FailureCounts(Collector):
    """Failures detected per (app, kind) since the process started, with the time each series began (as a
    prometheus_client Counter writes `_created`), kept as plain numbers."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._counts: dict[tuple[str, str], tuple[int, float]] = {}  # (app, kind) -> (count, created)
        self._lock = threading.Lock()

    def add(self, app: str, kind: str) -> None:
        with self._lock:
            count, created = self._counts.get((app, kind), (0, self.clock()))
            self._counts[(app, kind)] = (count + 1, created)

    def _rows(self) -> list[tuple[tuple[str, str], tuple[int, float]]]:
        with self._lock:
            return list(self._counts.items())

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(FAILURES.name, FAILURES.documentation, labels=FAILURES.labels)
        for (app, kind), (count, created) in self._rows():
            family.add_metric([app, kind], count, created=created)
        yield family

    def text(self) -> str:
        rows = self._rows()  # few: apps that failed since the start, so written afresh
        totals = [_line(FAILURES, key, count, "_total") for key, (count, _) in rows]
        created = [_line(FAILURES, key, at, "_created") for key, (_, at) in rows]
        return "".join(
            [
                header(FAILURES.name + "_total", "counter", FAILURES.documentation),
                *totals,
                *([header(FAILURES.name + "_created", "gauge", FAILURES.documentation), *created] if created else []),
            ]
        )


@dataclass(slots=True)
class DoraTotals:
    deployments: int = 0
    lead_sum: float = 0.0
    lead_count: int = 0
    restore_sum: float = 0.0
    restore_count: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # stage -> count
    # The key's lines of the four families as last written (DoraCollector.text); None once a number changed.
    lines: tuple[str, str, str, str] | None = field(default=None, compare=False, repr=False)


class DoraLedger:
    """Counters per (app, environment), since the process started (Prometheus handles the resets)."""

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str], DoraTotals] = {}
        self._lock = threading.Lock()

    def _of(self, app: str, environment: str) -> DoraTotals:
        t = self.totals.setdefault((app, environment), DoraTotals())
        t.lines = None
        return t

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
            return [(k, replace(t, failures=dict(t.failures), lines=None)) for k, t in self.totals.items()]

    def lines(self) -> list[tuple[str, str, str, str]]:
        """Every key's lines of the four families, rendered for the keys whose numbers changed since."""
        with self._lock:
            out = []
            for key, t in self.totals.items():
                if t.lines is None:
                    t.lines = _dora_lines(key, t)
                out.append(t.lines)
            return out


def _dora_lines(key: tuple[str, str], t: DoraTotals) -> tuple[str, str, str, str]:
    deployments = _line(DEPLOYMENTS, key, t.deployments, "_total") if t.deployments else ""
    failures = "".join(_line(CHANGE_FAILURES, (*key, stage), n, "_total") for stage, n in sorted(t.failures.items()))
    lead = (
        _line(LEAD_TIME, key, t.lead_count, "_count") + _line(LEAD_TIME, key, t.lead_sum, "_sum")
        if t.lead_count
        else ""
    )
    restore = (
        _line(TIME_TO_RESTORE, key, t.restore_count, "_count") + _line(TIME_TO_RESTORE, key, t.restore_sum, "_sum")
        if t.restore_count
        else ""
    )
    return deployments, failures, lead, restore


class DoraCollector(Collector):
    """A series appears with its app's first deploy, failure or restore; dashboards count that first one too."""

    def __init__(self, ledger: DoraLedger):
        self.ledger = ledger

    def collect(self) -> Iterable[Metric]:
        deployments = CounterMetricFamily(DEPLOYMENTS.name, DEPLOYMENTS.documentation, labels=DEPLOYMENTS.labels)
        failures = CounterMetricFamily(
            CHANGE_FAILURES.name, CHANGE_FAILURES.documentation, labels=CHANGE_FAILURES.labels
        )
        lead = SummaryMetricFamily(LEAD_TIME.name, LEAD_TIME.documentation, labels=LEAD_TIME.labels)
        restore = SummaryMetricFamily(
            TIME_TO_RESTORE.name, TIME_TO_RESTORE.documentation, labels=TIME_TO_RESTORE.labels
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

    def text(self) -> str:
        rows = self.ledger.lines()
        families = [
            (DEPLOYMENTS.name + "_total", "counter", DEPLOYMENTS.documentation),
            (CHANGE_FAILURES.name + "_total", "counter", CHANGE_FAILURES.documentation),
            (LEAD_TIME.name, "summary", LEAD_TIME.documentation),
            (TIME_TO_RESTORE.name, "summary", TIME_TO_RESTORE.documentation),
        ]
        return "".join(header(*f) + "".join(row[i] for row in rows) for i, f in enumerate(families))
