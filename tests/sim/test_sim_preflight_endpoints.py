"""The simulator's renderer endpoints speak Argo CD's API (swagger, strictly): manifests at a revision (from the
same repo server it deploys with), its render error, and the clusters list with the cluster's version."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from tests.support.swagger import validate
from tests.support.waiting import wait_for
from watcher.sim.world import SimWorld

VALUES = "helm/applications/plate-api/values-stg.yaml"


@pytest.fixture
def synced(world: SimWorld) -> SimWorld:
    wait_for(lambda: len(world.controller.snapshot()) == 9 and world.controller.head is not None)
    return world


def test_manifests_at_a_revision_hold_only_manifests_as_json_strings(synced: SimWorld) -> None:
    head = synced.work.git("rev-parse", "HEAD")
    r = httpx.get(f"{synced.argocd_url}/api/v1/applications/plate-api-stg/manifests", params={"revision": head})
    assert r.status_code == 200
    body = r.json()
    validate(body, "repositoryManifestResponse")
    assert set(body) == {"manifests"}  # argo-cd server/application/application.go:626-649
    kinds = sorted(json.loads(m)["kind"] for m in body["manifests"])
    assert kinds == ["ConfigMap", "Deployment"]


def test_a_commit_pushed_after_the_last_poll_is_rendered_and_a_broken_one_is_a_500_with_code_2(
    synced: SimWorld,
) -> None:
    good = synced.work.commit("three replicas", {VALUES: synced.work.set_value(VALUES, "replicaCount", 3)})
    bad = synced.work.commit("broken values", {VALUES: "replicaCount: [unclosed\n"})
    synced.work.push()
    url = f"{synced.argocd_url}/api/v1/applications/plate-api-stg/manifests"
    rendered = httpx.get(url, params={"revision": good}).json()
    deployment = next(json.loads(m) for m in rendered["manifests"] if json.loads(m)["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 3
    broken = httpx.get(url, params={"revision": bad})
    assert broken.status_code == 500
    validate(broken.json(), "runtimeError")
    assert broken.json()["code"] == 2 and "failed to parse values-stg.yaml" in broken.json()["message"]


def test_an_unknown_app_is_a_404_and_the_clusters_list_has_the_version(synced: SimWorld) -> None:
    missing = httpx.get(f"{synced.argocd_url}/api/v1/applications/nope/manifests", params={"revision": "main"})
    assert missing.status_code == 404 and missing.json()["code"] == 5
    clusters = httpx.get(f"{synced.argocd_url}/api/v1/clusters").json()
    validate(clusters, "v1alpha1ClusterList")
    assert re.fullmatch(r"v\d+\.\d+\.\d+", clusters["items"][0]["info"]["serverVersion"])
