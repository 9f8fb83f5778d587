"""The simulator against Argo CD's source (docs/argocd-conformance.md): one test per row, failing if the
simulator drifts. Real timings run on the manual clock (no test sleeps); the fast clock checks ratios and order.
Line numbers are of argo-cd 37ee0097."""

from __future__ import annotations

import json
import random
import statistics
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.waiting import wait_for
from watcher.sim.case_run import CaseRun
from watcher.sim.controller import SimApp
from watcher.sim.manifest_cache import CACHED_PREFIX, ManifestErrorCache
from watcher.sim.refresh import RefreshSchedule, RefsCache, expired
from watcher.sim.retry import auto_sync_retry, manual_sync_retry, retry_wait
from watcher.sim.rollouts import APP, FAILURES
from watcher.sim.world import SimWorld

MANIFEST = f"environments/argocd/apps/{APP}.yaml"
VALUES = "helm/applications/plate-api/values-stg.yaml"
RENDER_ERROR = next(c for c in FAILURES if c.name == "render_error")


# -- retry: pure rules --------------------------------------------------------------------------------------
def test_retry_waits_10_20_40_80_160_seconds() -> None:
    """appcontroller.go:1688 increments the count before 1608-1610 waits NextRetryAt(finishedAt, count)."""
    waits = [retry_wait({"limit": 5}, n) for n in range(6)]
    assert waits == [10.0, 20.0, 40.0, 80.0, 160.0, None]
    assert retry_wait({"limit": -1}, 9) == 180.0  # unlimited, capped at maxDuration 3m
    assert retry_wait({"limit": 3, "backoff": {"duration": "1m", "factor": 3, "maxDuration": "0"}}, 2) == 1620.0


@pytest.mark.parametrize(
    ("spec", "requested", "auto", "manual"),
    [
        ({}, None, {"limit": 5}, {}),  # appcontroller.go:2583; application.go:2120-2128: no implicit 5
        ({"syncPolicy": {"retry": {"limit": 2}}}, None, {"limit": 2}, {"limit": 2}),
        ({"syncPolicy": {"retry": {"limit": 0}}}, None, {"limit": 0}, {"limit": 0}),
        ({"syncPolicy": {"retry": {"limit": 2}}}, {"limit": 7}, {"limit": 2}, {"limit": 7}),
    ],
    ids=["omitted", "app-policy", "app-says-none", "request-wins"],
)
def test_which_retry_policy_an_operation_gets(
    spec: dict[str, Any], requested: dict[str, Any] | None, auto: dict[str, Any], manual: dict[str, Any]
) -> None:
    assert auto_sync_retry(spec) == auto
    assert manual_sync_retry(spec, requested) == manual


# -- refresh: pure rules ------------------------------------------------------------------------------------
def test_each_app_gets_its_own_jitter_at_each_resync() -> None:
    schedule = RefreshSchedule(random.Random(1))
    names = [f"app{i}" for i in range(20)]
    schedule.due(0.0, names, 120.0, 60.0)  # the informer adds them: compared at once
    first = dict(schedule.queued)
    assert first == {}  # all were due at once and taken
    schedule.rearm()
    schedule.due(120.0, names, 120.0, 60.0)
    delays = sorted(at - 120.0 for at in schedule.queued.values())
    assert len(set(delays)) == 20 and 0 <= delays[0] and delays[-1] < 60.0


def test_the_expiry_gate_skips_a_resync_sooner_than_the_period() -> None:
    assert expired(None, 0.0, 120.0)
    assert not expired(1000.4, 1120.0, 120.0)  # 1000 + 120 is not before 1120
    assert expired(1000.4, 1120.5, 120.0)  # reconciledAt is kept in whole seconds


def time_to_notice(rng: random.Random, period: float = 120.0, jitter: float = 60.0, ttl: float = 180.0) -> float:
    """One app on one repo, with the controller's rules (sim/refresh.py): seconds from a push to the first full
    compare that resolves the branch past the ls-remote cache."""
    schedule, refs = RefreshSchedule(rng), RefsCache()
    reconciled: float | None = None
    push = 3600.0 + rng.uniform(0, 600)
    t = 0.0
    while True:
        for _, forced in schedule.due(t, ["app"], period, jitter):
            if forced or expired(reconciled, t, period):
                if refs.stale(t, ttl):
                    refs.fetched(t)
                    if t >= push:
                        return t - push
                elif refs.fetched_at is not None and refs.fetched_at >= push:
                    return t - push
                reconciled = t
        t += 1.0


def test_a_push_without_webhook_is_seen_in_two_to_three_minutes_at_most_seven() -> None:
    """Resync 120 s + a fresh 0-60 s jitter per app, the expiry gate, and the 3 min ls-remote cache: the
    research's Monte-Carlo (docs/argocd-conformance.md row 'push, no webhook') gives median ~140 s, max ~410 s."""
    rng = random.Random(5)
    delays = sorted(time_to_notice(rng) for _ in range(300))
    assert 110 <= statistics.median(delays) <= 180
    assert delays[-1] <= 420
    assert delays[int(0.9 * len(delays))] >= 220  # a long tail: the cache and a skipped resync add up


def test_a_cached_generation_error_after_three_failures_for_an_hour() -> None:
    cache = ManifestErrorCache()  # Argo CD's defaults: after 3 failures, for 60 minutes
    for _ in range(3):
        assert cache.cached("a", "sha1", 0.0, hard=False) is None
        cache.failed("a", "sha1", "yaml: line 1", 0.0)
    assert cache.cached("a", "sha1", 10.0, hard=False) == f"{CACHED_PREFIX}: yaml: line 1"
    assert cache.cached("a", "sha1", 10.0, hard=True) is None  # a hard refresh renders
    assert cache.cached("a", "sha2", 10.0, hard=False) is None  # a new commit is a new key
    assert cache.cached("a", "sha1", 3599.0, hard=False) is not None
    assert cache.cached("a", "sha1", 3600.0, hard=False) is None  # 60 whole minutes: generation runs again


# -- real timings on the manual clock -----------------------------------------------------------------------
@pytest.fixture
def run(tmp_path: Path) -> Iterator[CaseRun]:
    r = CaseRun(tmp_path)
    yield r
    r.stop()


def operation_states(run: CaseRun) -> list[tuple[float, dict[str, Any]]]:
    """Every distinct operationState the app showed, with when."""
    out: list[tuple[float, dict[str, Any]]] = []
    for t, status in run.statuses:
        state = status.get("operationState") or {}
        if not out or out[-1][1] != state:
            out.append((t, state))
    return out


def test_real_retries_without_a_policy_wait_10_to_160_s_and_fail_after_five_and_a_half_minutes(
    run: CaseRun,
) -> None:
    """An auto-synced app with no `retry`: limit 5 (appcontroller.go:2583); between attempts Running with
    finishedAt and the failed result (1684-1689); each retry starts with both gone (1634-1639)."""
    manifest = yaml.safe_load(run.world.work.read(MANIFEST))
    del manifest["spec"]["syncPolicy"]["retry"]
    bad = run.world.work.set_value(VALUES, "replicaCount", -1)
    run.world.work.commit("no retry policy, bad spec", {MANIFEST: yaml.safe_dump(manifest), VALUES: bad})
    run.world.work.push()
    run.world.controller.refresh()
    pushed = run.clock.time()
    run.advance(420.0, step=1.0)
    states = operation_states(run)
    started = [t for t, s in states if s.get("phase") == "Running" and not s.get("finishedAt")]
    failed = [(t, s) for t, s in states if s.get("phase") == "Running" and s.get("finishedAt")]
    # attempt starts: the first, then one per retry
    retry_starts = [(t, s) for t, s in states if s.get("message", "").startswith("Retrying operation. Attempt #")]
    gaps = [round(start - fail) for (fail, _), (start, _) in zip(failed, retry_starts, strict=True)]
    assert gaps == [10, 20, 40, 80, 160]
    assert all("syncResult" in s and s["message"].endswith("M.") for _, s in failed)
    assert all("syncResult" not in s and "finishedAt" not in s for _, s in retry_starts)
    assert [s["retryCount"] for _, s in retry_starts] == [1, 2, 3, 4, 5]
    final_at, final = states[-1]
    assert final["phase"] == "Failed" and final["message"].endswith("(retried 5 times).")
    assert 320 <= final_at - started[0] <= 335  # 310 s of backoff + 6 attempts of 3 s: ~5.5 min Running
    assert final_at - pushed < 340


def test_real_retry_keeps_the_sync_result_before_commit_9b40474c(run: CaseRun) -> None:
    """Argo CD <= 3.5 (merge patch): a retry that starts keeps the failed attempt's syncResult."""
    run.world.controller.timings.retry_clears_sync_result = False
    run.world.work.commit("bad spec", {VALUES: run.world.work.set_value(VALUES, "replicaCount", -1)})
    run.world.work.push()
    run.world.controller.refresh()
    run.advance(40.0, step=1.0)
    starts = [s for _, s in operation_states(run) if s.get("message", "").startswith("Retrying operation.")]
    assert starts and all("syncResult" in s and "finishedAt" not in s for s in starts)


def test_real_push_without_webhook_waits_for_the_ref_cache_and_each_apps_resync(run: CaseRun) -> None:
    """No app sees the commit before the ls-remote cache fetched before the push expires (3 min); each app
    then sees it at its own resync and jitter; all within resync + jitter + cache (~7 min)."""
    controller = run.world.controller
    fetched_before = controller.refs.fetched_at
    assert fetched_before is not None
    sha = run.world.work.commit("a harmless bump", {VALUES: run.world.work.set_value(VALUES, "podLabel", "x")})
    run.world.work.push()
    pushed = run.clock.time()
    seen: dict[str, float] = {}
    end = pushed + 480.0
    while run.clock.time() < end and len(seen) < len(controller.apps):
        run.clock.advance(1.0)
        controller.tick()
        for app in controller.snapshot():
            if app["status"].get("sync", {}).get("revision") == sha:
                seen.setdefault(app["metadata"]["name"], run.clock.time())
    assert len(seen) == len(controller.apps)
    assert min(seen.values()) >= fetched_before + 180.0
    assert max(seen.values()) - pushed <= 180.0 + 120.0 + 60.0 + 60.0
    assert len(set(seen.values())) > 1  # per-app jitter: not one poll for every app


def test_real_render_error_without_webhook_is_hidden_for_the_grace_then_unknown_at_main(run: CaseRun) -> None:
    """controller/state.go:751-762: the first sighting and any within 180 s write nothing (reconciledAt frozen);
    then ComparisonError, sync Unknown, sync.revision the unresolved targetRevision (696-708, 3.2+); after three
    failed generations the repo server answers its cached error (repository.go:1095-1113)."""
    controller = run.world.controller
    pushed = run.push(RENDER_ERROR, webhook=False)
    run.advance(1500.0)
    first = controller.manifest_errors.entries[(APP, run.sha)].first
    assert first > pushed
    shown = [t for t, s in run.statuses if s.get("conditions")]
    assert shown and shown[0] - first > 180.0
    hidden = [s for t, s in run.statuses if first <= t < shown[0]]
    assert len({s["reconciledAt"] for s in hidden}) == 1 and {s["sync"]["status"] for s in hidden} == {"Synced"}
    status = dict(run.statuses[-1][1])
    assert status["sync"]["status"] == "Unknown" and status["sync"]["revision"] == "main"
    [condition] = status["conditions"]
    assert condition["type"] == "ComparisonError"
    assert f"desc = {CACHED_PREFIX}: " in condition["message"]
    messages = [s["conditions"][0]["message"] for t, s in run.statuses if s.get("conditions")]
    assert CACHED_PREFIX not in messages[0]  # live errors first, cached ones from the 4th request on


def test_real_refresh_skips_the_ref_cache_and_the_grace(run: CaseRun) -> None:
    """`?refresh=normal` (webhook: `normal` too) compares at once past the ls-remote cache and the grace, and the
    GET answers with that compare (application.go:800-896)."""
    run.push(RENDER_ERROR, webhook=False)
    got = httpx.get(f"{run.world.argocd_url}/api/v1/applications/{APP}", params={"refresh": "normal"}, timeout=10)
    status = got.json()["status"]
    assert (status["sync"]["status"], status["sync"]["revision"]) == ("Unknown", "main")
    assert status["conditions"][0]["type"] == "ComparisonError"


# -- shapes on the fast clock -------------------------------------------------------------------------------
def test_render_error_revisions_by_version_and_sources(world: SimWorld) -> None:
    """One source: the targetRevision text (3.2+, commit 9dfa9db097) or nothing (before); several: none."""
    controller = world.controller
    one = SimApp({"metadata": {"name": "a"}, "spec": {"source": {"targetRevision": "main"}}})
    multi = SimApp({"metadata": {"name": "b"}, "spec": {"sources": [{"targetRevision": "main"}]}})
    assert controller._error_revisions(one, "main") == {"revision": "main"}
    assert controller._error_revisions(multi, "main") == {}
    controller.timings.revision_on_render_error = False
    assert controller._error_revisions(one, "main") == {}


def test_fast_retries_double_and_a_persons_sync_uses_the_apps_policy(world: SimWorld) -> None:
    """The fast clock keeps the shape: each wait twice the last; a person's sync retries as the app says
    (limit 2 in the demo's apps), with their username (application.go:2120-2173)."""
    times: list[tuple[float, str]] = []

    def record(kind: str, app: SimApp) -> None:
        if app.name == APP:
            times.append((world.clock.time(), app.status.get("operationState", {}).get("message", "")))

    world.controller.listeners.append(record)
    wait_for(lambda: world.controller.get(APP)["status"].get("health", {}).get("status") == "Healthy")
    world.work.commit("bad spec", {VALUES: world.work.set_value(VALUES, "replicaCount", -1)})
    world.work.push()
    failed = wait_for(
        lambda: (s := world.controller.get(APP)["status"]["operationState"])["phase"] == "Failed" and s,
        what="the auto-sync failed",
    )
    assert failed["message"].endswith("(retried 2 times).")
    assert failed["operation"]["initiatedBy"] == {"automated": True}  # appcontroller.go:2582: no username
    fails = [t for t, m in times if ". Retrying attempt #" in m]
    starts = [t for t, m in times if m.startswith("Retrying operation. Attempt #")]
    first, second = (start - fail for fail, start in zip(fails, starts, strict=False))
    assert second > 1.3 * first
    # No new auto-sync at the failed SHA (appcontroller.go:2593-2600): compares go on, the operation stays Failed.
    sim_app = world.controller.apps[APP]
    compared = sim_app.reconciled_at or 0.0
    wait_for(lambda: (sim_app.reconciled_at or 0.0) > compared + 1.0, what="two more compares")
    assert world.controller.get(APP)["status"]["operationState"]["startedAt"] == failed["startedAt"]
    r = httpx.post(f"{world.argocd_url}/api/v1/applications/{APP}/sync", json={}, timeout=10)
    assert r.status_code == 200
    assert r.json()["operation"]["retry"]["limit"] == 2
    manual = wait_for(
        lambda: (
            (s := world.controller.get(APP)["status"]["operationState"])["phase"] == "Failed"
            and s["operation"]["initiatedBy"].get("username") == "admin"
            and s
        ),
        what="the person's sync failed",
    )
    assert manual["message"].endswith("(retried 2 times).")


def test_a_retry_with_refresh_takes_the_latest_revision(world: SimWorld) -> None:
    """appcontroller.go:1626-1632: with `retry.refresh` the retry empties the operation's revision and syncs the
    branch's latest commit, saying "Retrying operation with latest revisions"; without it the retry keeps the
    failed commit (the fast-retry test above)."""
    wait_for(lambda: world.controller.get(APP)["status"].get("health", {}).get("status") == "Healthy")
    manifest = yaml.safe_load(world.work.read(MANIFEST))
    manifest["spec"]["syncPolicy"]["retry"] = {"limit": 3, "refresh": True, "backoff": {"duration": "20s"}}
    world.work.commit("retry with refresh", {MANIFEST: yaml.safe_dump(manifest, sort_keys=False)})
    world.work.push()
    wait_for(lambda: world.controller.apps[APP].spec["syncPolicy"]["retry"].get("refresh") is True, what="the spec")
    bad = world.work.commit("bad spec", {VALUES: world.work.set_value(VALUES, "replicaCount", -1)})
    world.work.push()
    wait_for(lambda: ". Retrying attempt #" in world.controller.get(APP)["status"]["operationState"]["message"])
    fix = world.work.commit("fix", {VALUES: world.work.set_value(VALUES, "replicaCount", 2)})
    world.work.push()
    state = wait_for(
        lambda: (s := world.controller.get(APP)["status"]["operationState"])["phase"] == "Succeeded" and s,
        what="the refreshed retry succeeded",
    )
    assert state["operation"]["sync"]["revision"] == "" and state["syncResult"]["revision"] == fix != bad
    assert state["retryCount"] >= 1


def test_the_list_cannot_select_sync_revisions(world: SimWorld) -> None:
    """forwarder_overwrite.go:29-87: `status.sync.revisions` is not selectable; unknown fields are dropped."""
    wait_for(lambda: len(world.controller.snapshot()) == 9)
    items = httpx.get(
        f"{world.argocd_url}/api/v1/applications",
        params={"fields": "items.metadata.name,items.status.sync.revisions,items.status.conditions"},
        timeout=10,
    ).json()["items"]
    assert items and all(set(i) == {"metadata"} and set(i["metadata"]) == {"name"} for i in items)


def test_the_stream_sends_an_app_only_when_its_selected_fields_changed(world: SimWorld) -> None:
    """forwarder_overwrite.go:314-320: with `fields`, an event equal to the last one sent for that app is dropped.
    A commit to plate-web moves every app's sync.revision; selecting sync.status, only plate-web is sent."""
    wait_for(lambda: all(a["status"].get("sync", {}).get("status") == "Synced" for a in world.controller.snapshot()))
    fields = "result.application.metadata.name,result.application.status.sync.status"
    frames: list[dict[str, Any]] = []
    done = threading.Event()

    def read() -> None:
        url = f"{world.argocd_url}/api/v1/stream/applications"
        with httpx.stream("GET", url, params={"fields": fields}, timeout=30) as r:
            for line in r.iter_lines():
                if line:
                    frames.append(json.loads(line)["result"]["application"])
                if done.is_set():
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_for(lambda: len(frames) >= 9, what="the replay of every app")
    values = "helm/applications/plate-web/values-stg.yaml"
    sha = world.work.commit("web: bump", {values: world.work.set_value(values, "image.tag", "1.26.0")})
    world.work.push()
    wait_for(lambda: all(a["status"]["sync"].get("revision") == sha for a in world.controller.snapshot()))
    wait_for(lambda: [f["status"]["sync"]["status"] for f in frames[9:]] == ["OutOfSync", "Synced"], timeout=120)
    done.set()
    assert [f["metadata"]["name"] for f in frames[9:]] == ["plate-web-stg"] * 2
