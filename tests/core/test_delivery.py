"""Slack delivery, planned (core/delivery.py): one read of the delivery state in, what to post and close out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from watcher.core.delivery import Closing, DeliveryState, Plan, SlackThread, plan_delivery
from watcher.core.notices import Notice, Severity, routing_from
from watcher.domain import EventKind, RevertStep

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
ROUTING = routing_from([], "#deploys", "warning")
FAILED = Notice(EventKind.SYNC_FAILED, "a-prod", Severity.CRITICAL, "Sync failed", "d", revision="r", incident_id=4)
PUSHED = Notice(RevertStep.REVERT_PUSHED, "a-prod", Severity.WARNING, "Reverted", "d", revision="r", incident_id=4)
RECOVERED = Notice(EventKind.RECOVERED, "a-prod", Severity.INFO, "Recovered", "d", resolves=True)
REMOVED = Notice(EventKind.APP_REMOVED, "a-prod", Severity.INFO, "x", "d", resolves=True, only_to_close=True)
QUIET = Notice(EventKind.SYNC_FAILING, "a-prod", Severity.INFO, "Sync failing", "d")


def thread(id: int, channel: str = "C0PROD", ts: str = "1.1", incident: int | None = 4) -> SlackThread:
    return SlackThread(id, "a-prod", "r", incident, channel, ts, {}, T0)


@pytest.mark.parametrize(
    ("notice", "state", "threads", "plan"),
    [
        (FAILED, DeliveryState(sent=True), True, Plan("deduplicated")),  # sent before a restart: not again
        (QUIET, DeliveryState(sent=False), True, Plan("filtered")),  # below the bar
        (REMOVED, DeliveryState(sent=False), True, Plan("filtered")),  # removed with nothing open: no news
        (RECOVERED, DeliveryState(sent=False), True, Plan("filtered")),  # nothing was open: the bar applies
        (FAILED, DeliveryState(sent=False), True, Plan("send", "#deploys", opens_thread=True)),  # a new incident
        (  # the revert goes into the incident's thread
            PUSHED,
            DeliveryState(sent=False, thread=thread(1)),
            True,
            Plan("send", "#deploys", reply_to=thread(1)),
        ),
        (  # a thread opened by a failing sync (no incident yet) adopts the incident
            PUSHED,
            DeliveryState(sent=False, thread=thread(1, incident=None)),
            True,
            Plan("send", "#deploys", reply_to=thread(1, incident=None), attach=True),
        ),
        (  # a bot: a reply and an edited parent in every open thread, each closed
            RECOVERED,
            DeliveryState(sent=False, open_threads=(thread(1), thread(2, "C0OTHER"))),
            True,
            Plan(
                "send", "C0PROD", closes=(Closing(thread(1), True, False), Closing(thread(2, "C0OTHER"), True, False))
            ),
        ),
        (  # a webhook: one message per channel the alerts went to, every thread closed
            RECOVERED,
            DeliveryState(sent=False, open_threads=(thread(1, ts=""), thread(2, ts=""), thread(3, "C0OTHER", ""))),
            False,
            Plan(
                "send",
                "C0PROD",
                closes=(
                    Closing(thread(1, ts=""), False, True),
                    Closing(thread(2, ts=""), False, False),
                    Closing(thread(3, "C0OTHER", ""), False, True),
                ),
            ),
        ),
    ],
)
def test_the_plan_for_each_delivery_state(notice: Notice, state: DeliveryState, threads: bool, plan: Plan) -> None:
    assert plan_delivery(notice, state, ROUTING, threads) == plan
