"""The composition root: builds the adapters from settings and runs the jobs, the stream and HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from watcher.adapters.argocd import ArgoCDClient
from watcher.adapters.file_lock import FileLeaderLock, store_lock_path
from watcher.adapters.forge import pull_requests_for
from watcher.adapters.gitrepo import GitRepo
from watcher.adapters.helm_render import render_app
from watcher.core.lease import ALONE, LeaseTiming, Role
from watcher.core.outcome import Handled
from watcher.domain import Clock, utcnow
from watcher.logs import get_logger
from watcher.metrics.registry import Metrics
from watcher.notify.notifier import SlackNotifier
from watcher.observe.cycle import PollSummary, Watcher
from watcher.observe.fleet_map import FleetMap
from watcher.observe.fleet_state import FleetState
from watcher.observe.memory import keep_large_buffers_apart
from watcher.ports import LeaderLock, Listener
from watcher.revert.reverter import Reverter
from watcher.run.admin_token import ensure_token, token_path
from watcher.run.leadership import AloneLock, Leadership
from watcher.run.pages import page_links
from watcher.run.preflight_parts import preflight_for
from watcher.run.slack_transport import transport_for
from watcher.run.views import readiness_limits
from watcher.run.web import BackgroundServer, build_app
from watcher.settings import Settings, without_credentials
from watcher.store import Store

TICK_SECONDS = 1.0


def end_child_processes() -> int:
    """SIGTERM then SIGKILL every descendant (git fetches and pushes, and what git runs in turn: ssh,
    git-remote-https, a lazy fetch of a partial clone) still running: a job abandoned at shutdown must not
    outlive the process and keep writing, nor leave an orphan. Linux /proc; elsewhere nothing is done."""
    parent_of: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent_of[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    children: list[int] = []
    mine = {os.getpid()}
    while True:  # the tree, a generation at a time (parents first, so none is re-parented before it is seen)
        generation = [pid for pid, parent in parent_of.items() if parent in mine and pid not in mine]
        if not generation:
            break
        children += generation
        mine |= set(generation)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if sig is signal.SIGTERM:
            time.sleep(0.2)
    return len(children)


def leadership_for(settings: Settings, on_change: Callable[[Role], None]) -> Leadership:
    """PostgreSQL: an advisory lock, held or awaited; SQLite: a lock file beside the store, so `run --once` or a
    second daemon on the same file only looks while this one acts (the kernel frees it when its holder dies, so
    whoever takes it may act at once); SQLite in memory: alone."""
    lead = settings.leadership
    path = store_lock_path(settings.store.url)
    lock: LeaderLock = AloneLock() if path is None else FileLeaderLock(path)
    timing = ALONE
    if settings.store.url.startswith("postgresql"):
        from watcher.adapters.pg_lock import AdvisoryLock  # psycopg: only with the postgres extra

        lock = AdvisoryLock(settings.store.url, lead.check_interval_seconds, lead.lease_seconds)
        timing = LeaseTiming(lease=lead.lease_seconds, takeover=lead.lease_seconds)
    return Leadership(lock, timing, lead.check_interval_seconds, on_change)


def git_interval(settings: Settings) -> float:
    """How often git is fetched: the pre-flight's interval when it is on and shorter (a verdict waits for a fetch)."""
    git, pre = settings.git.poll_interval_seconds, settings.preflight
    return min(git, pre.poll_interval_seconds) if pre.enabled else git


HOUSEKEEPING_SECONDS = 3600.0
ONCE_SLACK_SECONDS = 10.0  # `run --once` waits this long for its Slack notices to go out


@dataclass(frozen=True, slots=True)
class OnceSummary:
    """What `run --once` did: one line per step, one per incident the reverter handled."""

    git: PollSummary
    apps: PollSummary
    revert_mode: str
    handled: tuple[Handled, ...]
    role: Role = Role.LEADER

    @property
    def failed(self) -> bool:
        return self.git.failed or self.apps.failed

    def lines(self) -> list[str]:
        n = len(self.handled)
        reverter = f"reverter pass: {n} incident{'' if n == 1 else 's'} handled (mode {self.revert_mode})"
        if self.role is not Role.LEADER:
            reverter = "reverter pass: not run: another replica is the leader (observed only, nothing recorded)"
        return [self.git.sentence(), self.apps.sentence(), reverter, *(f"  {h.sentence()}" for h in self.handled)]


class Daemon:
    """Builds the adapters, the fleet state and the wings, and wires who hears what: every recorded event goes to
    `ahead` (a test that changes the world first), the reverter, Slack, then `listeners` (the demo, the bench, a
    test); every revert report to `ahead`, Slack, then `listeners`. `clock`: the detector's and the reverter's
    (the real-timings demo runs them on Argo CD's clock)."""

    def __init__(
        self,
        settings: Settings,
        *,
        argocd_retry_max_wait: float = 2.0,
        listeners: Sequence[Listener] = (),
        ahead: Sequence[Listener] = (),
        clock: Clock = utcnow,
    ):
        self.settings = settings
        self.log = get_logger()
        keep_large_buffers_apart()
        self.store = Store(settings.store.url)
        self.leadership = leadership_for(settings, self._role_changed)
        fence = self.leadership
        self.argocd = ArgoCDClient(settings.argocd, retry_max_wait=argocd_retry_max_wait)
        self.repo = GitRepo(settings.git, settings.revert, fence)
        self.fleet = FleetState(self.store.detection, FleetMap(self.repo, settings.git.url))
        self.metrics = Metrics(self.fleet.view())
        self.metrics.leader.set_function(lambda: float(fence.leading()))
        transport = transport_for(settings)
        self.slack: SlackNotifier | None = None
        if transport is not None:
            self.slack = SlackNotifier(
                settings, self.store, self.metrics, transport, environment=self.fleet.environment, fence=fence
            )
        slack = [self.slack] if self.slack is not None else []
        pulls = pull_requests_for(settings.forge, settings.git.url) if settings.revert.mode == "pull-request" else None
        self.reverter = Reverter(
            settings,
            self.fleet,
            self.argocd,
            self.repo,
            self.store,
            self.metrics,
            pulls,
            clock,
            fence,
            render_app,
            [*ahead, *slack, *listeners],
        )
        # The pre-flight hears Argo CD's own verdicts as the watcher records them (its score), after Slack.
        self.preflight = preflight_for(
            settings, self.fleet, self.repo, self.argocd, self.store, self.reverter, self.metrics, clock
        )
        self.preflight.leading = fence.leading
        if self.slack is not None:
            self.preflight.listeners.append(self.slack.submit)
        self.watcher = Watcher(
            settings, self.argocd, self.repo, self.store, clock, state=self.fleet, metrics=self.metrics, fence=fence,
            listeners=[*ahead, self.reverter, *slack, self.preflight, *listeners],
        )  # fmt: skip
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        token, self._token_generated = ensure_token(settings)
        api = build_app(
            self.store,
            self.fleet,
            self.metrics.exposition,
            readiness_limits(settings),
            self.reverter,
            token,
            settings.http.stuck_poll_seconds,
            auth_waived=settings.http.admin_auth == "none",
            role=lambda: self.leadership.role().value,
            links=page_links(settings),
            patches=self.repo.patch,
        )
        self.http = BackgroundServer(api, settings.http.host, settings.http.port)
        self._stop_stream = threading.Event()
        self._stream_thread: threading.Thread | None = None

    def _poll_git(self) -> PollSummary:
        """Fetch, then judge what the fetch brought before Argo CD deploys it (the pre-flight)."""
        summary = self.watcher.poll_git()
        if not summary.failed:
            try:
                self.preflight.check()
            except Exception as exc:  # noqa: BLE001 - the pre-flight must not take the git poll down; it is logged
                self.log.exception("preflight_failed", error=str(exc))
        return summary

    def _role_changed(self, role: Role) -> None:
        """Taking over: Slack's unsent news first, then the reverter and the watcher start from the store (in that
        order, so news the new leader records itself is queued after its predecessor's). Else: stand by."""
        if role is Role.LEADER:
            if self.slack is not None:
                self.slack.replay(datetime.now(UTC))
            self.reverter.take_over()
            self.watcher.take_over()
        else:
            self.watcher.stand_by()
            self.reverter.stand_by()

    def start(self) -> None:
        self.http.start()
        self.leadership.check()  # alone (SQLite): the leader before the first poll; else the lock's first answer
        self.leadership.start()
        now = datetime.now(UTC)
        jobs = [
            (self._poll_git, git_interval(self.settings), "git_poll"),
            (self.watcher.poll_apps, self.settings.argocd.list_interval_seconds, "apps_poll"),
            (self.watcher.tick, TICK_SECONDS, "detection_tick"),
            (self.watcher.watch_rollouts, self.settings.detection.rollout_interval_seconds, "rollout_watch"),
            (self.watcher.housekeeping, HOUSEKEEPING_SECONDS, "housekeeping"),
        ]
        for func, seconds, name in jobs:
            first = now if name != "housekeeping" else None
            self.scheduler.add_job(func, "interval", seconds=seconds, id=name, name=name, next_run_time=first)
        if self.slack is not None:
            self.slack.start()
        self.scheduler.start()
        self.reverter.start()
        if self.settings.argocd.stream:
            self._stream_thread = threading.Thread(target=self._follow_stream, name="argocd-stream", daemon=True)
            self._stream_thread.start()
        self.log.info(
            "watcher_started",
            http_port=self.http.port,
            argocd=without_credentials(self.settings.argocd.url),
            repo=without_credentials(self.settings.git.url),
            branches=list(self.settings.git.watched_branches),
            revert_mode=self.settings.revert.mode,
            slack="off" if self.slack is None else ("bot" if self.slack.transport.threads else "webhook"),
            role=self.leadership.role().value,
        )
        self._log_unsafe_choices()

    def _log_unsafe_choices(self) -> None:
        """Every start says which protections are off, so a waiver cannot be forgotten in a values file."""
        if self.settings.git.ssh_host_key_checking == "off":
            self.log.warning(
                "ssh_host_key_checking_off",
                risk="anyone on the network path can pose as the git remote to a bot that pushes",
                fix="unset WATCHER_GIT__SSH_HOST_KEY_CHECKING (strict) and give your host's key in "
                "WATCHER_GIT__SSH_KNOWN_HOSTS_FILE",
            )
        if self.settings.git.ssh_host_key_checking == "accept-new" and not self.settings.git.ssh_known_hosts_file:
            self.log.warning(
                "ssh_host_keys_trusted_on_first_use",
                risk="the first host key the watcher sees for a new host is kept, whoever answered",
                fix="unset WATCHER_GIT__SSH_HOST_KEY_CHECKING (strict) and give your host's key in "
                "WATCHER_GIT__SSH_KNOWN_HOSTS_FILE (github.com, gitlab.com, bitbucket.org, ssh.dev.azure.com ship)",
            )
        if self.settings.argocd.insecure:
            self.log.warning(
                "argocd_tls_unverified",
                risk="anyone on the network path can pose as Argo CD and read the token",
                fix="unset WATCHER_ARGOCD__INSECURE and give WATCHER_ARGOCD__CA_BUNDLE",
            )
        if self.settings.http.admin_auth == "none":
            self.log.warning(
                "admin_api_unauthenticated",
                risk="anyone who reaches the HTTP port can resume auto-revert",
                fix="unset WATCHER_HTTP__ADMIN_AUTH and give WATCHER_HTTP__ADMIN_TOKEN_FILE",
            )
        else:
            source = "WATCHER_HTTP__ADMIN_TOKEN" if self.settings.http.admin_token else str(token_path(self.settings))
            self.log.info("admin_api_requires_token", source=source, generated_now=self._token_generated)

    def run_once(self) -> OnceSummary:
        """One git poll, one apps poll, one reverter pass, on this thread: no scheduler, stream or HTTP.

        The steps run in the daemon's order, so the reverter sees the incidents the polls just recorded.
        Slack, when configured, gets its notices before this returns: events are recorded once, so a
        notice not sent now would never be sent. Closes the daemon: it is not meant to start after this.
        """
        if self.slack is not None:
            self.slack.start()
        try:
            # A lock just taken is waited out as at any take-over: a leader that just died may still act.
            role = self.leadership.settle(self.settings.leadership.lease_seconds + 1.0)
            git = self.watcher.poll_git()
            apps = self.watcher.poll_apps()
            handled = tuple(self.reverter.run_once())
        finally:
            if self.slack is not None:
                self.slack.stop(ONCE_SLACK_SECONDS)
            self.leadership.stop()
            self.argocd.close()
            self.store.close()
        return OnceSummary(git, apps, self.settings.revert.mode, handled, role)

    def _follow_stream(self) -> None:
        self.argocd.stream(self.watcher.on_stream_event, self._stop_stream, on_disconnect=self.watcher.on_stream_lost)

    def stop(self, timeout: float = 8.0) -> None:
        """Stop within `timeout`: jobs in flight finish or are abandoned; every write is one transaction.
        Nothing is observed or written once this begins, and git processes still running are ended."""
        self.watcher.stopped.set()
        self._stop_stream.set()
        self.reverter.stop(timeout * 0.2)
        stopper = threading.Thread(target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True)
        stopper.start()
        stopper.join(timeout * 0.6)
        if stopper.is_alive():
            ended = end_child_processes()
            self.log.warning("job_abandoned_at_shutdown", child_processes_ended=ended)
        if self._stream_thread is not None:
            self._stream_thread.join(0.5)  # blocked on a read: it is a daemon thread and holds no state
        if self.slack is not None:
            self.slack.stop(timeout * 0.2)
        self.http.stop(timeout * 0.2)
        self.leadership.stop()  # last: nothing acts any more, and a standby may take over
        self.argocd.close()
        self.store.close()
        self.log.info("watcher_stopped")
