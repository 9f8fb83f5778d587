"""Slack, wired: notices queue up (bounded), one worker routes, de-duplicates, threads and delivers them.

Only the leader sends: the fence is asked right before each delivery. A new leader replays the events of the
last REPLAY_WINDOW whose notices were never recorded as sent (its predecessor died with them queued, or was
fenced off); the ones already sent are de-duplicated by the store, as after a restart."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from watcher.core.dora import environment_of
from watcher.core.lease import ALONE_FENCE
from watcher.core.notices import (
    EVENT_NOTICES,
    Notice,
    destination,
    from_event,
    from_report,
    notice_from_json,
    notice_to_json,
    routing_from,
)
from watcher.core.slack_message import Links, blocks_for, fallback_text, links_for
from watcher.domain import INCIDENT_KINDS, Event, NeedsHuman, RevertReport, utcnow
from watcher.logs import REDACTOR, get_logger
from watcher.metrics.registry import Metrics
from watcher.ports import Fence, Listener, SlackTransport
from watcher.settings import Settings
from watcher.store import SlackThread, Store

REPLAY_WINDOW = timedelta(minutes=15)  # older news is stale: a new leader does not send it late


class SlackNotifier(Listener):
    """Listens to the watcher and the reverter; never blocks them: a full queue drops (and counts) a notice."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        metrics: Metrics,
        transport: SlackTransport,
        clock: Callable[[], datetime] = utcnow,
        environment: Callable[[str], str] = environment_of,
        fence: Fence = ALONE_FENCE,
    ):
        s = settings.slack
        self.fence = fence
        self.store = store
        self.metrics = metrics
        self.transport = transport
        self.clock = clock
        self.environment = environment  # the watcher's, so Slack names the environment as the metrics do
        self.routing = routing_from([r.model_dump() for r in s.routes], s.channel, s.min_severity)
        self.links: Links = links_for(
            s.argocd_ui_url or settings.argocd.url,
            settings.git.url,
            settings.forge.web_url,
            settings.forge.kind,
            settings.http.external_url,
        )
        self.log = get_logger().bind(component="slack")
        self.queue: queue.Queue[Notice] = queue.Queue(maxsize=s.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._busy = 0

    # -- listeners (called on the watcher's and the reverter's threads: enqueue only) ----------------------
    def on_event(self, e: Event) -> None:
        notice = from_event(e, self.environment(e.app))
        if notice is not None:
            self.submit(notice)

    def on_report(self, r: RevertReport) -> None:
        notice = from_report(r, self.environment(r.app))
        if notice is not None:
            self.submit(notice)

    def submit(self, notice: Notice) -> None:
        try:
            with self._idle:
                self.queue.put_nowait(notice)
                self._busy += 1
        except queue.Full:
            self.metrics.slack_notices.labels("dropped").inc()
            self.log.error("slack_notice_dropped", app=notice.app, kind=notice.kind.value, queue=self.queue.maxsize)
        self.metrics.slack_queue.set(self.queue.qsize())

    def replay(self, now: datetime) -> int:
        """Queue the notices of recent events again (this replica just became the leader); how many events."""
        recent = self.store.detection.events_since(now - REPLAY_WINDOW, EVENT_NOTICES)  # not the deploys
        for e in recent:
            if e.kind in INCIDENT_KINDS:  # read back from the events table: the incident id is the store's to say
                found = self.store.detection.find_incident(e.app, e.kind, e.revision)
                e = replace(e, incident_id=found.id if found else None)
            self.on_event(e)
        return len(recent)

    # -- worker -------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="slack", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Deliver what is queued within `timeout`, then leave the rest (logged) and stop."""
        self.wait_idle(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(0.5)
        if self.queue.qsize():
            self.log.warning("slack_notices_left_at_shutdown", count=self.queue.qsize())

    def wait_idle(self, timeout: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                notice = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self.deliver(notice)
            except NeedsHuman as exc:  # the transport's errors (ports.SlackTransport)
                self.metrics.slack_notices.labels("failed").inc()
                self.log.error(
                    "slack_delivery_failed", app=notice.app, kind=notice.kind.value, error=REDACTOR.scrub(str(exc))
                )
            except Exception as exc:  # noqa: BLE001 - a bad notice must not stop the ones behind it; it is logged
                self.metrics.slack_notices.labels("failed").inc()
                self.log.exception("slack_notice_failed", app=notice.app, kind=notice.kind.value, error=str(exc))
            finally:
                self.metrics.slack_queue.set(self.queue.qsize())
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def deliver(self, n: Notice) -> None:
        if self.store.slack.notification_sent(n.dedup_key):
            self.metrics.slack_notices.labels("deduplicated").inc()
            return
        # A recovery goes wherever its alerts went, whatever its own severity: an alert is closed where it was raised.
        threads = self.store.slack.open_threads(n.app) if n.resolves else []
        channel = destination(n, [t.channel for t in threads], self.routing)
        if channel is None:
            self.metrics.slack_notices.labels("filtered").inc()
            return
        text, blocks = _scrub(fallback_text(n)), _scrub(blocks_for(n, self.links))
        if not self.fence.confirm():  # a deposed leader: the new one replays what was not recorded as sent
            self.metrics.slack_notices.labels("not_leader").inc()
            self.log.warning("slack_notice_withheld_not_leader", app=n.app, kind=n.kind.value)
            return
        if threads:
            ts = self._resolve_threads(n, threads, text, blocks)
        else:
            ts = self._post(n, channel, text, blocks)
        self.store.slack.record_notification(n.dedup_key, channel, ts, self.clock())
        self.metrics.slack_notices.labels("sent").inc()
        self.log.info("slack_notice_sent", app=n.app, kind=n.kind.value, channel=channel, severity=n.severity.name)

    def _post(self, n: Notice, channel: str, text: str, blocks: list[dict[str, Any]]) -> str | None:
        """Into the incident's open thread if it has one; else a new message that opens it."""
        thread = None if n.resolves else self.store.slack.thread(n.app, n.incident_id, n.revision)
        if thread is not None:
            reply_to = thread.ts if self.transport.threads else None
            _, ts = self.transport.post(thread.channel, text, blocks, thread_ts=reply_to)
            if n.incident_id is not None and thread.incident_id is None:
                self.store.slack.attach_thread(thread.id, n.incident_id)
            return ts
        channel_id, ts = self.transport.post(channel, text, blocks)
        if not n.resolves:  # webhooks have no ts: the row still tells where to say it is resolved
            parent = notice_to_json(n)
            self.store.slack.save_thread(channel_id, ts or "", n.app, n.revision, n.incident_id, parent, self.clock())
        return ts

    def _resolve_threads(
        self, n: Notice, threads: list[SlackThread], text: str, blocks: list[dict[str, Any]]
    ) -> str | None:
        ts: str | None = None
        told: set[str] = set()
        for t in threads:
            if self.transport.threads and t.ts:
                _, ts = self.transport.post(t.channel, text, blocks, thread_ts=t.ts)
                parent = notice_from_json(t.parent)
                resolved = f"{n.detail} (revision `{(n.revision or '')[:10]}`)"
                self.transport.update(
                    t.channel,
                    t.ts,
                    _scrub(fallback_text(parent)),
                    _scrub(blocks_for(parent, self.links, resolved)),
                )
            elif t.channel not in told:  # a webhook: one message per channel the alerts went to
                _, ts = self.transport.post(t.channel, text, blocks)
            told.add(t.channel)
            self.store.slack.resolve_thread(t.id, self.clock())
        return ts


def _scrub(value: Any) -> Any:
    """No configured secret leaves in a message, whatever text Argo CD or git put around it."""
    return REDACTOR.scrub(value)
