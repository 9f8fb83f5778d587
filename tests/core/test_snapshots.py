"""Argo CD's JSON -> snapshots and tree health (core/snapshots.py): pure, no client."""

from __future__ import annotations

from typing import Any

import pytest

from watcher.core.snapshots import degraded_in_tree, health_is_in_the_tree, snapshot_from_app


@pytest.mark.parametrize(
    ("operation", "spec", "initiated_by", "auto_sync"),
    [
        ({"initiatedBy": {"automated": True}}, {"syncPolicy": {"automated": {"prune": True}}}, "automated", True),
        ({"initiatedBy": {"username": "alice"}}, {"syncPolicy": {"automated": {"enabled": False}}}, "alice", False),
        ({}, {"syncPolicy": {}}, "", False),
        ({"initiatedBy": {"username": "admin"}}, None, "admin", None),  # a trimmed answer without the spec
    ],
)
def test_who_started_the_sync_and_whether_the_app_syncs_itself(
    operation: dict[str, Any], spec: dict[str, Any] | None, initiated_by: str, auto_sync: bool | None
) -> None:
    app: dict[str, Any] = {
        "metadata": {"name": "plate-api-stg"},
        "status": {"operationState": {"phase": "Failed", "operation": {"sync": {"revision": "a" * 40}} | operation}},
    }
    if spec is not None:
        app["spec"] = spec
    snap = snapshot_from_app(app, complete=True)
    assert (snap.initiated_by, snap.auto_sync) == (initiated_by, auto_sync)


def test_degraded_resources_come_from_the_tree_when_argocd_keeps_health_only_there() -> None:
    deployment = {"group": "apps", "kind": "Deployment", "namespace": "web", "name": "web"}
    tree = {
        "nodes": [
            deployment | {"health": {"status": "Degraded", "message": "progress deadline exceeded"}},
            {"kind": "ConfigMap", "namespace": "web", "name": "web-config"},
            {
                "kind": "Pod",
                "namespace": "web",
                "name": "web-1-a",
                "parentRefs": [deployment],
                "health": {"status": "Degraded", "message": "CrashLoopBackOff"},
            },
        ]
    }
    # The Pod is not something a sync applies: only the managed Deployment is compared with what changed.
    assert degraded_in_tree(tree) == ("Deployment/web/web",)
    assert degraded_in_tree({"nodes": None}) == ()
    assert health_is_in_the_tree({"status": {"resourceHealthSource": "appTree"}})
    assert not health_is_in_the_tree({"status": {}})
