"""Argo CD's sync retry, as the simulated controller runs it: which policy an operation gets, how long each
retry waits, and what `status.operationState` shows between attempts.

Read from argo-cd 37ee0097 (3.6 pre-release); the line numbers below are of that commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from watcher.core.sync_permit import go_duration as parse_go_duration

# pkg/apis/application/v1alpha1/application_defaults.go:6-8: 5 s doubling, at most 3 min.
DEFAULT_DURATION, DEFAULT_FACTOR, DEFAULT_MAX = 5.0, 2.0, 180.0
# controller/appcontroller.go:2583: an auto-sync whose app has no `syncPolicy.retry` gets limit 5.
AUTO_SYNC_RETRY: dict[str, Any] = {"limit": 5}


def go_duration(text: str | int | None, default: float) -> float:
    """A backoff duration as Argo CD parses it (types.go:1559-1570): a bare number of seconds, else Go's
    time.ParseDuration ("5s", "3m"). Argo CD fails the retry on unreadable text ("(failed to retry: ...)",
    appcontroller.go:1680-1682); the simulator takes the default instead."""
    if text is None or text == "":
        return default
    if isinstance(text, int | float) or str(text).isdigit():
        return float(text)
    parsed = parse_go_duration(str(text))
    return parsed.total_seconds() if parsed is not None else default


def auto_sync_retry(spec: dict[str, Any]) -> dict[str, Any]:
    """The retry of an operation the controller starts itself: the app's own, else limit 5
    (appcontroller.go:2583-2587)."""
    retry = (spec.get("syncPolicy") or {}).get("retry")
    return dict(AUTO_SYNC_RETRY) if retry is None else dict(retry)


def manual_sync_retry(spec: dict[str, Any], requested: dict[str, Any] | None = None) -> dict[str, Any]:
    """The retry of a sync a person asks the API for: the request's `retryStrategy`, else the app's
    `syncPolicy.retry`, else none at all (limit 0: no implicit 5) (server/application/application.go:2120-2128,
    2171-2173)."""
    if requested is not None:
        return dict(requested)
    return dict((spec.get("syncPolicy") or {}).get("retry") or {})


def backoff(retry: dict[str, Any], count: int) -> float:
    """`NextRetryAt`'s wait for a retry count (types.go:1573-1601): duration * factor^count, capped unless the
    cap is 0 or less. A factor of 0 is taken as unset here (Argo CD keeps an explicit 0, :1589-1591)."""
    policy = retry.get("backoff") or {}
    base = go_duration(policy.get("duration"), DEFAULT_DURATION)
    factor = float(policy.get("factor") or DEFAULT_FACTOR)
    cap = go_duration(policy.get("maxDuration"), DEFAULT_MAX)
    wait = base * factor**count
    return float(min(wait, cap) if cap > 0 else wait)


def retries_left(retry: dict[str, Any], count: int) -> bool:
    """Whether a failed attempt after `count` retries is retried (appcontroller.go:1678; limit < 0: forever)."""
    limit = int(retry.get("limit", 0) or 0)
    return limit < 0 or count < limit


def retry_wait(retry: dict[str, Any], count: int, scale: float = 1.0) -> float | None:
    """Seconds from a failed attempt (after `count` retries) to the start of the next one; None when retries
    are spent. The controller increments the count first (appcontroller.go:1688) and the gate waits
    NextRetryAt(finishedAt, incremented count) (1608-1610): 10, 20, 40, 80, 160 s with the defaults."""
    if not retries_left(retry, count):
        return None
    return backoff(retry, count + 1) * scale


def kitchen(t: float) -> str:
    """Go's time.Kitchen ("3:04PM"), as the retry message writes the time."""
    return datetime.fromtimestamp(t, UTC).strftime("%-I:%M%p")


def attempt_failed(state: dict[str, Any], error: str, retry: dict[str, Any], now: float, scale: float) -> None:
    """A failed attempt with retries left (appcontroller.go:1684-1689): the phase stays Running, finishedAt
    is set, the count goes up, and the message names the retry and a time computed with the old count, so
    it shows half the real wait."""
    count = int(state.get("retryCount", 0))
    shown = now + backoff(retry, count) * scale
    state.update(
        phase="Running",
        finishedAt=_iso(now),
        retryCount=count + 1,
        message=f"{error}. Retrying attempt #{count + 1} at {kitchen(shown)}.",
    )


def retry_started(state: dict[str, Any], clears_sync_result: bool) -> bool:
    """The backoff is over and the retry starts (appcontroller.go:1634-1639): finishedAt goes, and the failed
    attempt's syncResult with it. Before commit 9b40474c (2026-07, in no release up to v3.5.1) the controller
    wrote the state with a merge patch that could not remove syncResult, so it stayed until the attempt ended.
    With `retry.refresh` the operation's revisions are emptied so the retry takes the latest ones
    (appcontroller.go:1626-1632); returns whether it did."""
    state.pop("finishedAt", None)
    if clears_sync_result:
        state.pop("syncResult", None)
    refresh = bool((state["operation"].get("retry") or {}).get("refresh"))
    if refresh:
        sync = state["operation"].setdefault("sync", {})
        sync["revision"] = ""
        sync.pop("revisions", None)
    extra = " with latest revisions" if refresh else ""
    state["message"] = f"Retrying operation{extra}. Attempt #{int(state.get('retryCount', 0))}"
    return refresh


def final_message(error: str, count: int) -> str:
    """The message of an operation that ran out of retries (appcontroller.go:1695-1697)."""
    return f"{error} (retried {count} times)." if count else error


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
