"""DORA's four keys from what the watcher sees (pure): which environment an app is, what counts as a failed change."""

from __future__ import annotations

from collections.abc import Mapping

from watcher.domain import EventKind

ENVIRONMENT_LABELS = ("environment", "env")
# Name suffixes that mean an environment, as in the seeds' `<service>-<stg|prod>` Applications.
ENVIRONMENT_SUFFIXES = frozenset({"dev", "test", "qa", "stg", "stage", "staging", "preprod", "prod", "production"})
# A revision that opens one of these incidents is a failed change. "sync": it never deployed (so it is
# an attempt on top of the successful deployments); "runtime": it deployed, then broke the app.
CHANGE_FAILURE_STAGE: dict[EventKind, str] = {
    EventKind.SYNC_FAILED: "sync",
    EventKind.MANIFEST_ERROR: "sync",
    EventKind.DEGRADED: "runtime",
    EventKind.ROLLOUT_FAILING: "runtime",
    EventKind.STUCK_PROGRESSING: "runtime",
}


def environment_of(app: str, labels: Mapping[str, str] | None = None) -> str:
    """The Application's `environment`/`env` label, else a known suffix of its name (`plate-api-prod`), else ''."""
    for key in ENVIRONMENT_LABELS:
        value = (labels or {}).get(key)
        if value:
            return value
    suffix = app.rsplit("/", 1)[-1].rsplit("-", 1)
    return suffix[1] if len(suffix) == 2 and suffix[1] in ENVIRONMENT_SUFFIXES else ""
