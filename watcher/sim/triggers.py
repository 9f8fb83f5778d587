"""When Argo CD's own notification triggers would fire, given the app states served over time (pure).

The conditions are those of argo-cd's catalog (reference/argocd/triggers/*.yaml), written here in Python:
- on-health-degraded: `app.status.health.status == 'Degraded'`
- on-sync-failed: `app.status.operationState != nil and app.status.operationState.phase in ['Error', 'Failed']`
both with `oncePer: app.status.operationState?.syncResult?.revision`: notifications-engine sends once for each value
of that expression while the condition holds (a second Degraded spell on the same revision sends nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Status = dict[str, Any]  # an Application's `status`


@dataclass(frozen=True)
class Trigger:
    name: str
    when: Callable[[Status], bool]
    once_per: Callable[[Status], str | None]


def _degraded(status: Status) -> bool:
    return (status.get("health") or {}).get("status") == "Degraded"


def _sync_failed(status: Status) -> bool:
    state = status.get("operationState")
    return state is not None and state.get("phase") in ("Error", "Failed")


def _sync_result_revision(status: Status) -> str | None:
    state = status.get("operationState") or {}
    revision = (state.get("syncResult") or {}).get("revision")
    return None if revision is None else str(revision)


TRIGGERS = (
    Trigger("on-health-degraded", _degraded, _sync_result_revision),
    Trigger("on-sync-failed", _sync_failed, _sync_result_revision),
)


def fire_times(
    timeline: Iterable[tuple[float, Status]], triggers: Iterable[Trigger] = TRIGGERS
) -> dict[str, list[float]]:
    """Each trigger's send times over `timeline` ((time, app status) in time order)."""
    chosen = list(triggers)
    sent: dict[str, set[str | None]] = {t.name: set() for t in chosen}
    fired: dict[str, list[float]] = {t.name: [] for t in chosen}
    for at, status in timeline:
        for trigger in chosen:
            if not trigger.when(status):
                continue
            key = trigger.once_per(status)
            if key not in sent[trigger.name]:
                sent[trigger.name].add(key)
                fired[trigger.name].append(at)
    return fired


def first_fire(timeline: Iterable[tuple[float, Status]], since: float = float("-inf")) -> dict[str, float | None]:
    """When each of Argo CD's triggers first fires at or after `since` (None: it never does in this timeline)."""
    return {name: next((t for t in times if t >= since), None) for name, times in fire_times(timeline).items()}
