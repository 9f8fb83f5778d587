"""Revert only what the evidence points at, end to end: the simulator serves Argo CD's real failure shapes
(sim/admission.py, each named there with its source), a real git daemon, the daemon. Each test asserts the exact
commits reverted (often none), the decision's rule and its evidence line."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import yaml
from click.testing import CliRunner

from tests.support.revert_world import Scenario
from tests.support.waiting import wait_for
from watcher.cli import main
from watcher.sim.gitops_repo import application

API = "plate-api-stg"
API_APP = f"environments/argocd/apps/{API}.yaml"


def explained(s: Scenario, app: str) -> str:
    out = CliRunner().invoke(main, ["explain", app, "--url", f"http://127.0.0.1:{s.d.http.port}"])
    assert out.exit_code == 0, out.output
    return out.output


def alerted_only(s: Scenario, app: str, rule: str) -> str:
    decision = wait_for(lambda: s.decision(app, rule), timeout=120, what=f"{rule} decision for {app}")
    assert decision.action.value == "alert"
    assert s.revert_rows() == [] and s.bot_commits() == []
    return str(decision.evidence["evidence_line"])


def test_an_unreachable_admission_webhook_reverts_nothing_and_names_the_webhook(
    scenario: Callable[..., Scenario],
) -> None:
    """apiserver pkg/util/webhook/error.go:34-39: every write of a Deployment fails while the webhook's Service
    does not answer; the innocent commit whose sync met it is not reverted."""
    s = scenario().start()
    s.world.controller.cluster.admission.webhook_unreachable = True
    s.push("plate-api-stg: two replicas", {API: ("replicaCount", 2)})
    line = alerted_only(s, API, "cluster_fault")
    assert line.startswith(f"Deployment/plate-stg/{API}: the admission webhook validate.kyverno.svc-fail is unreach")
    assert line.endswith("context deadline exceeded): no commit is at fault")
    decision = s.decision(API, "cluster_fault")
    assert decision is not None and decision.evidence["failure"]["verdicts"][0]["row"] == "C20"
    text = explained(s, API)
    assert "ALERT (cluster_fault)" in text and f"evidence: {line}" in text and "rows C20" in text


def test_an_unavailable_api_server_reverts_nothing(scenario: Callable[..., Scenario]) -> None:
    """apimachinery pkg/api/errors/errors.go:481: 503 from the API server is the cluster's, not the commit's."""
    s = scenario().start()
    s.world.controller.cluster.admission.api_unavailable = True
    s.push("plate-api-stg: two replicas", {API: ("replicaCount", 2)})
    line = alerted_only(s, API, "cluster_fault")
    assert line == "Deployment/plate-stg/plate-api-stg: the API server is unavailable: no commit is at fault"


def test_a_sync_option_added_earlier_is_reverted_not_the_innocent_commit_whose_sync_used_it(
    scenario: Callable[..., Scenario],
) -> None:
    """Argo CD runs no sync for a spec change that leaves the rendered manifests alone (the app shows Synced at
    it): Replace=true is first used by the next commit's sync, whose `kubectl replace` of the Service is refused."""
    s = scenario().start()
    app = yaml.safe_load(s.world.work.read(API_APP))
    app["spec"]["syncPolicy"]["syncOptions"].append("Replace=true")
    s.world.work.commit("plate-api-stg: sync with Replace=true", {API_APP: yaml.safe_dump(app, sort_keys=False)})
    s.world.work.push()
    option = s.world.work.git("rev-parse", "HEAD")
    wait_for(lambda: s.healthy_on(API, option), what="Synced at the spec change, with no sync run")
    innocent = s.push("plate-api-stg: two replicas", {API: ("replicaCount", 2)})
    row = wait_for(lambda: s.revert_rows("pushed"), timeout=120, what="revert pushed")[0]
    assert row.culprits == (option,)
    assert innocent in [sha for sha, _, _ in s.remote_log()]
    decision = s.decision(API, "culprit_found")
    assert decision is not None
    assert decision.evidence["evidence_line"] == (
        f"Service/plate-stg/{API} refused by kubectl replace with Replace=true; Replace=true was added by "
        f"{option[:7]} (plate-api-stg: sync with Replace=true)"
    )
    assert decision.evidence["unexercised_spec_changes"] == [option]
    assert "Replace=true" not in s.remote_file(API_APP)
    assert f"evidence: {decision.evidence['evidence_line']}" in explained(s, API)
    page = httpx.get(f"http://127.0.0.1:{s.d.http.port}/ui/incidents/{row.incident_id}", timeout=10).text
    assert f"<strong>Evidence:</strong> Service/plate-stg/{API} refused by kubectl replace" in page
    wait_for(lambda: s.healthy_on(API, row.revert_sha), what="app healthy on the revert")


def test_the_root_app_failing_on_one_child_application_reverts_the_commit_that_added_it(
    scenario: Callable[..., Scenario],
) -> None:
    """The Application CRD's schema refuses a child whose retry backoff duration is an integer: the root's sync
    names Application argocd/plate-search-stg, which one commit of three added."""
    s = scenario().start()
    s.commit("plate-web-stg: two replicas", {"plate-web-stg": ("replicaCount", 2)}, "Dev One")
    child = application("plate-search-stg", s.world.repo_url, "helm/applications/plate-api", "plate-stg",
                        ["values-stg.yaml"], "2")  # fmt: skip
    child["spec"]["syncPolicy"]["retry"]["backoff"]["duration"] = 5  # type: ignore[index]
    path = "environments/argocd/apps/plate-search-stg.yaml"
    added = s.world.work.commit("argocd: plate-search in stg", {path: yaml.safe_dump(child, sort_keys=False)})
    annotated = yaml.safe_load(s.world.work.read(API_APP))
    annotated["metadata"]["annotations"]["plate.co/owner"] = "api-team"
    s.world.work.commit("argocd: owner of plate-api-stg", {API_APP: yaml.safe_dump(annotated, sort_keys=False)})
    s.world.work.push()
    row = wait_for(lambda: s.revert_rows("pushed"), timeout=120, what="revert pushed")[0]
    assert (row.app, row.culprits) == ("app-of-apps", (added,))
    decision = s.decision("app-of-apps", "culprit_found")
    assert decision is not None
    # Narrowing asks Argo CD's renderer (the manifests endpoint) first: the render shows the commit adding the
    # failing object (without a renderer the evidence is the file that defines it: tests/core/test_culprit.py).
    assert decision.evidence["evidence_line"] == (
        f"Application/argocd/plate-search-stg: {added[:7]} added Application/plate-search-stg in the rendered output"
    )
    assert "plate.co/owner" in s.remote_file(API_APP)  # the sibling's change stays
    wait_for(lambda: s.healthy_on("app-of-apps", row.revert_sha), what="root healthy on the revert")


def test_a_webhook_denial_of_the_object_a_commit_changed_reverts_that_commit(scenario: Callable[..., Scenario]) -> None:
    """apiserver pkg/admission/plugin/webhook/errors/statuserror.go:29-51: a policy's verdict on the object is the
    content's (research row C19), as in scenario webhook-denied-limits-removed: the commit that dropped the memory
    limit is reverted, not the commit to another app pushed with it."""
    s = scenario().start()
    s.world.controller.cluster.admission.require_limits = True
    other = s.commit("plate-web-stg: two replicas", {"plate-web-stg": ("replicaCount", 2)}, "Dev One")
    dropped = s.commit("plate-api-stg: no memory limit", {API: ("resources.limits.memory", None)})
    s.world.work.push()
    row = wait_for(lambda: s.revert_rows("pushed"), timeout=120, what="revert pushed")[0]
    assert row.culprits == (dropped,) and other in [sha for sha, _, _ in s.remote_log()]
    decision = s.decision(API, "culprit_found")
    assert decision is not None and decision.evidence["failure"]["class"] == "content"
    assert decision.evidence["evidence_line"] == (
        f"Deployment/plate-stg/{API}: {dropped[:7]} changed Deployment/{API} in the rendered output"
    )
    wait_for(lambda: s.healthy_on(API, row.revert_sha), what="app healthy on the revert")
