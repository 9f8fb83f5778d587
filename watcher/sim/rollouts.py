"""The rollout corpus: named changes to the demo GitOps repo, the failures a watcher must catch and the healthy
rollouts it must stay silent on, each with what Argo CD shows over time under its real timings.

Content decides what happens: the simulated registry (`gitops_repo.IMAGE_BEHAVIOURS`) knows what each image does
once pulled, the cluster which Secrets exist and how much CPU an app's pods can have. Iterate `FAILURES` and
`HEALTHY_ROLLOUTS` (or `CASES` by name) in tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from watcher.sim.gitops_repo import REGISTRY, WorkClone

APP = "plate-api-stg"  # every case changes this app (its values-stg.yaml, or its chart)
CHART = "helm/applications/plate-api"
VALUES = f"{CHART}/values-stg.yaml"
MIGRATION_JOB = f"{CHART}/templates/db-migrate.yaml"
MIGRATION_TEMPLATE = """{{- if .Values.migrations }}
apiVersion: batch/v1
kind: Job
metadata:
  name: db-migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: "{{ .Values.migrations.image }}"
{{- end }}
"""


@dataclass(frozen=True)
class RolloutCase:
    """One commit to the demo repo and what Argo CD shows after it (times in Argo CD seconds after the sync)."""

    name: str  # usable as a pytest id
    subject: str  # the commit message
    values: dict[str, Any] = field(default_factory=dict)  # dotted key -> value in plate-api's values-stg.yaml
    files: dict[str, str] = field(default_factory=dict)  # whole files written as they are
    kind: str = ""  # the failure kind; "" for a healthy rollout
    shows: str = ""  # what Argo CD shows, for a reader
    pod_reason: str = ""  # the new pods' "Status Reason" once the failure shows ("" for a healthy rollout)
    sync_fails: bool = False  # the sync operation itself fails (the app is never rolled out)
    app_degrades: bool = False  # the app's health turns Degraded (at the progress deadline)

    def commit(self, work: WorkClone, author: str = "Dev Two") -> str:
        """Commit the change in `work` (not pushed); returns its sha."""
        files = dict(self.files)
        if self.values:
            text = work.read(VALUES)
            for key, value in self.values.items():
                work.path.joinpath(VALUES).write_text(text, encoding="utf-8")
                text = work.set_value(VALUES, key, value)
            files[VALUES] = text
        return work.commit(self.subject, files, author)


IMAGE = f"{REGISTRY}/plate-api"
FAILURES: tuple[RolloutCase, ...] = (
    RolloutCase(
        "bad_image",
        f"{APP}: bump image to 2.7.0",
        {"image.tag": "2.7.0"},
        kind="bad_image",
        shows="new pod ErrImagePull then ImagePullBackOff (Degraded pod); app Progressing 600 s, then Degraded",
        pod_reason="ImagePullBackOff",
        app_degrades=True,
    ),
    RolloutCase(
        "crash_loop",
        f"{APP}: bump image to 2.6.1",
        {"image.tag": "2.6.1"},
        kind="crash_loop",
        shows="new pod restarts, CrashLoopBackOff 10 s doubling to 5 min; app Progressing 600 s, then Degraded",
        pod_reason="CrashLoopBackOff",
        app_degrades=True,
    ),
    RolloutCase(
        "missing_secret_key",
        f"{APP}: read the database token from its Secret",
        {"env": [{"name": "DB_TOKEN", "valueFrom": {"secretKeyRef": {"name": "plate-api-db", "key": "token"}}}]},
        kind="config_error",
        shows="new pod CreateContainerConfigError (Degraded pod); app Progressing 600 s, then Degraded",
        pod_reason="CreateContainerConfigError",
        app_degrades=True,
    ),
    RolloutCase(
        "invalid_image_name",
        f"{APP}: move the image to the new registry path",
        {"image.repository": f"{REGISTRY}/Plate-API"},
        kind="invalid_image_name",
        # gitops-engine's pod health does not match InvalidImageName (neither Err… nor …Error/…BackOff).
        shows="new pod InvalidImageName, its health Progressing; app Progressing 600 s, then Degraded",
        pod_reason="InvalidImageName",
        app_degrades=True,
    ),
    RolloutCase(
        "stuck_rollout",
        f"{APP}: give the api 8 CPUs",
        {"resources.requests.cpu": "8"},
        kind="stuck_rollout",
        shows="new pod Pending (0/3 nodes are available: insufficient cpu); app Progressing 600 s, then Degraded",
        pod_reason="Pending",
        app_degrades=True,
    ),
    RolloutCase(
        "invalid_spec",
        f"{APP}: scale down for the weekend",
        {"replicaCount": -1},
        kind="invalid_spec",
        shows="the API server refuses the Deployment: sync retried with back-off, then Failed",
        sync_fails=True,
    ),
    RolloutCase(
        "render_error",
        f"{APP}: tune the replicas",
        files={VALUES: "replicaCount: [1\nimage:\n  pullPolicy: Always\n"},
        kind="render_error",
        shows="manifests do not render: ComparisonError at once after a webhook; without one, Argo CD's first "
        "compare of the commit leaves the status as it was for the 180 s repo error grace",
    ),
    RolloutCase(
        "failed_hook",
        f"{APP}: run the database migration before the rollout",
        {"migrations": {"image": f"{REGISTRY}/plate-migrate:1.1.0"}},
        files={MIGRATION_JOB: MIGRATION_TEMPLATE},
        kind="failed_hook",
        shows="PreSync Job fails (backoff limit reached): sync retried with back-off, then Failed",
        sync_fails=True,
    ),
)

HEALTHY_ROLLOUTS: tuple[RolloutCase, ...] = (
    RolloutCase("image_bump", f"{APP}: bump image to 2.5.0", {"image.tag": "2.5.0"}, shows="new pod ready in 5 s"),
    RolloutCase(
        "slow_ready",
        f"{APP}: bump image to 2.5.1",
        {"image.tag": "2.5.1"},
        shows="new pod Running, not ready for 40 s (its cache warms), then ready",
    ),
    RolloutCase(
        "restart_once",
        f"{APP}: bump image to 2.5.2",
        {"image.tag": "2.5.2"},
        shows="new pod exits once, CrashLoopBackOff 10 s (Degraded pod for a moment), restart count 1, then ready",
    ),
    RolloutCase(
        "slow_pull",
        f"{APP}: bump image to 2.5.3",
        {"image.tag": "2.5.3"},
        shows="new pod ContainerCreating for 90 s while a big image pulls, then ready",
    ),
    RolloutCase(
        "surge_pending",
        f"{APP}: four replicas of a full CPU each",
        {"replicaCount": 4, "resources.requests.cpu": "1"},
        shows="a surge pod Pending on the full nodes until an old pod goes, then scheduled",
    ),
    RolloutCase(
        "scale_down",
        f"{APP}: scale to zero outside office hours",
        {"replicaCount": 0},
        shows="the pods go; the Deployment is Healthy at zero replicas",
    ),
    RolloutCase(
        "migration_ok",
        f"{APP}: run the database migration before the rollout",
        {"migrations": {"image": f"{REGISTRY}/plate-migrate:1.0.0"}, "image.tag": "2.5.0"},
        files={MIGRATION_JOB: MIGRATION_TEMPLATE},
        shows="PreSync Job completes, then the new pods roll out",
    ),
)

CASES = {c.name: c for c in (*FAILURES, *HEALTHY_ROLLOUTS)}
