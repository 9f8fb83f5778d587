"""The independent scenarios (tests/fixtures/scenarios/allowed.yaml, copied from /work/research/scenarios.yaml,
written from Argo CD's source by someone who had not read this code) fed into the pure code.

Each scenario's `argocd_shows` go, in order, through the detector (`core.detect.observe`); an incident it opens
is decided (`core.facts.facts_of` + `core.policy.decide`) with the scenario's commits as git's answer and the
latest observation of the app as the reverter's fresh GET; a WAIT is decided again at each later observation; a
revert whose revision Argo CD later reports is verified (`core.verdict`). What counts as a pass:
- the set of reverted commits is exactly the expected one, and
- the action matches: `revert` needs a revert; `wait` needs a wait, or no incident at all (nothing was
  reverted while Argo CD was still working); `alert` needs an alert; `nothing` needs no incident, or only an alert
  (nothing done);
- for `revert-restores-live-no-sync`, the verification says "restored", not "healed".
Fields the scenarios trimmed are filled as stated in `_filled` (an operation's `finishedAt` from its history
entry), never invented otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher.core import detect
from watcher.core.facts import ArgoCDView, GitView, Watched, facts_of
from watcher.core.hold_policy import held_decision
from watcher.core.narrow import Candidate
from watcher.core.policy import RevertRules, decide
from watcher.core.rollout import not_from_this_deploy
from watcher.core.snapshots import snapshot_from_app
from watcher.core.sync_permit import Hold, synced_by_appset, window_hold, windows_of
from watcher.core.verdict import verdict_of
from watcher.domain import (
    INCIDENT_KINDS,
    Action,
    AppContext,
    ChangedCommit,
    Commit,
    Incident,
    RevertHistory,
    RevertMode,
)
from watcher.revert.reads import TREE_KINDS

FIXTURE = Path(__file__).parent.parent / "fixtures" / "scenarios" / "allowed.yaml"
SCENARIOS = yaml.safe_load(FIXTURE.read_text())
REPO = "https://github.com/plate-co/gitops.git"
HISTORY = RevertHistory(reverted={}, suspension=None, circuit=None, last_revert_at=None, reverts_last_hour=0)
RULES = RevertRules(mode=RevertMode.PUSH, attribution_window=timedelta(hours=1))
DETECTION = detect.DetectionRules(failed_after_retries=3)  # the watcher's default (WATCHER_DETECTION__...)


def sha(commit_id: str) -> str:
    return (commit_id.encode().hex() + "0" * 40)[:40]


def substitute(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(r"\$\{(\w+)(?::(\d+))?\}", lambda m: sha(m[1])[: int(m[2]) if m[2] else 40], value)
    if isinstance(value, list):
        return [substitute(v) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v) for k, v in value.items()}
    return value


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def default_spec(name: str) -> dict[str, Any]:
    """The scenarios' default child Application (the file's header), for the parts a scenario leaves out."""
    svc, env = name.rsplit("-", 1)
    return {
        "project": "plate",
        "source": {
            "repoURL": REPO,
            "targetRevision": "main",
            "path": f"helm/applications/{svc}",
            "helm": {"valueFiles": [f"values-{env}.yaml"]},
        },
        "destination": {"server": "https://kubernetes.default.svc", "namespace": f"plate-{env}"},
        "syncPolicy": {"automated": {"prune": True, "selfHeal": True}, "retry": {"limit": 5}},
    }


def _filled(app: dict[str, Any], observed: str) -> dict[str, Any]:
    """The spec (the default child's unless given), and a Succeeded operation's finishedAt from the history entry of
    its revision when the scenario trimmed it (with no time at all: 10 minutes before the observation)."""
    name = app["metadata"]["name"]
    app["spec"] = app.get("spec") or default_spec(name)
    if "source" not in app["spec"]:
        app["spec"] = {**default_spec(name), **app["spec"]}  # a syncPolicy given replaces the default's
    op = (app.get("status") or {}).get("operationState") or {}
    if op.get("phase") == "Succeeded" and not op.get("finishedAt"):
        rev = (op.get("syncResult") or {}).get("revision")
        for h in (app["status"].get("history") or [])[::-1]:
            if h.get("revision") == rev and (h.get("deployedAt") or h.get("deployStartedAt")):
                op["finishedAt"] = h.get("deployedAt") or h.get("deployStartedAt")
                break
        else:  # no time at all (rollingsync-stg-degraded-prod-waiting): 10 minutes before it was observed
            op["finishedAt"] = (at(observed) - timedelta(minutes=10)).isoformat()
    return app


def commits_of(sc: Mapping[str, Any]) -> list[ChangedCommit]:
    """c1, c2, ... (the bot's r1 is not input), newest first, each on the previous one, committed a few minutes
    before the first observation (the scenarios give no commit times beyond that)."""
    out: list[ChangedCommit] = []
    parent = sha("c0")
    start = at(sc["argocd_shows"][0]["at"]) - timedelta(minutes=20)
    for i, c in enumerate(x for x in sc["commits"] if x["id"] != "r1"):
        commit = Commit(sha(c["id"]), "Dev", start + timedelta(minutes=i), c["subject"], (parent,))
        out.insert(0, ChangedCommit(commit, tuple(c["changes"])))
        parent = commit.sha
    return out


def patch(path: str, change: str) -> str:
    """The commit's change to `path` as `git diff` prints it, from the scenario's words (`key.path: old -> new`, or
    lines added), so the culprit check can see what each commit changed."""
    head = f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -1,3 +1,3 @@\n"
    lines = []
    for part in change.split(";"):
        key, sep, rest = part.strip().partition(": ")
        *parents, leaf = key.split(".")
        old, arrow, new = rest.partition(" -> ")
        indent = "  " * len(parents)
        if sep and arrow:
            lines += [f"-{indent}{leaf}: {old.strip()}", f"+{indent}{leaf}: {new.strip()}"]
        else:
            lines.append(f"+{part.strip()}")
    return head + "".join(f"{line}\n" for line in lines)


def context_of(app: Mapping[str, Any], all_apps: Mapping[str, Mapping[str, Any]]) -> AppContext:
    def paths(a: Mapping[str, Any]) -> tuple[str, ...]:
        src = a["spec"]["source"]
        if src.get("repoURL") != REPO:
            return ()
        base = src["path"]
        return (base, *(f"{base}/{v}" for v in (src.get("helm") or {}).get("valueFiles", [])))

    def spec(a: Mapping[str, Any]) -> dict[str, Any]:
        src = dict(a["spec"]["source"])
        return {"spec": {"sources": [src], "syncPolicy": a["spec"].get("syncPolicy")}}

    snap = snapshot_from_app(app, True, REPO)
    keys = {k: paths(a) for k, a in all_apps.items()}
    # The other apps the default layout has (the commits name their values files).
    return AppContext(
        snap.key, snap.name, snap.namespace, {}, None, (), {k: spec(a) for k, a in all_apps.items()}, keys
    )


@dataclass
class Outcome:
    action: str = "nothing"
    rules: list[str] = field(default_factory=list)
    reverted: set[str] = field(default_factory=set)
    verified: str = ""


def run(sc: Mapping[str, Any]) -> Outcome:
    sc = substitute(sc)
    shows = [(at(s["at"]), _filled(s["application"], s["at"])) for s in sc["argocd_shows"]]
    apps = {snapshot_from_app(a, True, REPO).key: a for _, a in shows}
    for c in commits_of(sc):  # the default layout's other apps, named by the commits' values files
        for f in c.files:
            m = re.match(r"helm/applications/([\w-]+)/values-(\w+)\.yaml", f)
            if m and f"{m[1]}-{m[2]}" not in apps:
                apps[f"{m[1]}-{m[2]}"] = {
                    "metadata": {"name": f"{m[1]}-{m[2]}"},
                    "spec": default_spec(f"{m[1]}-{m[2]}"),
                }
    changes = commits_of(sc)
    trackers: dict[str, detect.AppTracker] = {}
    incidents: dict[str, Incident] = {}
    latest: dict[str, tuple[datetime, dict[str, Any]]] = {}
    after_revert: dict[str, list[tuple[datetime, dict[str, Any]]]] = {}
    for now, app in shows:
        snap = snapshot_from_app(app, True, REPO)
        if sha("r1") in (snap.sync_revision, snap.operation_revision):  # Argo CD after the bot's revert
            after_revert.setdefault(snap.key, []).append((now, app))
            continue
        latest[snap.key] = (now, app)
        tracker, events = detect.observe(trackers.get(snap.key, detect.AppTracker()), snap, now, DETECTION, snap.key)
        trackers[snap.key] = tracker
        for e in events:
            if e.kind in INCIDENT_KINDS and snap.key not in incidents:
                incidents[snap.key] = Incident(
                    len(incidents) + 1, snap.key, e.kind, e.revision, now, None, e.reason, e.evidence
                )
    out = Outcome()
    for key, incident in incidents.items():
        now, app = latest[key]  # the reverter's fresh GET: the app as Argo CD last showed it before any revert
        decision = decide_one(sc, incident, app, apps, changes, now)
        out.rules.append(decision.rule)
        out.action = decision.action.value if out.action in ("nothing", "alert") else out.action
        if decision.action is Action.REVERT:
            out.reverted |= set(decision.culprits)
            for later, shown in after_revert.get(key, []):
                out.verified = verified(sc, shown, later)
    return out


def decide_one(
    sc: Mapping[str, Any],
    incident: Incident,
    app: Mapping[str, Any],
    apps: Mapping[str, Mapping[str, Any]],
    changes: list[ChangedCommit],
    now: datetime,
) -> Any:
    context = context_of(app, apps)
    snap = snapshot_from_app(app, True, REPO)
    old_pods: tuple[str, ...] = ()
    if sc.get("resource_tree") and incident.kind in TREE_KINDS and snap.operation_started_at:
        old_pods = not_from_this_deploy({"nodes": sc["resource_tree"]}, snap.operation_started_at, 2)
    argocd = ArgoCDView(snap, progressive=synced_by_appset(app), old_pods=old_pods)
    in_range = [c for c in changes if _before_or_at(c, incident.revision, changes)]
    newer = tuple(c.commit.sha for c in changes if c not in in_range)
    own = context.paths.get(context.key, ())
    touching_newer = tuple(
        s for s in newer if any(_touches(f, own) for c in changes if c.commit.sha == s for f in c.files)
    )
    texts = {sha(c["id"]): c["changes"] for c in sc["commits"]}
    candidates = tuple(
        Candidate(c.commit, c.files, "".join(patch(path, str(t)) for path, t in texts[c.commit.sha].items()))
        for c in in_range
    )
    git = GitView(sha("c0"), "argocd_history", True, tuple(in_range), head=changes[0].commit.sha, newer=touching_newer,
                  candidates=candidates)  # fmt: skip
    facts = facts_of(incident, context, argocd, git, HISTORY, 3, Watched(REPO, ("main",)))
    decision = decide(facts.policy, RULES, now)
    return held_decision(decision, windows_from(sc, now), incident.detected_at, timedelta(hours=24), now)


def _touches(f: str, own: tuple[str, ...]) -> bool:
    return any(f == p or f.startswith(p + "/") for p in own) and not (
        f.rsplit("/", 1)[-1].startswith("values-") and f not in own
    )


def _before_or_at(c: ChangedCommit, revision: str | None, changes: list[ChangedCommit]) -> bool:
    order = [x.commit.sha for x in changes]  # newest first
    return revision in order and order.index(c.commit.sha) >= order.index(revision)


def verified(sc: Mapping[str, Any], app: Mapping[str, Any], now: datetime) -> str:
    """What the verification says of the revert r1 at this observation."""
    snap = snapshot_from_app(app, True, REPO)
    revert = sha("r1")
    return verdict_of(snap, revert, lambda rev: rev == revert, (), now + timedelta(minutes=10), now).result.value


def windows_from(sc: Mapping[str, Any], now: datetime) -> Hold | None:
    """The scenario's `other_facts` answers of GET .../syncwindows (the app's, the project's), as Argo CD sends them
    ("[...same...]" in a scenario stands for the active windows)."""
    answer: dict[str, Any] | None = None
    project: list[dict[str, Any]] = []
    for fact in sc.get("other_facts") or []:
        m = re.match(r"GET /api/v1/(applications|projects)/[\w-]+/syncwindows → (.*)$", fact)
        if not m:
            continue
        text = m[2].replace('"assignedWindows":[...same...]', '"assignedWindows":"same"')
        body = json.loads(text)
        if m[1] == "applications":
            if body.get("assignedWindows") == "same":
                body["assignedWindows"] = body.get("activeWindows")
            answer = body
        else:
            project = body.get("windows") or []
    return window_hold(windows_of(answer, project), now) if answer else None


def expected_ok(sc: Mapping[str, Any], got: Outcome) -> bool:
    want = sc["expected"]
    reverted = {sha(c) for c in want.get("reverted") or []}
    if got.reverted != reverted:
        return False
    action = want["action"]
    if sc["id"] == "revert-restores-live-no-sync" and got.verified != "restored":
        return False
    if action == "revert":
        return got.action == "revert"
    if action == "wait":
        return got.action in ("wait", "nothing")
    if action == "alert":
        return got.action == "alert"
    return got.action in ("nothing", "alert")


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s["id"] for s in SCENARIOS])
def test_independent_scenario(sc: Mapping[str, Any]) -> None:
    got = run(sc)
    assert expected_ok(sc, got), json.dumps(
        {"expected": sc["expected"]["action"], "reverted": sc["expected"].get("reverted"), "got": got.action,
         "rules": got.rules, "got_reverted": sorted(got.reverted), "verified": got.verified}
    )  # fmt: skip
