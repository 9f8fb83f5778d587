"""Builds sync-watcher's Grafana dashboard with grafana-foundation-sdk; writes sync-watcher.json beside this file.

The JSON is the single source the Helm chart ships (as a ConfigMap for Grafana's sidecar) and what users
import by hand. Edit this file, run `python config/grafana/dashboard.py`, commit both; a test fails when the
two differ. Every query here is run against a real Prometheus by tests/metrics/test_observability.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import (
    AnnotationQuery,
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.table import Panel as Table
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT = Path(__file__).with_name("sync-watcher.json")
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
W = 'namespace=~"$namespace"'  # the watcher's own pods (the scrape's namespace label)
APPS = f'{W}, project=~"$project", name=~"$app"'  # app_info carries project; other series only name
BY_APP = f'{W}, name=~"$app"'
RATE = "$__rate_interval"
RANGE = "$__range"


def q(expr: str, legend: str = "", ref: str = "A", instant: bool = False, table: bool = False) -> Dataquery:
    query = Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).datasource(DS)
    if instant:
        query = query.instant()
    if table:
        query = query.format(PromQueryFormat.TABLE)
    return query


def stat(title: str, expr: str, unit: str = "none", description: str = "") -> Stat:
    return Stat().title(title).description(description).unit(unit).datasource(DS).with_target(q(expr)).height(4).span(4)


def series(title: str, unit: str, *targets: Dataquery, description: str = "", span: int = 12) -> Timeseries:
    panel = Timeseries().title(title).description(description).unit(unit).datasource(DS).height(8).span(span)
    for t in targets:
        panel = panel.with_target(t)
    return panel


def zero_if_none(expr: str, by: str, like: str) -> str:
    """`expr`, or 0 for every `by` group of `like`: a panel shows 0 instead of 'No data' when nothing happened."""
    return f"({expr}) or (sum by ({by}) ({like}) * 0)"


def counted(series: str, by: str, window: str = RATE) -> str:
    """How much a counter grew in `window`, summed by `by`. Series are born with an app's first failure or
    deploy, at 1, and increase() cannot see that first step: a series that did not exist one window ago
    counts with its whole value instead."""
    born = f"({series} unless {series} offset {window})"
    return f"sum by ({by}) ((increase({series}[{window}]) unless {born}) or {born})"


def quantile(metric: str, by: str = "", selector: str = W) -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile(0.9, sum by ({group}) (rate({metric}_bucket{{{selector}}}[{RATE}])))"


def average(metric: str, by: str = "environment") -> str:
    """A summary's mean over the dashboard's range: what it added to _sum over what it added to _count."""
    return f"{counted(f'{metric}_sum{{{BY_APP}}}', by, RANGE)} / {counted(f'{metric}_count{{{BY_APP}}}', by, RANGE)}"


def build() -> Dashboard:
    info = f"sync_watcher_app_info{{{APPS}}}"
    deploys = counted(f"sync_watcher_deployments_total{{{BY_APP}}}", "environment", RANGE)
    failures = counted(f"sync_watcher_change_failures_total{{{BY_APP}}}", "environment", RANGE)
    never_deployed = counted(f'sync_watcher_change_failures_total{{{BY_APP}, stage="sync"}}', "environment", RANGE)
    attempts = f"({deploys} + ({never_deployed} or {deploys} * 0))"
    return (
        Dashboard("sync-watcher")
        .uid("sync-watcher")
        .description("Argo CD apps as sync-watcher sees them: what is broken, since when, what the bot did.")
        .tags(["argocd", "gitops", "sync-watcher"])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            QueryVariable("namespace")
            .label("Watcher namespace")
            .datasource(DS)
            .query("label_values(sync_watcher_build_info, namespace)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .all_value(".*")
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
        .with_variable(
            QueryVariable("project")
            .label("Project")
            .datasource(DS)
            .query(f"label_values(sync_watcher_app_info{{{W}}}, project)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .multi(True)
            .all_value(".*")
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
        .with_variable(
            QueryVariable("app")
            .label("App")
            .datasource(DS)
            .query(f'label_values(sync_watcher_app_info{{{W}, project=~"$project"}}, name)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .multi(True)
            .all_value(".*")
            .sort(VariableSort.ALPHABETICAL_ASC)
        )
        .annotation(
            AnnotationQuery()
            .name("Reverts")
            .datasource(DS)
            .enable(True)
            .icon_color("purple")
            .expr(f'sum(increase(sync_watcher_reverts_total{{{W}, outcome=~"pushed|pull_request_opened"}}[1m])) > 0')
        )
        .with_row(Row("Fleet"))
        .with_panel(stat("Apps", f"count({info})", description="Argo CD Applications the watcher follows."))
        .with_panel(stat("Out of sync", f'count({info[:-1]}, sync_status!="Synced"}}) or vector(0)'))
        .with_panel(stat("Degraded", f'count({info[:-1]}, health_status="Degraded"}}) or vector(0)'))
        .with_panel(
            stat(
                "Open incidents",
                f"sum(sync_watcher_open_incidents{{{BY_APP}}}) or vector(0)",
                description="Failures detected and not yet recovered.",
            )
        )
        .with_panel(stat("Apps suspended from auto-revert", f"max(sync_watcher_suspended_apps{{{W}}})"))
        .with_panel(stat("Revert circuit open", f"max(sync_watcher_revert_circuit_open{{{W}}})"))
        .with_panel(
            series(
                "Apps by sync and health",
                "none",
                q(f"count by (sync_status) ({info})", "{{sync_status}}", "A"),
                q(f"count by (health_status) ({info})", "{{health_status}}", "B"),
            )
        )
        .with_panel(
            Table()
            .title("Apps")
            .description("State now, time since the last deploy, open incidents.")
            .datasource(DS)
            .height(8)
            .span(12)
            .with_target(q(info, ref="A", instant=True, table=True))
            .with_target(
                q(
                    f"time() - max by (name) (sync_watcher_app_last_deploy_timestamp_seconds{{{BY_APP}}})",
                    ref="B",
                    instant=True,
                    table=True,
                )
            )
            .with_target(
                q(
                    zero_if_none(f"sum by (name) (sync_watcher_open_incidents{{{BY_APP}}})", "name", info),
                    ref="C",
                    instant=True,
                    table=True,
                )
            )
            .with_transformation(DataTransformerConfig(id_val="merge", options={}))
        )
        .with_row(Row("Failures and reverts"))
        .with_panel(
            series(
                "Failures by kind",
                "none",
                q(counted(f"sync_watcher_failures_total{{{BY_APP}}}", "kind"), "{{kind}}"),
            )
        )
        .with_panel(
            series(
                "Rollout watch",
                "none",
                q(
                    counted(f'sync_watcher_failures_total{{{BY_APP}, kind="rollout_failing"}}', "kind")
                    + " or vector(0)",
                    "rollout_failing raised",
                ),
                q(
                    f"sum by (outcome) (increase(sync_watcher_rollout_tree_reads_total{{{W}}}[{RATE}]))",
                    "trees {{outcome}}",
                    "B",
                ),
                description="rollout_failing: a new rollout's pods failing, seen in the resource tree minutes before "
                "Argo CD's Degraded; and the trees read for it (failed: unreadable, no verdict)",
            )
        )
        .with_panel(
            series(
                "Reverts by outcome",
                "none",
                q(f"sum by (outcome) (increase(sync_watcher_reverts_total{{{W}}}[{RATE}]))", "{{outcome}}"),
            )
        )
        .with_panel(
            series(
                "Time to detect, revert, recover (p90)",
                "s",
                q(quantile("sync_watcher_time_to_detect_seconds"), "detect", "A"),
                q(quantile("sync_watcher_time_to_revert_seconds"), "revert", "B"),
                q(quantile("sync_watcher_time_to_recover_seconds"), "recover", "C"),
            )
        )
        .with_panel(
            series(
                "Policy decisions",
                "none",
                q(
                    counted(f"sync_watcher_revert_decisions_total{{{W}}}", "action, rule"),
                    "{{action}}: {{rule}}",
                ),
            )
        )
        .with_row(Row("DORA (over the dashboard's time range)"))
        .with_panel(
            series("Deployments", "none", q(deploys, "{{environment}}"), span=6, description="Successful syncs.")
        )
        .with_panel(
            series(
                "Lead time for changes (avg)",
                "s",
                q(average("sync_watcher_lead_time_seconds"), "{{environment}}"),
                span=6,
                description="Commit time to a successful sync of it.",
            )
        )
        .with_panel(
            series(
                "Change failure rate",
                "percentunit",
                q(f"({failures} or {deploys} * 0) / {attempts}", "{{environment}}"),
                span=6,
                description="Revisions that opened an incident / (deployments + revisions that never deployed).",
            )
        )
        .with_panel(
            series(
                "Time to restore (avg)",
                "s",
                q(average("sync_watcher_time_to_restore_seconds"), "{{environment}}"),
                span=6,
                description="A failure's onset to Synced and Healthy again.",
            )
        )
        .with_row(Row("The watcher itself"))
        .with_panel(stat("Argo CD reachable", f"min(sync_watcher_argocd_up{{{W}}})"))
        .with_panel(
            stat(
                "Since the last successful poll",
                f"time() - min(sync_watcher_last_successful_poll_timestamp_seconds{{{W}}})",
                unit="s",
            )
        )
        .with_panel(stat("Slack notices failed or dropped", _slack_lost()))
        .with_panel(
            series("Poll latency (p90)", "s", q(quantile("sync_watcher_poll_duration_seconds", "source"), "{{source}}"))
        )
        .with_panel(
            series(
                "Poll errors",
                "reqps",
                q(
                    zero_if_none(
                        f"sum by (source) (rate(sync_watcher_poll_errors_total{{{W}}}[{RATE}]))",
                        "source",
                        f"rate(sync_watcher_poll_duration_seconds_count{{{W}}}[{RATE}])",
                    ),
                    "{{source}}",
                ),
            )
        )
    )


def _slack_lost() -> str:
    return f'sum(increase(sync_watcher_slack_notices_total{{{W}, outcome=~"failed|dropped"}}[{RANGE}]))'


def render() -> str:
    dashboard = json.loads(JSONEncoder(sort_keys=True, indent=2).encode(build().build()))
    for number, panel in enumerate(dashboard["panels"], start=1):
        panel["id"] = number  # unique ids: Grafana links and the sidecar's diffing rely on them
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text() == render() else 1)
    OUT.write_text(render())
    print(f"wrote {OUT}")
