"""Benchmarks for the core: print figures, each against a baseline measured in the same run.

    python bench/run.py [--apps 10000] [--commits 100000]

1. list+diff cycle with N apps vs merely json.loads of the same list body (goal: within 3x);
2. RSS of the watcher holding N apps (goal: under 150 MB);
3. "which commits touched app X between A and B" on a C-commit repo, with and without the
   commit-graph's changed-path Bloom filters (goal: under 50 ms with it);
4. /metrics scrape time with N apps.
The simulator runs in a child process so its CPU is not the watcher's.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from watcher.adapters.argocd import LIST_FIELDS, ArgoCDClient, _apps_in  # noqa: E402
from watcher.logs import configure  # noqa: E402
from watcher.service import Watcher  # noqa: E402
from watcher.settings import load_settings  # noqa: E402
from watcher.sim.history import app_dir, build_history, rev_of  # noqa: E402
from watcher.store import Store  # noqa: E402


def synthetic_app(i: int, repo: str) -> dict[str, Any]:
    broken = i % 100 == 0  # 1% look wrong and get a full GET, as in a real fleet on a bad day
    return {
        "metadata": {"name": f"app-{i:05d}", "namespace": "argocd", "labels": {"team": f"t{i % 20}"}},
        "spec": {
            "project": "default",
            "source": {
                "repoURL": repo,
                "path": app_dir(i),
                "targetRevision": "main",
                "helm": {"valueFiles": ["values-stg.yaml"]},
            },
            "destination": {"server": "https://kubernetes.default.svc", "namespace": f"ns-{i % 50}"},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
        "status": {
            "sync": {"status": "OutOfSync" if broken else "Synced", "revision": "a" * 40},
            "health": {"status": "Degraded" if broken else "Healthy", "message": ""},
            "operationState": {
                "phase": "Succeeded",
                "startedAt": "2026-11-22T10:00:00Z",
                "finishedAt": "2026-11-22T10:00:05Z",
                "message": "successfully synced",
                "operation": {"sync": {"revision": "a" * 40}},
                "syncResult": {"revision": "a" * 40},
            },
            "history": [{"id": n, "revision": "a" * 40, "deployedAt": "2026-11-22T10:00:05Z"} for n in range(5)],
            "resources": [{"kind": "Deployment", "name": f"app-{i}", "status": "Synced"}],
        },
    }


def serve_apps(n: int, port: int, repo: str, ready: Any) -> None:
    from watcher.sim.controller import Controller
    from watcher.sim.server import build_sim_app
    from watcher.web import BackgroundServer

    controller = Controller(repo, Path(tempfile.mkdtemp()))
    controller.add_static_apps([synthetic_app(i, repo) for i in range(n)])
    server = BackgroundServer(build_sim_app(controller), "127.0.0.1", port)
    server.start()
    ready.set()
    while True:
        time.sleep(3600)


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms"


class Replay:
    """An AppSource that parses recorded bodies: the watcher's own work without the server's."""

    def __init__(self, body: bytes, client: ArgoCDClient):
        self.body, self.client = body, client
        self.gets: dict[str, bytes] = {}

    def iter_apps(self) -> Iterator[dict[str, Any]]:
        return _apps_in(self.body.decode())

    def get_app(self, name: str, namespace: str = "", refresh: str | None = None) -> dict[str, Any]:
        if name not in self.gets:
            self.gets[name] = json.dumps(self.client.get_app(name, namespace, refresh)).encode()
        return dict(json.loads(self.gets[name]))


class NoRepo:
    def sync(self) -> str:
        return "a" * 40

    def commit(self, sha: str) -> None:
        return None

    def yaml_files(self, rev: str, directories: Any) -> dict[str, str]:
        return {}

    def files_named(self, rev: str, directories: Any, names: Any) -> dict[str, str]:
        return {}


def bench_cycle(apps: int, runs: int, work: Path) -> None:
    from watcher.sim.gitserver import free_port

    port = free_port()
    repo = "https://git.example.com/platform/gitops"
    ready = multiprocessing.Event()
    child = multiprocessing.Process(target=serve_apps, args=(apps, port, repo, ready), daemon=True)
    child.start()
    ready.wait(120)
    try:
        url = f"http://127.0.0.1:{port}"
        settings = load_settings(
            argocd={"url": url, "timeout_seconds": 120}, git={"url": repo}, store={"url": f"sqlite:///{work}/bench.db"}
        )
        client = ArgoCDClient(settings.argocd)
        body = httpx.get(f"{url}/api/v1/applications", params={"fields": ",".join(LIST_FIELDS)}, timeout=120).content
        baseline = timed(lambda: json.loads(body), runs)
        rss_before = psutil.Process().memory_info().rss

        http_watcher = Watcher(settings, client, NoRepo(), Store(settings.store.url))
        first = timed(http_watcher.poll_apps, 1)
        over_http = timed(http_watcher.poll_apps, runs)
        replay_watcher = Watcher(settings, Replay(body, client), NoRepo(), Store(f"sqlite:///{work}/replay.db"))
        replay_watcher.poll_apps()
        replay = timed(replay_watcher.poll_apps, runs)
        changed = timed(lambda: (replay_watcher.trackers.clear(), replay_watcher.poll_apps()), 1)
        tick = timed(replay_watcher.tick, runs)
        from prometheus_client import generate_latest

        scrape = timed(lambda: generate_latest(http_watcher.metrics.registry), runs)
        print(f"\n## {apps} apps (list body {len(body) / 1e6:.1f} MB, {apps // 100} apps look wrong and get a GET)")
        print(f"json.loads of the list body (baseline)          {ms(baseline)}")
        print(
            f"cycle, watcher side (parse list + GETs + diff)  {ms(replay)}  = "
            f"{statistics.median(replay) / statistics.median(baseline):.2f}x baseline (goal <= 3x)"
        )
        print(
            f"cycle over HTTP incl. simulator + {apps // 100} GETs        {ms(over_http)}  = "
            f"{statistics.median(over_http) / statistics.median(baseline):.2f}x baseline"
        )
        print(f"first cycle (every app new: {apps} rows written)   {ms(first)}")
        print(f"cycle after a restart of the trackers           {ms(changed)}")
        print(f"detection tick over all apps (timers)           {ms(tick)}")
        print(f"/metrics scrape ({apps} app_info series)          {ms(scrape)}")
        rss, cycles = daemon_rss(url, work / "full")
        idle_port = free_port()
        idle = multiprocessing.Process(target=serve_apps, args=(0, idle_port, repo, ready), daemon=True)
        ready.clear()
        idle.start()
        ready.wait(60)
        idle_rss, _ = daemon_rss(f"http://127.0.0.1:{idle_port}", work / "idle")
        idle.terminate()
        print(
            f"RSS of `sync-watcher run`, {apps} apps, after {cycles} list cycles + stream replay  "
            f"{rss / 2**20:.0f} MB (goal < 150 MB)"
        )
        print(
            f"RSS of `sync-watcher run` watching 0 apps (baseline)  {idle_rss / 2**20:.0f} MB; "
            f"this bench process before its watchers: {rss_before / 2**20:.0f} MB"
        )
    finally:
        child.terminate()


def daemon_rss(argocd_url: str, work: Path, cycles: int = 3) -> tuple[int, int]:
    """Start the real daemon as a process against the simulator; its RSS once it has done `cycles` lists."""
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
    try:
        deadline = time.monotonic() + 300
        done = 0.0
        while time.monotonic() < deadline and done < cycles:
            time.sleep(1)
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
            except httpx.HTTPError:
                continue
            for line in text.splitlines():
                if line.startswith('sync_watcher_poll_duration_seconds_count{source="argocd"}'):
                    done = float(line.split()[-1])
        return psutil.Process(proc.pid).memory_info().rss, int(done)
    finally:
        proc.terminate()
        proc.wait(15)


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
    print(f"with commit-graph + changed-path Bloom filters  {ms(with_graph)} (goal < 50 ms)")
    print(f"commit-graph without Bloom filters              {ms(no_bloom)}")
    print(f"with Bloom filters, the last 1,000 commits only {ms(recent)} (a blame window: last good..failing)")
    print(
        f"without commit-graph (baseline)                 {ms(no_graph)}  = "
        f"{statistics.median(no_graph) / statistics.median(with_graph):.1f}x slower"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=10_000)
    parser.add_argument("--commits", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    configure("error", "console")
    with tempfile.TemporaryDirectory(prefix="sync-watcher-bench-") as tmp:
        print(f"sync-watcher benchmarks on {os.cpu_count()} cores, Python {sys.version.split()[0]}")
        bench_cycle(args.apps, args.runs, Path(tmp))
        bench_git(args.commits, args.runs, Path(tmp))


if __name__ == "__main__":
    main()
