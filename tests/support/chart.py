"""The chart rendered by the real Helm engine, and its cases."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

helm_python = pytest.importorskip("helm_python")


ROOT = Path(__file__).resolve().parents[2]


CHART = ROOT / "helm" / "sync-watcher"


REQUIRED = {"settings": {"git": {"url": "git@github.com:acme/gitops.git"}}, "secrets": {"existingSecret": "sw"}}


OPTIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "emptyDir": {"persistence": {"type": "emptyDir"}},
    "existingClaim": {"persistence": {"existingClaim": "state"}},
    "externalSecret": {"secrets": {"externalSecret": {"enabled": True}, "keys": {"slackWebhookUrl": "slack"}}},
    "noSecrets": {"secrets": {"existingSecret": "", "keys": {"argocdToken": ""}}},
    "serviceMonitor": {"serviceMonitor": {"enabled": True, "labels": {"release": "kps"}}},
    "prometheusRule": {"prometheusRule": {"enabled": True}},
    "dashboard": {"dashboard": {"enabled": True, "folder": "GitOps"}},
    "noNetworkPolicy": {"networkPolicy": {"enabled": False}},
    "adminAuthNone": {"adminApi": {"auth": "none"}},
    "signedReverts": {"secrets": {"keys": {"revertSigningKey": "signing-key"}}},
    "digest": {"image": {"digest": "sha256:" + "a" * 64}},
    "ownServiceAccount": {"serviceAccount": {"create": False, "name": "existing"}},
    "postgres": {"settings": {"store": {"url": "postgresql://watcher@pg:5432/watcher"}}},
    "releaseBranches": {"settings": {"git": {"branches": ["main", "release-1.x"]}}},
    "ingress": {
        "ingress": {"enabled": True, "host": "sync-watcher.example.com", "className": "nginx", "tlsSecretName": "tls"}
    },
    "twoReplicas": {
        "replicas": 2,
        "settings": {"store": {"url": "postgresql://watcher@pg:5432/watcher"}},
        "persistence": {"type": "emptyDir"},
    },
}


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@cache
def chart() -> Any:
    return helm_python.Chart.load(str(CHART))


def render(values: dict[str, Any]) -> list[dict[str, Any]]:
    out = chart().render(values, name="sync-watcher", namespace="sync-watcher")
    return [d for name, text in sorted(out.items()) if name.endswith(".yaml") for d in yaml.safe_load_all(text) if d]


def env_values(name: str) -> dict[str, Any]:
    return yaml.safe_load((CHART / name).read_text())


CASES = {name: merge(REQUIRED, extra) for name, extra in OPTIONS.items()} | {
    "stg": env_values("values-stg.yaml"),
    "prod": env_values("values-prod.yaml"),
}


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]
