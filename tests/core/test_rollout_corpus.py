"""The rollout watch over the simulator's rollout corpus (watcher/sim/rollouts.py): real-timings trees, step by
step in Argo CD time. Every runtime failure of a new rollout is named soon after the sync; every healthy rollout
stays silent from the push to well past the progress deadline."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.core.rollout import RolloutRules, RolloutVerdict, RolloutWatch, assess
from watcher.sim.case_run import CaseRun
from watcher.sim.rollouts import CASES, FAILURES, HEALTHY_ROLLOUTS

# Failures the tree shows (the others: a Pending pod is a surge's normal too, so `stuck_progressing` stays its
# net; an invalid spec and a render error never reach the cluster and are `sync_failed`/`manifest_error`).
SEEN_IN_THE_TREE = {"bad_image", "crash_loop", "missing_secret_key", "invalid_image_name", "failed_hook"}
READ_EVERY = 15.0  # Argo CD seconds between tree reads: the real-timings demo's at x60
HORIZON = 700.0  # past the 600 s progress deadline


def watch(tmp_path: Path, case_name: str) -> tuple[float, float | None, RolloutVerdict | None]:
    """(sync started, seconds after it when the watch names the rollout, the verdict), reading the tree every
    READ_EVERY seconds as the watcher would, from the push to HORIZON."""
    run = CaseRun(tmp_path)
    try:
        pushed = run.push(CASES[case_name])
        run.advance(HORIZON)
    finally:
        run.stop()
    operations = [
        (t, s["operationState"])
        for t, s in run.statuses
        if t >= pushed
        and (s.get("operationState") or {}).get("operation", {}).get("sync", {}).get("revision") == run.sha
    ]
    assert operations, "the push was never synced"
    started, state_seen = operations[0]
    # What the watcher takes as the sync's start: operationState.startedAt, as Argo CD reports it.
    sync_started = datetime.fromisoformat(state_seen["startedAt"].replace("Z", "+00:00"))
    state, last_read = RolloutWatch(), -READ_EVERY
    for t, tree in run.trees:
        if t < started or t - last_read < READ_EVERY:
            continue
        last_read = t
        # As the watcher reads it: the tree alone (a failed hook Job is a Degraded Job node there).
        state, verdict = assess(state, tree, run.sha, sync_started, datetime.fromtimestamp(t, UTC), RolloutRules())
        if verdict is not None:
            return started, t - started, verdict
    return started, None, None


@pytest.mark.parametrize("case", [c.name for c in FAILURES if c.name in SEEN_IN_THE_TREE])
def test_a_failing_rollout_of_the_corpus_is_named_within_a_minute(tmp_path: Path, case: str) -> None:
    _, after, verdict = watch(tmp_path, case)
    assert verdict is not None and after is not None, f"{case}: never named"
    assert after <= 60, f"{case}: named {after:.0f} s after the sync"
    assert verdict.revision and verdict.pods
    if CASES[case].pod_reason:
        assert CASES[case].pod_reason in {p.reason for p in verdict.pods} | {"restarting"}


@pytest.mark.parametrize("case", [c.name for c in HEALTHY_ROLLOUTS])
def test_a_healthy_rollout_of_the_corpus_is_never_named(tmp_path: Path, case: str) -> None:
    _, after, verdict = watch(tmp_path, case)
    assert verdict is None, f"{case}: named {after} s after the sync: {verdict}"
