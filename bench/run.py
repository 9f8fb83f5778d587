"""Benchmarks: print figures, each against its goal and a baseline measured in the same run.

    python bench/run.py [--apps 10000] [--commits 100000] [--runs 7] [--parts cycle,memory,bad-day,simulator,git]

cycle      the list+diff cycle with N apps vs json.loads of the same list body (goal: within 3x), and goal 2:
           the /metrics scrape (goal: under 100 ms) vs prometheus_client rendering the same series;
memory     goal 1: RSS of `sync-watcher run` with N apps (goal: under 120 MB) vs with none, the cost per app, and
           where it goes (tracemalloc);
bad-day    goal 3: 10% of N apps failing, their GETs over HTTP (goal: the cycle within 3x the bare parse), one at a
           time vs concurrently, and when the failures are published in a poll that also writes every healthy app;
simulator  goal 4: `sync-watcher simulate --apps N` serving N apps, a list, a GET, `run --once` against it;
git        "which commits touched app X between A and B" on a C-commit repo, with and without the commit-graph's
           changed-path Bloom filters (goal: under 50 ms with it).
Simulators and daemons run as other processes, so their CPU is not the measured side's. Other work on the machine
shares its cores: compare the ratios, which are measured in the same run, more than the milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet import bench_bad_day, bench_memory, bench_simulator  # noqa: E402
from synthetic import REPO, NoRepo, Replay, line, median, ms, ratio, served, timed  # noqa: E402

from watcher.adapters.argocd import LIST_FIELDS, ArgoCDClient  # noqa: E402
from watcher.logs import configure  # noqa: E402
from watcher.observe.cycle import Watcher  # noqa: E402
from watcher.settings import load_settings  # noqa: E402
from watcher.sim.history import app_dir, build_history, rev_of  # noqa: E402
from watcher.store import Store  # noqa: E402

SCRAPE_GOAL_MS = 100


def bench_cycle(apps: int, runs: int, work: Path) -> None:
    with served(apps) as url:
        settings = load_settings(
            argocd={"url": url, "timeout_seconds": 120}, git={"url": REPO}, store={"url": f"sqlite:///{work}/bench.db"}
        )
        client = ArgoCDClient(settings.argocd)
        body = httpx.get(f"{url}/api/v1/applications", params={"fields": ",".join(LIST_FIELDS)}, timeout=120).content
        baseline = timed(lambda: json.loads(body), runs)
        http_watcher = Watcher(settings, client, NoRepo(), Store(settings.store.url))
        first = timed(http_watcher.poll_apps, 1)
        over_http = timed(http_watcher.poll_apps, runs)
        replay_watcher = Watcher(settings, Replay(body, client), NoRepo(), Store(f"sqlite:///{work}/replay.db"))
        replay_watcher.poll_apps()
        replay = timed(replay_watcher.poll_apps, runs)
        changed = timed(lambda: (replay_watcher.state.trackers.clear(), replay_watcher.poll_apps()), 1)
        tick = timed(replay_watcher.tick, runs)
        from prometheus_client import generate_latest

        metrics = http_watcher.metrics
        rendered = timed(lambda: generate_latest(metrics.registry), runs)
        cold = timed(Watcher(settings, client, NoRepo(), Store(settings.store.url)).metrics.exposition, 1)
        scrape = timed(metrics.exposition, runs)
        print(f"\n## {apps} apps (list body {len(body) / 1e6:.1f} MB, {apps // 100} apps look wrong and get a GET)")
        line("json.loads of the list body (baseline B)", ms(baseline))
        line("cycle, watcher side (parse list + GETs + diff)", ms(replay), f"{ratio(replay, baseline)} B (goal <= 3x)")
        line(f"cycle over HTTP incl. simulator + {apps // 100} GETs", ms(over_http), f"{ratio(over_http, baseline)} B")
        line(f"first cycle (every app new: {apps} rows written)", ms(first))
        line("cycle after a restart of the trackers", ms(changed))
        line("detection tick over all apps (timers)", ms(tick))
        print(f"\n## Goal 2: /metrics with {apps} apps ({len(metrics.exposition()) / 1e6:.1f} MB of text)")
        line("prometheus_client rendering the same series (baseline: before)", ms(rendered))
        line(
            "/metrics as the daemon answers it",
            ms(scrape),
            f"goal < {SCRAPE_GOAL_MS} ms: {'met' if median(scrape) * 1000 < SCRAPE_GOAL_MS else 'NOT met'}; "
            f"{ratio(scrape, rendered)} baseline; {ratio(scrape, baseline)} B",
        )
        line("  its first scrape (every line rendered)", ms(cold))


def bench_git(commits: int, runs: int, work: Path) -> None:
    from watcher.adapters.gitrepo import GitRepo
    from watcher.settings import GitSettings

    apps = 1000
    started = time.perf_counter()
    bare = work / "big.git"
    build_history(bare, commits, apps)
    built = time.perf_counter() - started
    repo = GitRepo(GitSettings(url=str(bare), clone_dir=work / "clone", partial_clone=False))
    started = time.perf_counter()
    repo.sync()
    synced = time.perf_counter() - started
    since, until = rev_of(bare, commits // 2), rev_of(bare, commits - 1)
    path = [app_dir(7)]
    with_graph = timed(lambda: repo.commits_touching(path, until=until, since=since), runs)
    found = len(repo.commits_touching(path, until=until, since=since))
    clone = str(work / "clone")

    def git_log_with(config: str) -> Callable[[], None]:
        """The same path-limited log, with one git setting switched (to time what that setting saves)."""
        command = ["git", "-C", clone, "-c", config, "log", "--format=%H", f"{since}..{until}", "--", *path]

        def run() -> None:
            subprocess.run(command, check=True, capture_output=True)

        return run

    without = git_log_with("core.commitGraph=false")
    graph_no_bloom = git_log_with("commitGraph.readChangedPaths=false")

    recent_since = rev_of(bare, commits - 1000)
    recent = timed(lambda: repo.commits_touching(path, until=until, since=recent_since), runs)
    no_graph = timed(without, max(3, runs // 2))
    no_bloom = timed(graph_no_bloom, max(3, runs // 2))
    print(f"\n## {commits} commits, {apps} app dirs; commits touching one app in the newer half ({found} found)")
    print(f"history built with fast-import in {built:.1f} s; clone + commit-graph write {synced:.1f} s")
    line("with commit-graph + changed-path Bloom filters", ms(with_graph), "(goal < 50 ms)")
    line("commit-graph without Bloom filters", ms(no_bloom))
    line("with Bloom filters, the last 1,000 commits only", ms(recent), "(a blame window: last good..failing)")
    line("without commit-graph (baseline)", ms(no_graph), f"= {median(no_graph) / median(with_graph):.1f}x slower")


def main() -> None:
    parts = ("cycle", "memory", "bad-day", "simulator", "git")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=10_000)
    parser.add_argument("--commits", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--parts", default=",".join(parts), help=f"comma-separated, of: {', '.join(parts)}")
    args = parser.parse_args()
    chosen = [p for p in args.parts.split(",") if p]
    if unknown := set(chosen) - set(parts):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    configure("error", "console")
    run: dict[str, Callable[[Path], None]] = {
        "cycle": lambda work: bench_cycle(args.apps, args.runs, work),
        "memory": lambda work: bench_memory(args.apps, work, args.runs),
        "bad-day": lambda work: bench_bad_day(args.apps, args.runs, work),
        "simulator": lambda work: bench_simulator(args.apps, args.runs, work / "sim"),
        "git": lambda work: bench_git(args.commits, args.runs, work),
    }
    started = time.monotonic()
    print(f"sync-watcher benchmarks on {os.cpu_count()} cores, Python {sys.version.split()[0]}; {load()}")
    with tempfile.TemporaryDirectory(prefix="sync-watcher-bench-") as tmp:
        for part in chosen:
            run[part](Path(tmp))
    print(f"\ndone in {time.monotonic() - started:.0f} s; {load()}")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores"


if __name__ == "__main__":
    main()
