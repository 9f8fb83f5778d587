"""The demo GitOps repo, laid out like the seeds: app-of-apps, one Application per service and env, Helm values."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from watcher.sim.pods import ImageBehaviour

SERVICES: dict[str, dict[str, object]] = {
    "plate-web": {"tag": "1.25.0", "memory": "256Mi", "needs_mib": 64, "port": 80},
    "plate-api": {"tag": "2.4.0", "memory": "512Mi", "needs_mib": 192, "port": 8080},
    "plate-llm": {"tag": "0.9.1", "memory": "2Gi", "needs_mib": 1536, "port": 8000},
    "plate-cache": {"tag": "7.2.4", "memory": "256Mi", "needs_mib": 96, "port": 6379},
}
ENVIRONMENTS = ("stg", "prod")
REGISTRY = "harbor.plate.local/plate"
# Tags the simulated registry has besides the ones the repo starts with: what a healthy change bumps to.
EXTRA_TAGS = {
    "plate-web": ["1.26.0", "1.27.0"],
    "plate-api": ["2.5.0", "2.6.0"],
    "plate-llm": ["0.9.2", "1.0.0"],
    "plate-cache": ["7.2.5", "7.4.0"],
}
APP_OF_APPS = "environments/argocd/app-of-apps.yaml"
# Library charts outside every app's directory: `common` is a file:// dependency of these services' charts
# (a commit to it alone can break them); `jobs` is used by no app yet.
LIBRARY = "helm/library"
COMMON_USERS = ("plate-web",)


# Images the registry has that do something other than start and become ready in seconds: what the rollout
# corpus (watcher/sim/rollouts.py) deploys. "repository:tag" -> what a container of it does.
IMAGE_BEHAVIOURS: dict[str, ImageBehaviour] = {
    f"{REGISTRY}/plate-api:2.6.1": ImageBehaviour(crash_after=2.0),  # exits on start: a crash loop
    f"{REGISTRY}/plate-api:2.5.1": ImageBehaviour(ready_seconds=40.0),  # warms a cache before it is ready
    f"{REGISTRY}/plate-api:2.5.2": ImageBehaviour(exits_once_after=3.0),  # its database starts after it: one restart
    f"{REGISTRY}/plate-api:2.5.3": ImageBehaviour(pull_seconds=90.0),  # a big image on a cold node
    f"{REGISTRY}/plate-migrate:1.1.0": ImageBehaviour(crash_after=1.0),  # a migration that fails
    f"{REGISTRY}/plate-migrate:1.0.0": ImageBehaviour(ready_seconds=4.0),  # a migration that completes
}
# Secrets and ConfigMaps in the cluster: (namespace, kind, name) -> keys. What a container's env may read.
CONFIG_OBJECTS: dict[tuple[str, str, str], set[str]] = {
    (f"plate-{env}", "Secret", "plate-api-db"): {"username", "password"} for env in ENVIRONMENTS
}


def known_images() -> dict[str, dict[str, int]]:
    """image repository -> tag -> MiB of memory the container needs (what the simulated cluster runs)."""
    images: dict[str, dict[str, int]] = {}
    for svc, info in SERVICES.items():
        tags = [str(info["tag"]), "latest", *EXTRA_TAGS[svc]]
        images[f"{REGISTRY}/{svc}"] = {tag: int(str(info["needs_mib"])) for tag in tags}
    for image in IMAGE_BEHAVIOURS:
        repository, _, tag = image.rpartition(":")
        images.setdefault(repository, {})[tag] = min(images.get(repository, {}).values(), default=64)
    return images


def known_config_objects() -> dict[tuple[str, str, str], set[str]]:
    return {k: set(v) for k, v in CONFIG_OBJECTS.items()}


def application(
    name: str, repo_url: str, path: str, namespace: str, value_files: list[str] | None, wave: str, retry_limit: int = 5
) -> dict[str, object]:
    source: dict[str, object] = {"repoURL": repo_url, "targetRevision": "main", "path": path}
    if value_files:
        source["helm"] = {"valueFiles": value_files}
    else:
        source["directory"] = {"recurse": True}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": "argocd",
            "annotations": {"argocd.argoproj.io/sync-wave": wave},
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": "default",
            "source": source,
            "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true", "ApplyOutOfSyncOnly=true"],
                "retry": {"limit": retry_limit, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}},
            },
            "revisionHistoryLimit": 10,
        },
    }


def repo_files(repo_url: str, retry_limit: int = 5) -> dict[str, str]:
    files: dict[str, str] = {}
    root = application("app-of-apps", repo_url, "environments/argocd/apps", "argocd", None, "0", retry_limit)
    files[APP_OF_APPS] = yaml.safe_dump(root, sort_keys=False)
    files |= library_charts()
    for svc, info in SERVICES.items():
        chart = f"helm/applications/{svc}"
        meta: dict[str, object] = {"apiVersion": "v2", "name": svc, "type": "application", "version": "0.1.0"}
        meta["appVersion"] = info["tag"]
        if svc in COMMON_USERS:
            meta["dependencies"] = [{"name": "common", "version": "0.1.0", "repository": "file://../../library/common"}]
        files[f"{chart}/Chart.yaml"] = yaml.safe_dump(meta, sort_keys=False)
        files[f"{chart}/values.yaml"] = yaml.safe_dump(
            {
                "replicaCount": 1,
                "image": {"repository": f"{REGISTRY}/{svc}", "tag": info["tag"], "pullPolicy": "IfNotPresent"},
                "service": {"type": "ClusterIP", "port": info["port"]},
                "resources": {
                    "limits": {"cpu": "500m", "memory": info["memory"]},
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                },
            },
            sort_keys=False,
        )
        files[f"{chart}/values-stg.yaml"] = yaml.safe_dump({"replicaCount": 1, "image": {"pullPolicy": "Always"}})
        files[f"{chart}/values-prod.yaml"] = yaml.safe_dump({"replicaCount": 2})
        files[f"{chart}/templates/deployment.yaml"] = deployment_template(svc in COMMON_USERS)
        for env in ENVIRONMENTS:
            name = f"{svc}-{env}"
            app = application(name, repo_url, chart, f"plate-{env}", [f"values-{env}.yaml"], "2", retry_limit)
            files[f"environments/argocd/apps/{name}.yaml"] = yaml.safe_dump(app, sort_keys=False)
    return files


def library_charts() -> dict[str, str]:
    files: dict[str, str] = {}
    for name, template, body in (("common", "_labels.tpl", COMMON_TEMPLATE), ("jobs", "_cronjob.tpl", JOBS_TEMPLATE)):
        chart = {"apiVersion": "v2", "name": name, "type": "library", "version": "0.1.0"}
        files[f"{LIBRARY}/{name}/Chart.yaml"] = yaml.safe_dump(chart, sort_keys=False)
        files[f"{LIBRARY}/{name}/templates/{template}"] = body
    return files


COMMON_TEMPLATE = """{{- define "common.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
"""
JOBS_TEMPLATE = """{{- define "jobs.schedule" -}}
schedule: {{ .Values.schedule | default "0 3 * * *" | quote }}
{{- end }}
"""
COMMON_LABELS = """  labels:
    {{- include "common.labels" . | nindent 4 }}
"""


DEMO_APPS = 1 + len(SERVICES) * len(ENVIRONMENTS)  # the app-of-apps and one app per service and environment


def fleet_applications(repo_url: str, count: int, retry_limit: int = 5) -> list[dict[str, object]]:
    """`count` more Applications, as if created with `argocd app create` (not in git), each deploying one of the
    demo's charts to one of its environments: a fleet where one change to a shared chart reaches many apps."""
    services = list(SERVICES)
    apps = []
    for i in range(count):
        svc, env = services[i % len(services)], ENVIRONMENTS[i // len(services) % len(ENVIRONMENTS)]
        name = f"fleet-{i:05d}-{svc}-{env}"
        chart = f"helm/applications/{svc}"
        app = application(name, repo_url, chart, f"plate-{env}", [f"values-{env}.yaml"], "2", retry_limit)
        apps.append(app)
    return apps


DEPLOYMENT_TEMPLATE = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels: {app: {{ .Release.Name }}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}}
    spec:
      containers:
        - name: app
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          {{- with .Values.env }}
          env: {{- toYaml . | nindent 12 }}
          {{- end }}
          resources: {{- toYaml .Values.resources | nindent 12 }}
"""


def deployment_template(common_labels: bool) -> str:
    """The services' Deployment; a chart that depends on the common library takes its labels from there."""
    if not common_labels:
        return DEPLOYMENT_TEMPLATE
    head, spec, rest = DEPLOYMENT_TEMPLATE.partition("spec:\n")
    return head + COMMON_LABELS + spec + rest


class WorkClone:
    """A developer's clone of the GitOps repo: edit files, commit, push (real git, real remote)."""

    def __init__(self, path: Path, remote: str):
        self.path = Path(path)
        self.remote = remote

    def git(self, *args: str) -> str:
        out = subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True, text=True)
        return out.stdout.strip()

    def init(self, files: dict[str, str]) -> str:
        self.path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.git("remote", "add", "origin", self.remote)
        return self.commit("Initial GitOps layout: app-of-apps and plate services", files, "Platform Team")

    def commit(self, message: str, files: dict[str, str], author: str = "Dev One") -> str:
        for rel, text in files.items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        self.git("add", "-A")
        email = author.lower().replace(" ", ".") + "@plate.example"
        self.git("-c", f"user.name={author}", "-c", f"user.email={email}", "commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text(encoding="utf-8")

    def set_value(self, rel: str, dotted: str, value: object) -> str:
        """The YAML text of `rel` with one value changed (`image.tag`)."""
        data = yaml.safe_load(self.read(rel)) or {}
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
        return yaml.safe_dump(data, sort_keys=False)

    def push(self) -> None:
        self.git("push", "-q", "origin", "HEAD:main")
