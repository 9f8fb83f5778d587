"""What a test hears from the wings: a ports.Listener that hands each event (or report) to a callable."""

from __future__ import annotations

from collections.abc import Callable

from watcher.domain import Event, RevertReport
from watcher.ports import Listener


class OnEvent(Listener):
    """Each recorded event to `heard` (e.g. a list's append); revert reports are not its business."""

    def __init__(self, heard: Callable[[Event], object]):
        self.heard = heard

    def on_event(self, e: Event) -> None:
        self.heard(e)


class OnReport(Listener):
    """Each revert report to `heard`, in the order the reverter made them."""

    def __init__(self, heard: Callable[[RevertReport], object]):
        self.heard = heard

    def on_report(self, r: RevertReport) -> None:
        self.heard(r)
