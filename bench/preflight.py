"""The pre-flight on Argo CD's real clock: a verdict on each push before Argo CD deploys it.

    python bench/preflight.py [--scale 20] [--rounds 1]

One world on SimTimings.real() (Argo CD notices a push 120-180 s later: no webhook, no refresh) and a ScaledClock,
the whole watcher with the pre-flight on at its defaults (git fetched every 10 Argo CD seconds) and reverts opted in
for every environment, in push mode. A corpus of pushes, one after the other, each after the simulator caught up:
- render errors: a values file that is not YAML (one app), a template with an unclosed action in a shared chart
  (every app of the chart);
- invalid objects of built-in kinds: a replica count that is not a number (the cluster's API would refuse it);
- healthy changes to every app shape the simulator has: image bumps and replica changes, stg and prod, a change to
  a shared chart's library (file:// dependency), a change that touches no app.
(Unknown fields in custom resources are not in the corpus: the simulator's charts render no custom resource.)

Printed: time from the push to the verdict (Argo CD seconds; the scaled clock scales the watcher's own work too, so
these are pessimistic by scale x its wall time), the share of render-breaking pushes reverted before Argo CD first
compared them, false alarms on healthy pushes, Argo CD calls per judged commit.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from watcher.demo_real import real_timings_settings  # noqa: E402
from watcher.logs import configure  # noqa: E402
from watcher.run.daemon import Daemon  # noqa: E402
from watcher.sim.clock import ScaledClock  # noqa: E402
from watcher.sim.controller import SimTimings  # noqa: E402
from watcher.sim.gitops_repo import WorkClone  # noqa: E402
from watcher.sim.world import SimWorld  # noqa: E402

GOAL_MEDIAN = 15.0  # Argo CD seconds from the push to the verdict
GOAL_REVERTED = 0.90  # render-breaking pushes reverted before Argo CD's first compare
DEFAULT_GIT_POLL, DEFAULT_PREFLIGHT_POLL = 60.0, 10.0  # Argo CD seconds: the watcher's defaults


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "render_error" | "invalid_object" | "healthy"
    apps: tuple[str, ...]  # the apps the push affects (the verdicts awaited)
    change: Callable[[WorkClone], dict[str, str]]


def values(app: str) -> str:
    svc, env = app.rsplit("-", 1)
    return f"helm/applications/{svc}/values-{env}.yaml"


def set_value(app: str, key: str, value: object) -> Callable[[WorkClone], dict[str, str]]:
    return lambda w: {values(app): w.set_value(values(app), key, value)}


def append(path: str, text: str) -> Callable[[WorkClone], dict[str, str]]:
    return lambda w: {path: w.read(path) + text}


WEB_TEMPLATE = "helm/applications/plate-web/templates/deployment.yaml"
CORPUS = (
    Case("values not YAML (api stg)", "render_error", ("plate-api-stg",), append(values("plate-api-stg"), "x: [\n")),
    Case("image bump (web stg)", "healthy", ("plate-web-stg",), set_value("plate-web-stg", "image.tag", "1.26.0")),
    Case("values not YAML (cache prod)", "render_error", ("plate-cache-prod",),
         append(values("plate-cache-prod"), "x: [\n")),
    Case("replicas 3 (api prod)", "healthy", ("plate-api-prod",), set_value("plate-api-prod", "replicaCount", 3)),
    Case("unclosed action in a shared chart (web)", "render_error", ("plate-web-stg", "plate-web-prod"),
         append(WEB_TEMPLATE, "{{ .Values.broken\n")),
    Case("image bump (llm prod)", "healthy", ("plate-llm-prod",), set_value("plate-llm-prod", "image.tag", "0.9.2")),
    Case("replicas not a number (web prod)", "invalid_object", ("plate-web-prod",),
         set_value("plate-web-prod", "replicaCount", "two")),
    Case("image bump (cache stg)", "healthy", ("plate-cache-stg",), set_value("plate-cache-stg", "image.tag", "7.2.5")),
    Case("values not YAML (llm stg)", "render_error", ("plate-llm-stg",), append(values("plate-llm-stg"), "x: [\n")),
    Case("replicas 2 (web stg)", "healthy", ("plate-web-stg",), set_value("plate-web-stg", "replicaCount", 2)),
    Case("replicas not a number (api stg)", "invalid_object", ("plate-api-stg",),
         set_value("plate-api-stg", "replicaCount", "two")),
    Case("a comment in the library chart", "healthy", ("plate-web-stg", "plate-web-prod"),
         append("helm/library/common/templates/_labels.tpl", "{{/* labels */}}\n")),
    Case("a README that no app reads", "healthy", (), lambda w: {"docs/NOTES.md": f"notes {time.time()}\n"}),
)  # fmt: skip


@dataclass
class Result:
    case: Case
    sha: str
    seconds: dict[str, float]  # app -> push to verdict (Argo CD seconds)
    verdicts: dict[str, str]
    reverted_before_compare: bool
    reverted: bool


class Bench:
    def __init__(self, root: Path, scale: float):
        self.clock = ScaledClock(scale)
        self.world = SimWorld.start(root, timings=SimTimings.real(seed=5), clock=self.clock)
        settings = real_timings_settings(self.world, root)
        settings = settings.model_copy(
            update={
                "git": settings.git.model_copy(update={"poll_interval_seconds": DEFAULT_GIT_POLL / scale}),
                "preflight": settings.preflight.model_copy(
                    update={"poll_interval_seconds": DEFAULT_PREFLIGHT_POLL / scale, "revert_environments": ["*"]}
                ),
                "revert": settings.revert.model_copy(update={"cooldown_seconds": 0.0, "max_reverts_per_hour": 100}),
            }
        )
        self.daemon = Daemon(settings, argocd_retry_max_wait=0.5, clock=self.clock.now)
        self.compared: set[str] = set()  # every head the simulator's repo poll saw (Argo CD compares those)
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_head, daemon=True)

    def _watch_head(self) -> None:
        while not self._stop.wait(0.005):
            if self.world.controller.head:
                self.compared.add(self.world.controller.head)

    def start(self) -> None:
        self.daemon.start()
        self._watch.start()
        wait(lambda: len(self.daemon.store.detection.deployments()) >= 9, 120, "initial deploys")

    def run(self, case: Case, wall_timeout: float) -> Result:
        work = self.world.work
        work.git("pull", "-q", "--rebase", "origin", "main")
        sha = work.commit(f"bench: {case.name}", case.change(work))
        pushed = self.clock.time()
        work.push()
        records = self.daemon.store.preflight
        wait(lambda: all(records.verdicts(app=a, commit_sha=sha, limit=1) for a in case.apps), wall_timeout, case.name)
        if not case.apps:  # nothing to judge: give the pre-flight time to (not) ask
            time.sleep(2 * DEFAULT_PREFLIGHT_POLL / self.clock.scale)
        found = {a: records.verdicts(app=a, commit_sha=sha, limit=1)[0] for a in case.apps}
        reverted = False
        if case.kind == "render_error":
            reverted = wait(lambda: self._reverted(sha), wall_timeout, "revert", fail=False)
        before = reverted and sha not in self.compared
        # Let Argo CD catch up with the branch before the next push (its next repo poll).
        head = work.git("ls-remote", "origin", "refs/heads/main").split()[0]
        wait(lambda: self.world.controller.head == head, wall_timeout, "Argo CD caught up", fail=False)
        return Result(
            case,
            sha,
            {a: v.judged_at.timestamp() - pushed for a, v in found.items()},
            {a: v.verdict for a, v in found.items()},
            before,
            reverted,
        )

    def calls(self) -> float:
        """The pre-flight's own requests to Argo CD (narrowing's, by the reverter, are not counted)."""
        registry = self.daemon.metrics.registry
        return registry.get_sample_value("sync_watcher_preflight_argocd_calls_total") or 0.0

    def _reverted(self, sha: str) -> bool:
        return any(sha in r.culprits and r.state == "pushed" for r in self.daemon.store.audit.reverts())

    def stop(self) -> None:
        self._stop.set()
        self.daemon.stop()
        self.world.stop()


def wait(test: Callable[[], object], wall_timeout: float, what: str, fail: bool = True) -> bool:
    deadline = time.monotonic() + wall_timeout
    while time.monotonic() < deadline:
        if test():
            return True
        time.sleep(0.02)
    if fail:
        raise TimeoutError(f"{what}: not within {wall_timeout:g} s")
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=20.0, help="Argo CD seconds per wall second")
    parser.add_argument("--rounds", type=int, default=1, help="times through the corpus")
    args = parser.parse_args()
    configure(level="error")
    root = Path(tempfile.mkdtemp(prefix="bench-preflight-"))
    bench = Bench(root, args.scale)
    results: list[Result] = []
    try:
        bench.start()
        calls_before = bench.calls()
        for _ in range(args.rounds):
            for case in CORPUS:
                results.append(bench.run(case, wall_timeout=60.0))
        calls = int(bench.calls() - calls_before)
        # Every verdict the pre-flight gave, the watcher's own revert commits included (they are new commits too).
        every = bench.daemon.store.preflight.verdicts(limit=100_000)
    finally:
        bench.stop()
        shutil.rmtree(root, ignore_errors=True)
    report(results, calls, args.scale, len(every), len({v.commit_sha for v in every}))


def report(results: list[Result], calls: int, scale: float, verdicts_all: int, commits_all: int) -> None:
    every = DEFAULT_PREFLIGHT_POLL
    print(f"pre-flight on SimTimings.real(), no webhook, clock x{scale:g}; git fetched every {every:g} s")
    print(f"{'push':44} {'expected':15} {'verdicts':40} {'s to verdict':>12}  reverted before Argo CD compared")
    for r in results:
        verdicts = ", ".join(sorted(set(r.verdicts.values()))) or "(no app affected: none)"
        secs = ", ".join(f"{s:.1f}" for s in r.seconds.values()) or "-"
        before = {True: "yes", False: "NO"}[r.reverted_before_compare] if r.case.kind == "render_error" else ""
        print(f"{r.case.name:44} {r.case.kind:15} {verdicts:40} {secs:>12}  {before}")
    seconds = [s for r in results for s in r.seconds.values()]
    breaking = [r for r in results if r.case.kind == "render_error"]
    reverted = sum(r.reverted_before_compare for r in breaking)
    healthy = [r for r in results if r.case.kind == "healthy"]
    alarms = sum(1 for r in healthy for v in r.verdicts.values() if v in ("will_fail_to_render", "invalid_objects"))
    invalid = [r for r in results if r.case.kind == "invalid_object"]
    caught = sum(all(v == "invalid_objects" for v in r.verdicts.values()) for r in invalid)
    median = statistics.median(seconds)
    print()
    print(
        f"push -> verdict, median (Argo CD s)      {median:6.1f}   goal <= {GOAL_MEDIAN:g}: "
        f"{'met' if median <= GOAL_MEDIAN else 'NOT met'}; p90 {sorted(seconds)[int(0.9 * (len(seconds) - 1))]:.1f}"
    )
    share = reverted / len(breaking) if breaking else 0.0
    print(
        f"render-breaking pushes reverted before Argo CD's first compare   {reverted}/{len(breaking)} = {share:.0%}"
        f"   goal >= {GOAL_REVERTED:.0%}: {'met' if share >= GOAL_REVERTED else 'NOT met'}"
    )
    verdicts = sum(len(r.verdicts) for r in healthy)
    print(
        f"false alarms on healthy pushes           {alarms} of {verdicts} verdicts   goal 0: "
        f"{'met' if alarms == 0 else 'NOT met'}"
    )
    print(f"invalid built-in objects caught          {caught}/{len(invalid)} (a warning, never reverted)")
    per = calls / max(commits_all, 1)
    print(f"Argo CD calls per judged commit          {per:.1f} ({calls} calls for {verdicts_all} app verdicts on "
          f"{commits_all} commits, the watcher's reverts included: 2 renders per affected app, the cluster's "
          "version once an hour)")  # fmt: skip


if __name__ == "__main__":
    main()
