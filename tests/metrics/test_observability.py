"""The dashboard and the alert rules against the real thing: Debian's Prometheus scraping the demo's watcher.

Every query of every dashboard panel, variable and annotation must return data; every alert rule must load,
evaluate without error and stay quiet on a healthy run, while the series it reads exist. promtool checks
the scrape, the rule file and the rules' unit tests.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.tools import prometheus_tool
from tests.support.waiting import wait_for
from watcher.demo import run_demo
from watcher.run.daemon import Daemon
from watcher.sim.gitserver import free_port

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "config" / "grafana" / "sync-watcher.json"
RULES = ROOT / "config" / "prometheus" / "sync-watcher-rules.yaml"
RULE_TESTS = ROOT / "config" / "prometheus" / "sync-watcher-rules.test.yaml"
# What Grafana puts in for its own variables when it sends a query; ours are set to "All".
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "10m", "$__interval": "1s"}
SCRAPE_NAMESPACE = "sync-watcher-demo"  # the label a Kubernetes scrape would add


def dashboard_queries(d: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expr) for every query the dashboard sends: panels, annotations; variables are separate."""
    found = [
        (f"panel {p['title']!r} {t.get('refId', '')}", t["expr"]) for p in d["panels"] for t in p.get("targets", [])
    ]
    found += [(f"annotation {a['name']!r}", a["expr"]) for a in d["annotations"]["list"] if a.get("expr")]
    return found


def substitute(expr: str, variables: dict[str, str]) -> str:
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


class Prometheus:
    def __init__(self, tmp: Path, target_port: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.copy(RULES, tmp / "rules.yaml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp / "rules.yaml")],
            "scrape_configs": [
                {
                    "job_name": "sync-watcher",
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{target_port}"], "labels": {"namespace": SCRAPE_NAMESPACE}}
                    ],
                }
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc = subprocess.Popen(
            [
                prometheus_tool("prometheus"),
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "prometheus.log", "w"),  # noqa: SIM115 - closed with the process
        )
        wait_for(self.ready, 120, "prometheus ready")
        # Service discovery hands targets over in batches (every 5s): wait until the first scrape was tried.
        wait_for(self.scraping, 120, "prometheus to start scraping")
        self.started = time.time()

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def scraping(self) -> bool:
        targets = self.api("targets")["activeTargets"]
        return bool(targets) and not targets[0]["lastScrape"].startswith("0001")

    def api(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = r.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def series_with_samples(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        data = self.api("query_range", query=expr, start=start, end=end, step="1s")
        return [s for s in data["result"] if s["values"]]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def scraped_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The demo, scraped every second by a real Prometheus that also evaluates the alert rules."""
    tmp = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    box: dict[str, Any] = {"prometheus": Prometheus(tmp, port)}

    def before_stop(daemon: Daemon) -> None:
        prom: Prometheus = box["prometheus"]
        # Wait (no sleep) until Prometheus has scraped the recovery, then keep one scrape of the end state.
        wait_for(
            lambda: (
                prom.api("query", query="sum(sync_watcher_time_to_restore_seconds_count)")["result"]
                and float(
                    prom.api("query", query="sum(sync_watcher_time_to_restore_seconds_count)")["result"][0]["value"][1]
                )
                >= 1
            ),
            120,
            "the recovery in Prometheus",
        )
        seen = time.time()  # and two more scrapes, so every counter born late has two samples
        wait_for(lambda: float(prom.api("query", query="timestamp(up)")["result"][0]["value"][1]) > seen + 2, 120)
        wait_for(lambda: prom.api("rules")["groups"][0]["rules"][0].get("lastEvaluation", "").startswith("2"), 120)
        box["scrape"] = httpx.get(f"http://127.0.0.1:{daemon.http.port}/metrics").text
        box["deploys"] = Counter(
            daemon.fleet.environment(d["app"])
            for d in daemon.store.detection.deployments()
            if d["result"] == "Succeeded"
        )
        box["rules"] = prom.api("rules")
        box["end"] = time.time()

    try:
        box["demo"] = run_demo(tmp / "demo", http_port=port, before_stop=before_stop)
        yield box
    finally:
        box["prometheus"].stop()


def test_every_dashboard_query_returns_data_from_the_demo(scraped_demo: dict[str, Any]) -> None:
    prom: Prometheus = scraped_demo["prometheus"]
    dashboard = json.loads(DASHBOARD.read_text())
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert names == {"datasource", "namespace", "project", "app"}
    variables = GRAFANA_VARIABLES | {"$namespace": ".*", "$project": ".*", "$app": ".*", "${datasource}": ""}
    empty = []
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 25
    for where, expr in queries:
        if not prom.series_with_samples(substitute(expr, variables), prom.started, scraped_demo["end"]):
            empty.append(f"{where}: {expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_dashboard_variables_list_the_demo_apps(scraped_demo: dict[str, Any]) -> None:
    prom: Prometheus = scraped_demo["prometheus"]
    dashboard = json.loads(DASHBOARD.read_text())
    values = {}
    for v in dashboard["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = re.fullmatch(
            r"label_values\((.+), (\w+)\)", v["query"] if isinstance(v["query"], str) else v["query"]["query"]
        )
        assert m, v["query"]
        selector = substitute(m[1], {"$namespace": ".*", "$project": ".*"})
        values[v["name"]] = prom.api(f"label/{m[2]}/values", **{"match[]": selector})
    assert values["namespace"] == [SCRAPE_NAMESPACE]
    assert values["project"] and "plate-api-stg" in values["app"] and len(values["app"]) == 9


def test_the_failure_the_revert_and_dora_show_up_as_numbers(scraped_demo: dict[str, Any]) -> None:
    prom: Prometheus = scraped_demo["prometheus"]
    end = scraped_demo["end"]

    def last(expr: str) -> float:
        result = prom.api("query", query=expr, time=end)["result"]
        assert result, expr
        return float(result[0]["value"][1])

    # Two reverts: act one's after the failed sync, act two's before Argo CD ever saw the commit (the pre-flight).
    assert last('sum(sync_watcher_reverts_total{outcome="pushed"})') == 2
    assert last('sync_watcher_preflight_verdicts_total{verdict="will_fail_to_render"}') == 1
    assert last('sync_watcher_change_failures_total{name="plate-api-stg", stage="sync"}') == 1
    assert last('sync_watcher_time_to_restore_seconds_count{name="plate-api-stg", environment="stg"}') == 1
    assert last('sync_watcher_deployments_total{name="plate-web-stg"}') >= 2  # the first sync and the bump
    assert 0 < last('sync_watcher_time_to_restore_seconds_sum{name="plate-api-stg"}') < 60
    # The panels show the failure and the revert as numbers, not as zeros or NaN.
    dashboard = json.loads(DASHBOARD.read_text())
    variables = GRAFANA_VARIABLES | {"$namespace": ".*", "$project": ".*", "$app": ".*"}
    panels = {p["title"]: p for p in dashboard["panels"]}

    def peak(title: str, ref: str = "A") -> float:
        target = next(t for t in panels[title]["targets"] if t["refId"] == ref)
        values = [
            float(v)
            for s in prom.series_with_samples(substitute(target["expr"], variables), prom.started, end)
            for _, v in s["values"]
        ]
        finite = [v for v in values if v == v]  # NaN != NaN
        assert finite, f"{title} {ref}: only NaN"
        return max(finite)

    assert peak("Failures by kind") >= 1
    assert peak("Reverts by outcome") > 0
    assert 0 < peak("Time to detect, revert, recover (p90)", "A") <= 60
    assert 0 < peak("Time to detect, revert, recover (p90)", "B") <= 60
    assert peak("Change failure rate") > 0
    # Deployment frequency counts every deploy, each app's first one included (its series is born at 1).
    deploys = panels["Deployments"]["targets"][0]["expr"]
    at_end = prom.api("query", query=substitute(deploys, variables), time=end)["result"]
    counted = {r["metric"].get("environment", ""): round(float(r["value"][1])) for r in at_end}
    assert scraped_demo["deploys"]["stg"] >= 4 and counted == dict(scraped_demo["deploys"])
    annotation = prom.series_with_samples(
        'sum(increase(sync_watcher_reverts_total{outcome=~"pushed|pull_request_opened"}[1m])) > 0',
        prom.started,
        end,
    )
    assert annotation  # the revert is marked on the time series


def test_alert_rules_load_evaluate_and_stay_quiet_on_a_healthy_run(scraped_demo: dict[str, Any]) -> None:
    prom: Prometheus = scraped_demo["prometheus"]
    rules = [r for g in scraped_demo["rules"]["groups"] for r in g["rules"]]
    expected = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert {r["name"] for r in rules} == expected
    for r in rules:
        assert r["health"] == "ok" and not r.get("lastError"), r
        assert r["state"] == "inactive", f"{r['name']} is {r['state']} on a healthy run"
        for metric in set(re.findall(r"\b(sync_watcher_[a-z_]+|up)\{", r["query"])) | set(
            re.findall(r"\b(sync_watcher_[a-z_]+) [<>=]", r["query"])
        ):
            # quiet because nothing is wrong, not because the series it reads are missing
            assert prom.series_with_samples(metric, prom.started, scraped_demo["end"]), f"{r['name']}: no {metric}"


def test_promtool_accepts_the_scrape_the_rules_and_their_unit_tests(scraped_demo: dict[str, Any]) -> None:
    promtool = prometheus_tool("promtool")
    check = subprocess.run([promtool, "check", "metrics"], input=scraped_demo["scrape"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    rules = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    tests = subprocess.run([promtool, "test", "rules", str(RULE_TESTS)], capture_output=True, text=True)
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr


def test_committed_dashboard_is_what_the_generator_builds() -> None:
    pytest.importorskip("grafana_foundation_sdk")
    built = subprocess.run(
        [sys.executable, str(DASHBOARD.with_name("dashboard.py")), "--check"], capture_output=True, text=True
    )
    assert built.returncode == 0, "config/grafana/sync-watcher.json is stale: run python config/grafana/dashboard.py"
    from grafana_foundation_sdk.models.dashboard import Dashboard

    data = json.loads(DASHBOARD.read_text())
    assert Dashboard.from_json(data).title == "sync-watcher"
    assert len({p["id"] for p in data["panels"]}) == len(data["panels"])
