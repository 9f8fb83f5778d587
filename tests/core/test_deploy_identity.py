"""Pure: a failure keeps its identity while the branch moves on (core/policy.still_failing), and pods the deploy did
not create are not its fault (core/rollout.not_from_this_deploy).

Shapes: Argo CD moves `status.sync.revision` to every new head whose manifests compare equal, running no sync, so
operationState keeps the deploy that broke the app (controller/state.go:1093-1106, appcontroller.go:2538-2543).
Trees are v1alpha1ResourceNode lists as controller/cache/info.go:725-750 fills them (pod "Status Reason" Unknown on
a lost node, "Node", "Containers"; a ReplicaSet's "Revision" "Rev:N"), from the scenarios
old-replicaset-pods-on-lost-node and degraded-before-deploy-unrelated-resource.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from watcher.core.policy import still_failing
from watcher.core.rollout import not_from_this_deploy
from watcher.domain import AppSnapshot, EventKind, Health, Phase, SyncStatus

C1, C2 = "c1" * 20, "c2" * 20


def seen(sync_rev: str, health: Health, phase: Phase | None, op: str | None, sync: str = "Synced") -> AppSnapshot:
    return AppSnapshot(
        "plate-api-stg", sync_status=SyncStatus(sync), sync_revision=sync_rev, health=health, phase=phase,
        operation_revision=op,
    )  # fmt: skip


@pytest.mark.parametrize(
    "snap, kind, failing",
    [
        pytest.param(seen(C1, Health.DEGRADED, Phase.SUCCEEDED, C1), EventKind.DEGRADED, True, id="at_r"),
        pytest.param(
            seen(C2, Health.DEGRADED, Phase.SUCCEEDED, C1), EventKind.DEGRADED, True, id="branch_moved_no_sync_ran"
        ),  # fmt: skip
        pytest.param(
            seen(C2, Health.DEGRADED, Phase.SUCCEEDED, C2), EventKind.DEGRADED, False, id="a_later_sync_ran"
        ),  # fmt: skip
        pytest.param(seen(C2, Health.DEGRADED, Phase.RUNNING, C2), EventKind.DEGRADED, False, id="syncing_later"),
        pytest.param(seen(C2, Health.HEALTHY, Phase.SUCCEEDED, C1), EventKind.DEGRADED, False, id="healthy_again"),
        pytest.param(
            seen(C2, Health.PROGRESSING, Phase.SUCCEEDED, C1),
            EventKind.STUCK_PROGRESSING,
            True,
            id="stuck_branch_moved",
        ),  # fmt: skip
        pytest.param(
            seen(C2, Health.DEGRADED, Phase.SUCCEEDED, C1), EventKind.ROLLOUT_FAILING, True, id="rollout_branch_moved"
        ),  # fmt: skip
    ],
)
def test_still_failing_across_branch_moves(snap: AppSnapshot, kind: EventKind, failing: bool) -> None:
    assert still_failing(snap, kind, C1) is failing


SYNC = datetime(2026, 8, 21, 9, 1, tzinfo=UTC)


def pod(name: str, rs: str | None, created: str, health: str, reason: str = "", restarts: int = 0) -> dict[str, Any]:
    info = [{"name": "Status Reason", "value": reason}] if reason else []
    info += [{"name": "Restart Count", "value": str(restarts)}] if restarts else []
    refs = [{"group": "apps", "kind": "ReplicaSet", "name": rs}] if rs else []
    return {"kind": "Pod", "namespace": "plate-prod", "name": name, "parentRefs": refs, "createdAt": created,
            "info": info, "health": {"status": health}}  # fmt: skip


def rs(name: str, rev: int) -> dict[str, Any]:
    return {"group": "apps", "kind": "ReplicaSet", "namespace": "plate-prod", "name": name,
            "parentRefs": [{"group": "apps", "kind": "Deployment", "name": "plate-web"}],
            "info": [{"name": "Revision", "value": f"Rev:{rev}"}]}  # fmt: skip


OLD_RS, NEW_RS = rs("plate-web-6f9c8d7b5", 30), rs("plate-web-7b6d5c9f8", 31)
LOST = pod("plate-web-6f9c8d7b5-4hxkq", "plate-web-6f9c8d7b5", "2026-08-18T13:02:11Z", "Unknown", "Unknown")
NEW_OK = pod("plate-web-7b6d5c9f8-2kqzt", "plate-web-7b6d5c9f8", "2026-08-21T09:01:05Z", "Healthy")
NEW_PENDING = pod("plate-web-7b6d5c9f8-q5d7v", "plate-web-7b6d5c9f8", "2026-08-21T09:02:15Z", "Progressing", "Pending")
NEW_CRASHING = pod("plate-web-7b6d5c9f8-x", "plate-web-7b6d5c9f8", "2026-08-21T09:01:05Z", "Degraded",
                   "CrashLoopBackOff", 5)  # fmt: skip
BARE_OLD = pod("plate-cache-exporter-5f8b7d6c9-mm2rt", None, "2026-08-21T07:41:00Z", "Degraded", "ImagePullBackOff")
NO_TIME = {k: v for k, v in pod("plate-api-6b8d7c5f4-2xv9m", "plate-api-6b8d7c5f4", "", "Degraded",
           "CrashLoopBackOff", 6).items() if k != "createdAt"}  # fmt: skip


@pytest.mark.parametrize(
    "nodes, expected",
    [
        pytest.param(
            [OLD_RS, NEW_RS, LOST, NEW_OK, NEW_PENDING],
            ("Pod/plate-prod/plate-web-6f9c8d7b5-4hxkq",),
            id="old_replicaset_on_a_lost_node",
        ),  # fmt: skip
        pytest.param([BARE_OLD], ("Pod/plate-prod/plate-cache-exporter-5f8b7d6c9-mm2rt",), id="created_before_sync"),
        pytest.param([OLD_RS, NEW_RS, LOST, NEW_CRASHING], (), id="a_new_pod_fails_too"),
        pytest.param([OLD_RS, NEW_RS, NEW_CRASHING], (), id="only_new_pods_fail"),
        pytest.param([NO_TIME], (), id="origin_unknown"),
        pytest.param([OLD_RS, NEW_RS, NEW_OK], (), id="nothing_in_trouble"),
    ],
)
def test_not_from_this_deploy(nodes: list[dict[str, Any]], expected: tuple[str, ...]) -> None:
    assert not_from_this_deploy({"nodes": nodes}, SYNC, 2) == expected
