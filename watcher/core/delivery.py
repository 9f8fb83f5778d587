"""Slack delivery, decided (pure): from one read of the delivery state, what to post, edit, open and close.

The notifier (notify/notifier.py) reads the state once (store/delivery.py), asks `plan_delivery`, then performs
the plan: posts, edits, the thread rows, and last the record that the notice was sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from watcher.core.notices import Notice, Routing, destination


@dataclass(frozen=True, slots=True)
class SlackThread:
    """An incident's thread: where its parent message is, and what to redraw it from when resolved."""

    id: int
    app: str
    revision: str | None
    incident_id: int | None
    channel: str
    ts: str
    parent: dict[str, Any]
    started_at: datetime
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """What the store knows about one notice, read at once."""

    sent: bool  # a notice with the same dedup key was recorded as sent
    open_threads: tuple[SlackThread, ...] = ()  # the app's open threads (read for a recovery or removal)
    thread: SlackThread | None = None  # the incident's open thread (read for any other notice)


@dataclass(frozen=True, slots=True)
class Closing:
    """A recovery in one of the app's open threads: a reply and the parent edited (a bot), or one message per
    channel (a webhook: no replies, no edits), or nothing more in a channel already told; the thread closes."""

    thread: SlackThread
    reply: bool
    post: bool


@dataclass(frozen=True, slots=True)
class Plan:
    verdict: str  # "send" | "deduplicated" | "filtered": the label counted
    channel: str = ""  # where the notice goes (and is recorded as sent)
    reply_to: SlackThread | None = None  # the incident's open thread: post into it
    attach: bool = False  # the thread has no incident yet: attach this one
    opens_thread: bool = False  # a new message that opens the incident's thread: keep it
    closes: tuple[Closing, ...] = ()


def plan_delivery(n: Notice, state: DeliveryState, routing: Routing, threads: bool) -> Plan:
    """`threads`: the transport can reply and edit (a bot token). A recovery goes wherever its alerts went."""
    if state.sent:
        return Plan("deduplicated")
    channel = destination(n, [t.channel for t in state.open_threads], routing)
    if channel is None:
        return Plan("filtered")
    if n.resolves and state.open_threads:
        closes, told = [], set()
        for t in state.open_threads:
            reply = threads and bool(t.ts)
            closes.append(Closing(t, reply, not reply and t.channel not in told))
            told.add(t.channel)
        return Plan("send", channel, closes=tuple(closes))
    thread = None if n.resolves else state.thread
    if thread is not None:
        attach = n.incident_id is not None and thread.incident_id is None
        return Plan("send", channel, reply_to=thread, attach=attach)
    return Plan("send", channel, opens_thread=not n.resolves)
