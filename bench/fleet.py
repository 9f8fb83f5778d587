"""Fleet-scale goals: the daemon's memory (goal 1), a bad day of failing apps (goal 3), the simulator serving a
fleet (goal 4). Each prints its figures against a baseline measured in the same run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from synthetic import REPO, NoRepo, Replay, answered, line, median, ms, ratio, served, timed

from watcher.adapters.argocd import LIST_FIELDS, ArgoCDClient
from watcher.domain import INCIDENT_KINDS, Event
from watcher.observe.apps_listing import list_snapshots
from watcher.observe.cycle import Watcher
from watcher.ports import Listener
from watcher.settings import ArgoCDSettings, load_settings
from watcher.store import Store

RSS_GOAL_MB = 120
BAD_DAY_GOAL = 3.0  # the bad-day cycle within this many bare parses of the list
GET_LATENCY = 0.002  # seconds a GET takes Argo CD and the network, modelled by the bench's GET server


# -- goal 1: memory ---------------------------------------------------------------------------------------------
@dataclass
class Rss:
    samples: list[float] = field(default_factory=list)  # MB, every 0.25 s once the daemon has done its cycles
    cycles: int = 0


def daemon_rss(argocd_url: str, work: Path, cycles: int = 3, window: float = 12.0) -> Rss:
    """Start `sync-watcher run` as a process against `argocd_url` (stream on, a list every 5 s); once it has done
    `cycles` lists, sample its RSS for `window` seconds (two more lists), without scraping it meanwhile."""
    from watcher.sim.gitops_repo import WorkClone
    from watcher.sim.gitserver import free_port

    work.mkdir(parents=True, exist_ok=True)
    remote = work / "tiny.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    clone = WorkClone(work / "tiny-work", str(remote))
    clone.init({"README.md": "tiny\n"})
    clone.push()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")} | {
        "WATCHER_ARGOCD__URL": argocd_url,
        "WATCHER_ARGOCD__LIST_INTERVAL_SECONDS": "5",
        "WATCHER_ARGOCD__TIMEOUT_SECONDS": "120",
        "WATCHER_GIT__URL": str(remote),
        "WATCHER_GIT__CLONE_DIR": str(work / "daemon-clone"),
        "WATCHER_STORE__URL": f"sqlite:///{work}/daemon.db",
        "WATCHER_HTTP__HOST": "127.0.0.1",
        "WATCHER_HTTP__PORT": str(port),
        "WATCHER_LOG__LEVEL": "error",
    }
    proc = subprocess.Popen([sys.executable, "-m", "watcher", "run"], env=env)
    out = Rss()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and out.cycles < cycles:
            time.sleep(1)
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
            except httpx.HTTPError:
                continue
            for row in text.splitlines():
                if row.startswith('sync_watcher_poll_duration_seconds_count{source="argocd"}'):
                    out.cycles = int(float(row.split()[-1]))
        process = psutil.Process(proc.pid)
        ends = time.monotonic() + window
        while time.monotonic() < ends:
            out.samples.append(process.memory_info().rss / 2**20)
            time.sleep(0.25)
        return out
    finally:
        proc.terminate()
        proc.wait(15)


def where_it_goes(body: bytes, client: ArgoCDClient, work: Path) -> None:
    """tracemalloc over a watcher in this process: what stays after a poll, by module, and a poll's peak."""
    settings = load_settings(
        argocd={"url": "http://replay.invalid"}, git={"url": REPO}, store={"url": f"sqlite:///{work}/tm.db"}
    )
    source = Replay(body, client)
    list_snapshots(source)  # the GETs are made and recorded before tracing starts
    tracemalloc.start()
    watcher = Watcher(settings, source, NoRepo(), Store(settings.store.url))
    for _ in range(3):
        watcher.poll_apps()
    live = tracemalloc.take_snapshot()
    tracemalloc.reset_peak()
    watcher.poll_apps()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    total = sum(s.size for s in live.statistics("filename"))
    print(f"where it goes (tracemalloc, this process, after 3 polls): {total / 2**20:.1f} MB live; a 4th poll peaks")
    print(f"  {(peak - current) / 2**20:.1f} MB above that (the list's text, one item's objects). Allocated in:")
    for stat in live.statistics("filename")[:7]:
        name = stat.traceback[0].filename.split("/watcher/")[-1].split("/python3.11/")[-1]
        print(f"  {stat.size / 2**20:6.1f} MB  {stat.count:7d} blocks  {name:28s} {WHAT.get(name, '')}")


WHAT = {
    "appmap.py": "mapping fields per app (tuples: appmap.Fields)",
    "adapters/json_items.py": "strings kept from the list (names, paths, first copies of shared values)",
    "adapters/argocd.py": "snapshots and their datetimes",
    "fleet_metrics.py": "DORA totals per app; rendered /metrics lines",
    "dataclasses.py": "trackers (dataclasses.replace)",
    "domain.py": "dedup keys of emitted events; the interned-string table",
    "detect.py": "trackers' emitted and good-revision tuples",
    "<string>": "generated __new__/__init__: mapping fields (named tuples), trackers, events",
    "service.py": "the trackers dict",
    "fleet_map.py": "fields, environments and paths dicts",
}


def bench_memory(apps: int, work: Path, runs: int) -> None:
    with served(0) as idle_url:
        idle = daemon_rss(idle_url, work / "idle")
    with served(apps) as url:
        full = daemon_rss(url, work / "full")
        client = ArgoCDClient(ArgoCDSettings(url=url, timeout_seconds=120))
        body = httpx.get(f"{url}/api/v1/applications", params={"fields": ",".join(LIST_FIELDS)}, timeout=120).content
        base, steady, peak = median(idle.samples), median(full.samples), max(full.samples)
        print("\n## Goal 1: memory of `sync-watcher run` (a process, stream on, a list every 5 s; RSS sampled")
        print(f"   every 0.25 s for 12 s after {full.cycles} lists)")
        line("RSS watching 0 apps (baseline)", f"{base:.0f} MB")
        line(
            f"RSS watching {apps} apps, between polls (median)",
            f"{steady:.0f} MB",
            f"goal < {RSS_GOAL_MB} MB: {'met' if steady < RSS_GOAL_MB else 'NOT met'}; {steady / base:.2f}x baseline",
        )
        line(
            f"RSS watching {apps} apps, highest sample (while a list is read)",
            f"{peak:.0f} MB",
            f"{'under' if peak < RSS_GOAL_MB else 'over'} the goal too",
        )
        line("cost per app: (RSS at N - RSS at 0) / N", f"{(steady - base) * 1024 / apps:.1f} KB")
        where_it_goes(body, client, work)


# -- goal 3: a bad day ------------------------------------------------------------------------------------------
class InFlight:
    """An AppSource around another that counts its GETs in flight."""

    def __init__(self, source: Replay):
        self.source, self.now, self.most = source, 0, 0
        self.lock = threading.Lock()

    def iter_apps(self) -> Iterator[dict[str, Any]]:
        return self.source.iter_apps()

    def get_app(self, name: str, namespace: str = "", refresh: str | None = None) -> dict[str, Any]:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            return self.source.get_app(name, namespace, refresh)
        finally:
            with self.lock:
                self.now -= 1


class Heard(Listener):
    """Each recorded event, with when it was published."""

    def __init__(self, heard: list[tuple[float, Event]]):
        self.heard = heard

    def on_event(self, e: Event) -> None:
        self.heard.append((time.perf_counter(), e))


@dataclass
class BadDayRun:
    cycles: list[float]  # seconds, of polls after the first
    most_in_flight: int
    first_poll: float  # seconds, every app new
    failures_published: list[float]  # seconds into the first poll


def bad_day_polls(url: str, body: bytes, client: ArgoCDClient, bound: int, runs: int, work: Path) -> BadDayRun:
    settings = load_settings(
        argocd={"url": url, "timeout_seconds": 60, "concurrent_gets": bound},
        git={"url": REPO},
        detection={"degraded_grace_seconds": 0},
        store={"url": f"sqlite:///{work}/bad-day-{bound}.db"},
    )
    source = InFlight(Replay(body, client, record=False))
    heard: list[tuple[float, Event]] = []
    watcher = Watcher(settings, source, NoRepo(), Store(settings.store.url), listeners=[Heard(heard)])
    started = time.perf_counter()
    watcher.poll_apps()  # a first poll: every app new, every row written
    first = time.perf_counter() - started
    published = [at - started for at, e in heard if e.kind in INCIDENT_KINDS]
    return BadDayRun(timed(watcher.poll_apps, runs), source.most, first, published)


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def bench_bad_day(apps: int, runs: int, work: Path) -> None:
    failing = apps // 10
    with served(apps, failing_every=10) as list_url, answered(apps, 10, GET_LATENCY) as url:
        client = ArgoCDClient(ArgoCDSettings(url=url, timeout_seconds=60, concurrent_gets=64))
        body = httpx.get(
            f"{list_url}/api/v1/applications", params={"fields": ",".join(LIST_FIELDS)}, timeout=120
        ).content
        baseline = timed(lambda: json.loads(body), runs)
        bound = ArgoCDSettings.model_fields["concurrent_gets"].default
        serial = bad_day_polls(url, body, client, 1, min(runs, 2), work)
        concurrent = bad_day_polls(url, body, client, bound, runs, work)
        met = median(concurrent.cycles) / median(baseline) <= BAD_DAY_GOAL
        print(f"\n## Goal 3: a bad day: {failing} of {apps} apps Degraded (a broken shared chart), each read whole")
        print(f"   by a GET over loopback answered after {GET_LATENCY * 1000:g} ms (Argo CD's work and the network, as")
        print("   modelled by a server in a child process that costs ~nothing); the list is replayed through the")
        print("   client's own parser")
        line("json.loads of the list body (baseline B)", ms(baseline))
        line(
            "cycle, watcher side, GETs one at a time (CONCURRENT_GETS=1)",
            ms(serial.cycles),
            f"{ratio(serial.cycles, baseline)} B",
        )
        line(
            f"cycle, watcher side, GETs {bound} at a time (its default)",
            ms(concurrent.cycles),
            f"{ratio(concurrent.cycles, baseline)} B: goal <= {BAD_DAY_GOAL:g}x {verdict(met)}",
        )
        line(
            f"  most GETs in flight at once (bound {bound}; with 1: {serial.most_in_flight})",
            str(concurrent.most_in_flight),
        )
        for name, run in (("GETs one at a time", serial), (f"{bound} at a time", concurrent)):
            line(
                f"  first poll ({name}): its {len(run.failures_published)} failures all out after",
                f"{max(run.failures_published or [0]) * 1000:.0f} ms",
                f"of {run.first_poll * 1000:.0f} ms (then the {apps - failing} healthy apps' first rows)",
            )


# -- goal 4: the simulator at fleet scale ------------------------------------------------------------------------
def bench_simulator(apps: int, runs: int, work: Path) -> None:
    from watcher.sim.gitserver import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/api/v1/applications"
    fields = {"fields": ",".join(LIST_FIELDS)}
    started = time.monotonic()
    command = [
        sys.executable,
        "-m",
        "watcher",
        "simulate",
        "--apps",
        str(apps),
        "--port",
        str(port),
        "--dir",
        str(work),
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        printed = next(row for row in proc.stdout if row.startswith("Watch it:"))
        serving = synced = None
        while time.monotonic() - started < 300 and synced is None:
            try:
                items = httpx.get(url, params=fields, timeout=60).json()["items"]
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if len(items) == apps and serving is None:
                serving = time.monotonic() - started
            if len(items) == apps and all(i["status"]["health"]["status"] == "Healthy" for i in items):
                synced = time.monotonic() - started
        body = httpx.get(url, params=fields, timeout=60).content
        http = httpx.Client(timeout=60)  # one client: a new one costs more (its TLS context) than the request
        lists = timed(lambda: http.get(url, params=fields).content, runs)
        parse = timed(lambda: json.loads(body), runs)
        name = json.loads(body)["items"][-1]["metadata"]["name"]
        gets = timed(lambda: http.get(f"{url}/{name}").content, 20)
        watch = dict(word.split("=", 1) for word in printed.split() if "=" in word)
        env = (
            {k: v for k, v in os.environ.items() if not k.startswith("WATCHER_")}
            | watch
            | {
                "WATCHER_LOG__LEVEL": "error",
                "WATCHER_REVERT__MODE": "off",
                "WATCHER_ARGOCD__TIMEOUT_SECONDS": "60",
            }
        )
        once = time.monotonic()
        ran = subprocess.run(
            [sys.executable, "-m", "watcher", "run", "--once"], env=env, capture_output=True, text=True
        )
        once = time.monotonic() - once
        print(f"\n## Goal 4: `sync-watcher simulate --apps {apps}` (a process; it stalled around 2,000 apps before)")
        line(
            f"serving a list of {apps} apps after", f"{serving:.1f} s" if serving else "NEVER", "(goal: it serves them)"
        )
        line(f"all {apps} synced and Healthy after", f"{synced:.1f} s" if synced else "NEVER")
        line(
            "one list with the watcher's fields (client's wall time)",
            ms(lists),
            f"{ratio(lists, parse)} json.loads of it",
        )
        line("one GET of a whole app", ms(gets))
        summary = next((s for s in ran.stdout.splitlines() if s.startswith("apps poll")), ran.stderr[-200:])
        line("`sync-watcher run --once` against it (incl. start, git clone)", f"{once:.1f} s", summary)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
