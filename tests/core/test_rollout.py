"""The rollout watch on resource trees shaped as Argo CD serves them (swagger v1alpha1ApplicationTree, with the
`info` items of argo-cd's controller/cache/info.go): failing rollouts are named, healthy ones never are."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.support.trees import (
    FAILING,
    HEALTHY,
    NEW_IMAGE,
    SYNC,
)
from watcher.core.rollout import RolloutRules, RolloutWatch, assess, failing_now

RULES = RolloutRules(grace=timedelta(seconds=20), restarts=2)


def run(t: dict[str, Any], seconds: list[float]) -> list[bool]:
    """Whether each read, at these seconds after the sync, yields a verdict (the same tree each time)."""
    watch, out = RolloutWatch(), []
    for s in seconds:
        watch, verdict = assess(watch, t, "r2", SYNC, SYNC + timedelta(seconds=s), RULES)
        out.append(verdict is not None)
    return out


@pytest.mark.parametrize("name", sorted(set(FAILING) - {"failed_hook_job"}))
def test_a_failing_rollout_is_named_once_it_fails_past_the_grace(name: str) -> None:
    assert run(FAILING[name], [10, 20, 30]) == [False, False, True]


def test_a_failed_hook_job_is_final_and_named_at_once() -> None:
    assert run(FAILING["failed_hook_job"], [10]) == [True]


@pytest.mark.parametrize("name", HEALTHY)
def test_a_healthy_rollout_is_never_named(name: str) -> None:
    assert run(HEALTHY[name], [10 * i for i in range(60)]) == [False] * 60


def test_the_verdict_carries_the_failing_pods_and_images() -> None:
    watch, _ = assess(RolloutWatch(), FAILING["bad_image"], "r2", SYNC, SYNC + timedelta(seconds=10), RULES)
    _, verdict = assess(watch, FAILING["bad_image"], "r2", SYNC, SYNC + timedelta(seconds=40), RULES)
    assert verdict is not None
    assert verdict.evidence()["failing_pods"] == [
        {"name": "plate-api-7c9b-x1", "reason": "ImagePullBackOff", "restarts": 0, "images": [NEW_IMAGE]}
    ]
    assert verdict.evidence()["failing_images"] == [NEW_IMAGE]
    assert verdict.since == SYNC + timedelta(seconds=10)
    assert "plate-api-7c9b-x1 ImagePullBackOff" in verdict.reason()


def test_a_blip_starts_the_grace_over() -> None:
    bad, good = FAILING["crash_loop"], HEALTHY["all_ready"]
    watch = RolloutWatch()
    for s, t in [(0, bad), (15, good), (25, bad), (40, bad)]:
        watch, verdict = assess(watch, t, "r2", SYNC, SYNC + timedelta(seconds=s), RULES)
        assert verdict is None, s
    _, verdict = assess(watch, bad, "r2", SYNC, SYNC + timedelta(seconds=45), RULES)
    assert verdict is not None


def test_a_new_revision_starts_the_watch_over() -> None:
    watch, _ = assess(RolloutWatch(), FAILING["crash_loop"], "r1", SYNC, SYNC, RULES)
    _, verdict = assess(watch, FAILING["crash_loop"], "r2", SYNC, SYNC + timedelta(seconds=30), RULES)
    assert verdict is None


def test_a_failed_hook_in_the_sync_result_counts() -> None:
    results = [{"kind": "Job", "name": "db-migrate", "hookPhase": "Failed", "message": "backoff limit reached"}]
    pods = failing_now(HEALTHY["all_ready"], SYNC, 2, results)
    assert [(p.name, p.reason) for p in pods] == [("Job/db-migrate", "hook Failed: backoff limit reached")]
    running = [{"kind": "Job", "name": "db-migrate", "hookPhase": "Running"}]
    assert failing_now(HEALTHY["all_ready"], SYNC, 2, running) == []


def test_a_tree_of_an_unexpected_shape_yields_nothing() -> None:
    for t in ({}, {"nodes": None}, {"nodes": ["x", {"kind": "Pod"}]}, {"nodes": [{"kind": "Pod", "info": "x"}]}):
        assert failing_now(t, SYNC, 2) == []
