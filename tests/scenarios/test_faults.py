"""Faults between the watcher and Argo CD, through a fault-injecting proxy in front of the simulator: every
answer that is not the spec's ends in a named error within the deadline, never a hang or a dead thread."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import sqlalchemy as sa

from tests.support.fault_proxy import FaultPlan, FaultProxy
from tests.support.listening import OnEvent
from tests.support.waiting import wait_for
from watcher.adapters.argocd import ArgoCDBadResponse, ArgoCDClient, ArgoCDError, ArgoCDUnavailable
from watcher.adapters.gitrepo import GitRepo, GitUnavailable
from watcher.domain import INCIDENT_KINDS, Event, EventKind
from watcher.observe.commit_lookup import CommitLookup
from watcher.run.daemon import Daemon
from watcher.settings import ArgoCDSettings, GitSettings
from watcher.sim.world import SimWorld

TIMEOUT = 1.0


@pytest.fixture
def proxy(world: SimWorld) -> Iterator[FaultProxy]:
    p = FaultProxy(world.argocd_url).start()
    try:
        yield p
    finally:
        p.stop()


def client(proxy: FaultProxy) -> ArgoCDClient:
    return ArgoCDClient(ArgoCDSettings(url=proxy.url, timeout_seconds=TIMEOUT), retry_max_wait=0.05)


@pytest.mark.parametrize(
    ("plan", "error"),
    [
        (FaultPlan(status=503), ArgoCDUnavailable),
        (FaultPlan(status=500), ArgoCDUnavailable),
        (FaultPlan(html=True), ArgoCDBadResponse),
        (FaultPlan(truncated=True), ArgoCDBadResponse),
        (FaultPlan(trickle_seconds=0.05), ArgoCDUnavailable),  # each byte inside the read timeout
        (FaultPlan(hang=True), ArgoCDUnavailable),
    ],
    ids=["503", "500", "html", "truncated-json", "trickle", "hang"],
)
@pytest.mark.parametrize("call", ["list", "get"])  # a GET of one app goes over http.client, the list over httpx
def test_a_bad_answer_is_a_named_error_within_the_deadline(
    proxy: FaultProxy, plan: FaultPlan, error: type[ArgoCDError], call: str
) -> None:
    c = client(proxy)
    ask = c.list_apps if call == "list" else lambda: c.get_app("plate-web-stg")
    assert ask()  # transparent while no fault is set
    proxy.plan = plan
    started = time.monotonic()
    with pytest.raises(error):
        ask()
    # Three attempts at most, each bounded by the deadline: never the minutes a trickle or a hang would take.
    assert time.monotonic() - started < 3 * TIMEOUT + 2
    proxy.plan = FaultPlan()
    assert ask()  # observing again once the fault ends


def test_malformed_stream_frames_reconnect_and_are_counted(world: SimWorld, proxy: FaultProxy) -> None:
    proxy.plan = FaultPlan(malformed_frames=1)
    c = ArgoCDClient(ArgoCDSettings(url=proxy.url, timeout_seconds=2), stream_max_backoff=0.2)
    seen: list[tuple[str, Any]] = []
    lost: list[str] = []
    stop = threading.Event()
    thread = threading.Thread(target=c.stream, args=(lambda k, a: seen.append((k, a)), stop, lost.append))
    thread.start()
    try:
        wait_for(lambda: lost, what="the bad frame to drop the stream")
        assert "not a JSON object" in lost[0]
        path = "helm/applications/plate-web/values-stg.yaml"  # an event after the reconnect still arrives
        world.work.commit("web: bump", {path: world.work.set_value(path, "image.tag", "1.26.0")}, "Dev One")
        world.work.push()
        wait_for(lambda: seen, what="events on the reconnected stream")
        assert thread.is_alive()
    finally:
        stop.set()
        c.close()
        thread.join(5)


@pytest.fixture
def silent_remote() -> Iterator[str]:
    """A git:// remote that accepts connections and never answers (a stuck load balancer, a dead NFS mount)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"git://127.0.0.1:{server.getsockname()[1]}/gitops.git"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def test_a_git_remote_that_never_answers_is_killed_at_the_deadline(silent_remote: str, tmp_path: Path) -> None:
    repo = GitRepo(GitSettings(url=silent_remote, clone_dir=tmp_path / "clone", timeout_seconds=1.5))
    started = time.monotonic()
    with pytest.raises(GitUnavailable):
        repo.sync()
    assert time.monotonic() - started < 10  # killed at the deadline, not hung until someone notices
    assert _git_processes_in(tmp_path / "clone") == []  # nothing left behind


def _git_processes_in(directory: Path) -> list[str]:
    """Live git processes working in `directory` (other tests' git helpers are children of pytest too)."""
    found = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "git" in p.name() and p.status() != psutil.STATUS_ZOMBIE and p.cwd().startswith(str(directory)):
                found.append(" ".join(p.cmdline()))
        except psutil.Error:
            continue  # ended meanwhile
    return found


# -- the whole daemon under faults: honest /readyz and /healthz, no false incident, no revert, recovery ---------
class Faulted:
    """A daemon whose Argo CD is behind the fault proxy (push mode: a wrong decision would push)."""

    def __init__(self, world: SimWorld, proxy: FaultProxy, root: Path, **http: Any):
        base = world.watcher_settings(root, poll_seconds=0.3, grace_seconds=0.5)
        self.settings = base.model_copy(
            update={
                "argocd": base.argocd.model_copy(update={"url": proxy.url, "stream": False, "timeout_seconds": 1.0}),
                "revert": base.revert.model_copy(update={"mode": "push"}),
                "http": base.http.model_copy(update={"readiness_max_age_seconds": 2.0} | http),
            }
        )
        self.events: list[Event] = []
        self.daemon = Daemon(self.settings, argocd_retry_max_wait=0.05, listeners=[OnEvent(self.events.append)])
        self.daemon.start()
        self.url = f"http://127.0.0.1:{self.daemon.http.port}"
        wait_for(lambda: self.kinds().count(EventKind.DEPLOYED) >= 9, what="initial deploys")

    def kinds(self) -> list[EventKind]:
        return [e.kind for e in list(self.events)]

    def ready(self) -> tuple[int, dict[str, Any]]:
        r = httpx.get(f"{self.url}/readyz", timeout=5)
        return r.status_code, r.json()

    def sample(self, name: str) -> float:
        return self.daemon.watcher.metrics.registry.get_sample_value(name) or 0.0


@pytest.fixture
def faulted(world: SimWorld, proxy: FaultProxy, tmp_path: Path) -> Iterator[Callable[..., Faulted]]:
    made: list[Faulted] = []

    def make(**http: Any) -> Faulted:
        made.append(Faulted(world, proxy, tmp_path / f"w{len(made)}", **http))
        return made[-1]

    yield make
    for f in made:
        f.daemon.stop()


def test_an_empty_list_is_not_a_mass_deletion(proxy: FaultProxy, faulted: Callable[..., Faulted]) -> None:
    f = faulted()
    proxy.plan = FaultPlan(empty_list=True)  # RBAC or a project filter hides every app
    wait_for(lambda: f.sample("sync_watcher_suspect_lists_total") >= 2, what="suspect lists counted")
    assert EventKind.APP_REMOVED not in f.kinds() and EventKind.RECOVERED not in f.kinds()
    assert len(f.daemon.fleet.status().trackers) == 9  # nothing forgotten
    proxy.plan = FaultPlan()
    wait_for(lambda: f.ready()[0] == 200, what="ready again")
    assert EventKind.APP_REMOVED not in f.kinds()


def test_an_app_of_another_project_missing_from_a_list_is_asked_about_in_its_own_project(
    world: SimWorld, proxy: FaultProxy, faulted: Callable[..., Faulted]
) -> None:
    """Each app missing from a list is confirmed by a GET naming its project; naming another one answers 404 for an
    app that exists (argo-cd server/application/application.go:237-245), which would read as deleted (main: every
    app was asked about in project "default", the fleet map keeps no project)."""
    path = "environments/argocd/apps/plate-web-stg.yaml"
    moved = world.work.set_value(path, "spec.project", "team-a")
    world.work.commit("plate-web-stg joins project team-a", {path: moved})
    world.work.push()
    f = faulted()
    wait_for(
        lambda: (last := f.daemon.fleet.app_context("plate-web-stg").last) is not None and last.project == "team-a",
        what="plate-web-stg listed in project team-a",
        timeout=40,
    )
    proxy.plan = FaultPlan(empty_list=True)
    wait_for(lambda: f.sample("sync_watcher_suspect_lists_total") >= 2, what="suspect lists counted")
    assert EventKind.APP_REMOVED not in f.kinds()
    assert "plate-web-stg" in f.daemon.fleet.status().trackers


def test_one_malformed_item_is_one_unreadable_app(
    world: SimWorld, proxy: FaultProxy, faulted: Callable[..., Faulted]
) -> None:
    f = faulted()
    proxy.plan = FaultPlan(malformed_item="plate-web-stg")
    wait_for(lambda: f.sample("sync_watcher_unreadable_apps_total") >= 1, what="the bad item counted")
    # The others are still observed and decided: a bad commit to another app is detected.
    path = "helm/applications/plate-api/values-stg.yaml"
    world.work.commit("api: scale to -1", {path: world.work.set_value(path, "replicaCount", -1)}, "Dev Two")
    world.work.push()
    wait_for(lambda: EventKind.SYNC_FAILED in f.kinds(), what="the other app's failure detected")
    assert f.ready()[0] == 200  # readiness is about the API as a whole, not one object
    assert EventKind.APP_REMOVED not in f.kinds()


def test_an_item_nested_past_the_decoders_depth_is_one_unreadable_app(
    world: SimWorld, proxy: FaultProxy, faulted: Callable[..., Faulted]
) -> None:
    """1,200 nested arrays in one app's spec (RecursionError in the C decoder): that app is unreadable, the
    others are observed and decided (main: the whole poll failed, every poll, with argocd_up still 1)."""
    f = faulted()
    proxy.plan = FaultPlan(deep_item="plate-web-stg")
    wait_for(lambda: f.sample("sync_watcher_unreadable_apps_total") >= 1, what="the deep item counted")
    path = "helm/applications/plate-api/values-stg.yaml"
    world.work.commit("api: scale to -1", {path: world.work.set_value(path, "replicaCount", -1)}, "Dev Two")
    world.work.push()
    wait_for(lambda: EventKind.SYNC_FAILED in f.kinds(), what="the other app's failure detected")
    assert f.ready()[0] == 200 and EventKind.APP_REMOVED not in f.kinds()


@pytest.mark.parametrize("plan", [FaultPlan(status=503), FaultPlan(html=True), FaultPlan(trickle_seconds=0.05)])
def test_argocd_answering_garbage_is_loudly_not_ready_then_observing_again(
    proxy: FaultProxy, faulted: Callable[..., Faulted], plan: FaultPlan
) -> None:
    f = faulted()
    before = len(f.events)
    proxy.plan = plan
    status, body = wait_for(lambda: (r := f.ready())[0] == 503 and r, timeout=120, what="not ready")
    assert body["checks"]["argocd"]["ok"] is False
    wait_for(lambda: f.sample("sync_watcher_argocd_up") == 0, timeout=120, what="argocd_up 0")
    assert [k for k in f.kinds()[before:] if k in INCIDENT_KINDS] == []  # unknown is never a failure
    assert f.daemon.store.audit.reverts() == []
    proxy.plan = FaultPlan()
    wait_for(lambda: f.ready()[0] == 200, timeout=120, what="ready again when the fault ends")


def test_a_full_store_is_loud_and_loses_nothing(world: SimWorld, faulted: Callable[..., Faulted]) -> None:
    f = faulted()
    engine = f.daemon.store.engine
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

    def full(dbapi_conn: Any, _record: Any) -> None:  # SQLite's own SQLITE_FULL, as on a full disk
        dbapi_conn.execute(f"PRAGMA max_page_count={pages}")

    sa.event.listen(engine, "connect", full)
    engine.dispose()
    path = "helm/applications/plate-api/values-stg.yaml"
    bad = world.work.commit("api: scale to -1", {path: world.work.set_value(path, "replicaCount", -1)}, "Dev Two")
    world.work.push()
    # Another check may fail for a moment on a loaded machine: wait for the store's own.
    status, body = wait_for(
        lambda: (r := f.ready())[0] == 503 and "store" in r[1]["checks"] and r,
        timeout=120,
        what="not ready: store full",
    )
    assert "full" in body["checks"]["store"]["error"]
    assert f.sample("sync_watcher_store_errors_total") >= 1
    sa.event.remove(engine, "connect", full)
    engine.dispose()
    wait_for(lambda: f.ready()[0] == 200, timeout=120, what="ready once the store takes writes")
    # What was observed while the store was full is observed again and kept: the incident is there.
    incidents = wait_for(lambda: f.daemon.store.detection.incidents(app="plate-api-stg"), what="the incident")
    assert incidents[0].revision == bad and incidents[0].kind is EventKind.SYNC_FAILED


def test_a_hung_git_remote_leaves_http_answering_and_liveness_honest(
    world: SimWorld, silent_remote: str, tmp_path: Path
) -> None:
    base = world.watcher_settings(tmp_path, poll_seconds=0.3, grace_seconds=0.5)
    settings = base.model_copy(
        update={
            "git": base.git.model_copy(update={"url": silent_remote, "timeout_seconds": 60.0}),
            "http": base.http.model_copy(update={"stuck_poll_seconds": 1.0}),
        }
    )
    daemon = Daemon(settings, argocd_retry_max_wait=0.05)
    daemon.start()
    url = f"http://127.0.0.1:{daemon.http.port}"
    try:
        wait_for(lambda: daemon.fleet.health().in_flight.get("git", 0) > 1.0, what="the fetch hanging")
        # The views read state the fetch does not hold: they answer at once while it hangs.
        for path in ("/metrics", "/api/apps", "/readyz"):
            started = time.monotonic()
            httpx.get(url + path, timeout=5)
            assert time.monotonic() - started < 2, path
        health = httpx.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 503 and "git" in health.json()["stuck_seconds"]  # a restart is the way out
        ready = httpx.get(f"{url}/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json()["checks"]["git"]["ok"] is False
    finally:
        started = time.monotonic()
        daemon.stop(timeout=4.0)
        assert time.monotonic() - started < 6  # the hung fetch does not hold the shutdown


def test_a_commit_the_clone_lacks_is_unknown_at_once_not_fetched_from_a_silent_remote(
    world: SimWorld, silent_remote: str, tmp_path: Path
) -> None:
    """Detection names the commit of each event from what the last fetch brought. A commit the partial clone
    lacks (another branch, another repo) is unknown at once, and asked for in the next git poll's one bounded
    fetch: not fetched lazily inside detection (main: git's lazy fetch from a silent remote held detection)."""
    other = world.work.git("rev-parse", "HEAD")
    world.work.git("checkout", "-q", "-b", "elsewhere")
    world.work.commit("not on a watched branch", {"NOTES.md": "x\n"})
    elsewhere = world.work.git("rev-parse", "HEAD")
    world.work.git("push", "-q", "origin", "elsewhere")
    world.work.git("checkout", "-q", "main")
    repo = GitRepo(GitSettings(url=world.repo_url, clone_dir=tmp_path / "clone", timeout_seconds=1.5))
    repo.sync()
    assert repo.commit(other) is not None
    git = ["git", "--git-dir", str(tmp_path / "clone")]
    subprocess.run([*git, "config", "remote.origin.url", silent_remote], check=True)  # the remote goes silent
    answer: list[object] = []
    thread = threading.Thread(target=lambda: answer.append(repo.commit(elsewhere)), daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(5)
    assert answer == [None] and time.monotonic() - started < 2  # unknown, at once
    lookup = CommitLookup(repo)
    assert lookup(elsewhere) is None and lookup(other) is not None
    started = time.monotonic()
    lookup.after_fetch()  # the git poll's fetch of what detection could not name: killed at the deadline
    assert time.monotonic() - started < 10
    assert _git_processes_in(tmp_path / "clone") == []


def test_file_content_the_partial_clone_lacks_is_unknown_at_the_deadline_not_waited_for(
    world: SimWorld, silent_remote: str, tmp_path: Path
) -> None:
    """A culprit's diff (what the revert's reads and the incident page show) and whether a later commit undid it
    read file content, which a blob:none clone fetches on its own from the remote, with no deadline of git's.
    Against a silent remote each read is killed at the git timeout and says "unknown" (GitUnavailable, so no
    revert acts on it), not "no change" and not a wait that holds the clone's lock, and the git poll, for good."""
    bump = world.work.commit("bump", {"apps/demo/values.yaml": "replicaCount: 7\n"})
    world.work.push()
    repo = GitRepo(GitSettings(url=world.repo_url, clone_dir=tmp_path / "clone", timeout_seconds=1.5))
    repo.sync()
    git = ["git", "--git-dir", str(tmp_path / "clone")]
    subprocess.run([*git, "config", "remote.origin.url", silent_remote], check=True)  # the remote goes silent
    for read in (lambda: repo.patch(bump, ["apps/demo"]), lambda: repo.find_reverts([bump], paths=["apps/demo"])):
        started = time.monotonic()
        with pytest.raises(GitUnavailable, match="WATCHER_GIT__TIMEOUT_SECONDS"):
            read()
        assert time.monotonic() - started < 20  # killed at the deadline (1.5 s), not hung
    assert repo.local_heads()["main"] == bump  # the lock was let go
    assert _git_processes_in(tmp_path / "clone") == []


@pytest.fixture
def trickling_headers() -> Iterator[str]:
    """An HTTP server that answers a status line, then its headers one byte every 0.1 s, forever."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.1):
                try:
                    conn.sendall(b"X")
                except OSError:
                    return

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed at the end of the test
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()


@pytest.mark.parametrize("call", ["list", "get"])  # the list over httpx, a GET of one app over http.client
def test_response_headers_that_trickle_in_are_cut_at_the_deadline(trickling_headers: str, call: str) -> None:
    c = ArgoCDClient(ArgoCDSettings(url=trickling_headers, timeout_seconds=TIMEOUT), retry_attempts=1)
    outcome: list[BaseException | None] = []

    def ask() -> None:
        try:
            c.list_apps() if call == "list" else c.get_app("plate-api-stg")
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - the test reads what came out
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(6)
    assert outcome and isinstance(outcome[0], ArgoCDUnavailable), outcome  # main: still reading headers
    assert time.monotonic() - started < 3 * TIMEOUT and "no whole answer within" in str(outcome[0])


def test_a_large_list_over_a_slow_link_is_read_while_it_keeps_coming(proxy: FaultProxy) -> None:
    """600 kB at 200 kB/s takes 3 s, three times the deadline: read whole, since the bytes kept coming at more
    than the minimum rate (main: refused at 1 s, every poll, forever). A link under that rate is cut."""
    proxy.plan = FaultPlan(pad_list=600_000, rate=200_000)
    started = time.monotonic()
    assert len(client(proxy).list_apps()) == 9 and time.monotonic() - started > TIMEOUT
    proxy.plan = FaultPlan(pad_list=600_000, rate=20_000)
    started = time.monotonic()
    with pytest.raises(ArgoCDUnavailable, match="no whole answer within"):
        ArgoCDClient(ArgoCDSettings(url=proxy.url, timeout_seconds=TIMEOUT), retry_attempts=1).list_apps()
    assert time.monotonic() - started < 3 * TIMEOUT


def test_apps_deleted_at_once_leave_as_argocd_confirms_each(
    world: SimWorld, proxy: FaultProxy, faulted: Callable[..., Faulted]
) -> None:
    """Six of nine apps deleted at once: the list is suspect, so it removes nothing by itself, but each missing
    app is asked about (a bounded batch per poll) with its project named, so that Argo CD answers 404 and not
    its 403 for a missing app (main: "suspect list" every poll, the apps kept forever)."""
    f = faulted()
    proxy.plan = FaultPlan(forbid_missing=True)
    doomed = [f"plate-{svc}-{env}" for svc in ("api", "web", "llm") for env in ("stg", "prod")]
    for name in doomed:
        world.work.git("rm", "-q", f"environments/argocd/apps/{name}.yaml")
    world.work.git("-c", "user.name=Dev", "-c", "user.email=d@x", "commit", "-q", "-m", "retire six apps")
    world.work.push()
    wait_for(lambda: f.kinds().count(EventKind.APP_REMOVED) >= 6, timeout=120, what="the six apps removed")
    assert sorted(e.app for e in f.events if e.kind is EventKind.APP_REMOVED) == sorted(doomed)
    assert f.sample("sync_watcher_suspect_lists_total") >= 1
    assert sorted(f.daemon.fleet.status().trackers) == ["app-of-apps", "plate-cache-prod", "plate-cache-stg"]
