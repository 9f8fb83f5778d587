"""The JSON the HTTP API serves, built from plain data: apps, readiness, incidents with their audit trail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from watcher.core.codec import to_json
from watcher.core.policy import advice_for
from watcher.domain import DecisionRecord, Incident, RevertRecord, Suspension
from watcher.ports import FleetStatus
from watcher.settings import Settings
from watcher.store.preflight import PreflightRecords


def apps_view(status: FleetStatus) -> list[dict[str, Any]]:
    """/api/apps: one row per app with a snapshot, sorted by key (`sync-watcher status` reads it)."""
    rows = []
    for key, t in sorted(status.trackers.items()):
        s = t.last
        if s is None:
            continue
        rows.append(
            {
                "app": key,  # the app's identity: namespace/name outside Argo CD's namespace (what explain takes)
                "name": s.name,
                "namespace": s.namespace,
                "project": s.project,
                "sync_status": s.sync_status.value if s.sync_status else None,
                "sync_revision": s.sync_revision,
                "health": s.health.value if s.health else None,
                "operation_phase": s.phase.value if s.phase else None,
                "operation_revision": s.operation_revision,
                "retry_count": s.retry_count,
                "deployed_revision": t.deployed_revision,
                "deployed_at": t.deployed_at.isoformat() if t.deployed_at else None,
                "open_incidents": sorted(k for (a, k), n in status.open_incidents.items() if a == key and n),
                "paths": list(status.paths.get(key, ())),
            }
        )
    return rows


def readiness_limits(settings: Settings) -> dict[str, float]:
    """How old each source's last successful poll may be: the setting, else three poll intervals."""
    max_age = settings.http.readiness_max_age_seconds
    return {
        "argocd": max_age or 3 * settings.argocd.list_interval_seconds,
        "git": max_age or 3 * settings.git.poll_interval_seconds,
    }


def readiness(
    last_success: Mapping[str, float],
    limits: Mapping[str, float],
    now: float,
    failing: Mapping[str, str] | None = None,
    role: str = "leader",
) -> dict[str, Any]:
    """/readyz: ready when every source's last successful poll is within its limit (`now`: unix time) and no
    part is failing right now (the state store refusing writes): a watcher that cannot keep what it sees is
    as blind as one that cannot see. A standby that sees is ready too (it serves metrics and the API, and
    must be able to take over); `role` says which it is."""
    checks: dict[str, dict[str, Any]] = {}
    for source, limit in limits.items():
        last = last_success.get(source)
        age = None if last is None else round(now - last, 3)
        checks[source] = {"ok": age is not None and age <= limit, "age_seconds": age, "limit_seconds": limit}
    for part, why in (failing or {}).items():
        checks[part] = {"ok": False, "error": why}
    return {"ready": all(c["ok"] for c in checks.values()), "role": role, "checks": checks}


def liveness(in_flight: Mapping[str, float], limit: float) -> dict[str, Any]:
    """/healthz: alive unless a poll has been running longer than `limit` seconds (stuck past every deadline
    it has: a restart is the way out)."""
    stuck = {source: round(seconds, 1) for source, seconds in in_flight.items() if seconds > limit}
    return {"alive": not stuck, "stuck_seconds": stuck, "limit_seconds": limit}


def incident_json(i: Incident) -> dict[str, Any]:
    return to_json(i)  # type: ignore[no-any-return]


def incident_detail(
    i: Incident, decisions: Sequence[DecisionRecord], reverts: Sequence[RevertRecord]
) -> dict[str, Any]:
    """An incident with every decision taken on it and every revert attempted for it (the audit trail)."""
    return incident_json(i) | {
        "decisions": [to_json(d) for d in decisions],
        "reverts": [to_json(r) for r in reverts],
        "needs_human": any(r.needs_human for r in reverts),
    }


def explanation(
    decision: DecisionRecord, incident: dict[str, Any] | None, suspension: Suspension | None
) -> dict[str, Any]:
    """/api/explain: the app's last decision, its incident's audit trail, and its suspension if any."""
    return {
        "decision": to_json(decision),
        "what_to_do": advice_for(decision.rule),
        "incident": incident,
        "suspended": to_json(suspension) if suspension else None,
    }


PREFLIGHT_SHOWN = 5


def preflight_view(records: PreflightRecords, app: str) -> dict[str, Any]:
    """/api/explain's pre-flight part: the app's latest verdicts (Argo CD's words kept), and whether its local
    schema checks are paused after Argo CD disagreed (`sync-watcher resume APP` resets them)."""
    return {
        "verdicts": [
            {
                "commit": v.commit_sha,
                "verdict": v.verdict,
                "reason": v.reason,
                "judged_at": v.judged_at.isoformat(),
                "seconds": round((v.judged_at - v.seen_at).total_seconds(), 3),
                "action": v.action,
                "argocd_error": v.evidence.get("argocd_error", ""),
                "invalid": v.evidence.get("invalid", []),
                "warnings": v.evidence.get("warnings", []),
                "synced_revision": v.synced_revision,
                "argocd_said": v.argocd_said,
                "agreed": v.agreed,
            }  # fmt: skip
            for v in records.verdicts(app=app, limit=PREFLIGHT_SHOWN)
        ],
        "local_checks_paused": records.paused().get(app),
    }
