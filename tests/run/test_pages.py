"""The pages: the view models on plain data (escaping, clipping, paging, filters, the story's order), and the
rendered HTML over a real store through Starlette's test client (escaped, no script, strict CSP, read-only)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from watcher.adapters.gitrepo import GitUnavailable
from watcher.core.detect import AppTracker
from watcher.core.notices import CommitRef, Notice, Severity
from watcher.core.slack_message import Links, blocks_for, links_for
from watcher.domain import (
    Action,
    AppSnapshot,
    DecisionRecord,
    Event,
    EventKind,
    Health,
    Incident,
    RevertMode,
    RevertRecord,
    RevertState,
    SyncStatus,
    VerifyResult,
)
from watcher.ports import FleetHealth, FleetStatus
from watcher.run import app_view, fleet_view, incident_view, page_text
from watcher.run.pages import DiffCache
from watcher.run.web import BackgroundServer, build_app
from watcher.settings import SettingsError, load_settings
from watcher.store import Store

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
HOSTILE = 'scale down <script>alert(1)</script> <img src=x onerror="alert(2)"> \u202egnp.exe'
BAD, GOOD, REVERT = "b" * 40, "a" * 40, "c" * 40
LINKS = Links("https://argocd.example.com", "https://github.com/acme/gitops/commit/")


def snap(
    name: str, namespace: str = "argocd", project: str = "default", health: Health = Health.HEALTHY
) -> AppSnapshot:
    return AppSnapshot(name, namespace, project, SyncStatus.SYNCED, GOOD, health)


def fleet_of(apps: list[AppSnapshot], failing: tuple[str, ...] = ()) -> FleetStatus:
    trackers = {s.key: AppTracker(last=s, deployed_revision=GOOD, deployed_at=NOW - timedelta(hours=1)) for s in apps}
    return FleetStatus(trackers, {(k, "sync_failed"): 1 for k in failing}, {}, {})


def env_of(key: str) -> str:
    return key.rsplit("-", 1)[-1]


def page(status: FleetStatus, **query: str) -> fleet_view.FleetPage:
    return fleet_view.fleet_page(status, env_of, fleet_view.Filters.parse(query), [], [], {}, None, [], LINKS, NOW)


# -- text ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "limit", "shown"),
    [
        ("plain", 10, "plain"),
        ("<script>alert(1)</script>", 100, "<script>alert(1)</script>"),  # escaping is the template's job
        ("abc\u202edef", 100, "abc<U+202E>def"),  # a right-to-left override never flips what follows
        ("a\u2066b\u2069", 100, "a<U+2066>b<U+2069>"),  # nor an isolate
        ("bell\x07 esc\x1b[31m", 100, "bell<U+0007> esc<U+001B>[31m"),  # nor a terminal's control codes
        ("line one\nline two\ttab", 100, "line one\nline two\ttab"),
        ("x" * 50, 10, "xxxxxxxxxx… (40 more characters)"),
        (None, 10, ""),
    ],
)
def test_untrusted_text_is_made_inert_and_clipped(text: Any, limit: int, shown: str) -> None:
    assert page_text.clean(text, limit) == shown


@pytest.mark.parametrize(
    ("url", "kept"),
    [
        ("https://github.com/acme/gitops/pull/7", True),
        ("http://gitlab.local/x/-/merge_requests/1", True),
        ("javascript:alert(1)", False),
        ("https://x.example/a b", False),
        ('https://x.example/"onmouseover=', False),
        ("data:text/html,<script>", False),
        ("", False),
    ],
)
def test_only_http_links_reach_a_page(url: Any, kept: bool) -> None:
    assert (page_text.safe_url(url) == url) is kept


def test_a_long_diff_is_cut_to_its_bound_and_its_lines_are_classified() -> None:
    patch = "diff --git a/x b/x\n@@ -1 +1 @@\n-old\n+new\n context\n" + "+more\n" * 1000 + "+" + "y" * 5000
    lines, cut = incident_view.diff_lines(patch)
    assert [line.kind for line in lines[:5]] == ["file", "hunk", "del", "add", "context"]
    assert len(lines) == incident_view.DIFF_MAX_LINES and cut == 1006 - incident_view.DIFF_MAX_LINES
    assert all(len(line.text) <= incident_view.DIFF_LINE_MAX + 40 for line in lines)


# -- the fleet: paging and filters -------------------------------------------------------------------------
def test_a_diff_git_could_not_read_in_time_is_left_out_and_read_again_next_time() -> None:
    """The incident page reads the culprit's diff under the clone's lock: a busy clone or a silent remote (a
    GitUnavailable at the git timeout) shows the page without that diff, and the next request asks git again."""
    answers: list[str | Exception] = [
        GitUnavailable("diff of abc: no answer within WATCHER_GIT__TIMEOUT_SECONDS"),
        "+x\n",
    ]
    asked: list[str] = []

    def read(sha: str, paths: Sequence[str]) -> str:
        asked.append(sha)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    diffs = DiffCache(read)
    assert diffs.get("abc", ["apps/a"]) == ""
    assert diffs.get("abc", ["apps/a"]) == "+x\n"
    assert diffs.get("abc", ["apps/a"]) == "+x\n"  # a diff that was read is kept: git is asked twice, not thrice
    assert asked == ["abc", "abc"]


def test_ten_thousand_apps_are_paged_and_the_failing_ones_come_first() -> None:
    apps = [snap(f"app-{i:05d}-{'prod' if i % 2 else 'stg'}") for i in range(10_000)]
    status = fleet_of(apps, failing=("app-09999-prod", "app-05000-stg"))
    first = page(status)
    assert (first.matching, first.pages, len(first.apps)) == (10_000, 100, fleet_view.PAGE_SIZE)
    assert [a.name for a in first.apps[:3]] == ["app-05000-stg", "app-09999-prod", "app-00000-stg"]
    assert first.apps[0].open_incidents == ("sync_failed",)
    last = page(status, page="100")
    assert len(last.apps) == fleet_view.PAGE_SIZE and last.apps[-1].name == "app-09998-stg"
    assert page(status, page="999").page == 100  # past the end: the last page
    assert page(status, page="-1").page == page(status, page="x").page == 1


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({}, ["api-prod", "api-stg", "web-prod", "web-stg"]),
        ({"environment": "prod"}, ["api-prod", "web-prod"]),
        ({"namespace": "team-a"}, ["web-prod", "web-stg"]),
        ({"project": "payments"}, ["api-prod"]),
        ({"environment": "stg", "namespace": "team-a"}, ["web-stg"]),
        ({"environment": "nowhere"}, []),
    ],
)
def test_filters_by_environment_namespace_and_project(query: dict[str, str], names: list[str]) -> None:
    status = fleet_of(
        [
            snap("api-prod", project="payments"),
            snap("api-stg"),
            snap("web-prod", namespace="team-a"),
            snap("web-stg", namespace="team-a"),
        ]
    )
    view = page(status, **query)
    assert [a.name for a in view.apps] == names
    assert view.total_apps == 4 and view.choices["environment"] == ["prod", "stg"]
    assert view.choices["namespace"] == ["argocd", "team-a"]


def test_a_page_link_keeps_the_filters() -> None:
    assert fleet_view.Filters("prod", "team a", "", 1).query(3) == "environment=prod&namespace=team+a&page=3"
    assert fleet_view.app_link("team-a/web-prod") == "/ui/apps/team-a/web-prod"
    assert fleet_view.app_link("web-prod") == "/ui/apps/argocd/web-prod"
    assert fleet_view.key_of("argocd", "web-prod") == "web-prod" and fleet_view.key_of("team-a", "web") == "team-a/web"


# -- one incident: the story -------------------------------------------------------------------------------
def incident(resolved: bool = True) -> Incident:
    evidence: dict[str, object] = {
        "message": "one or more objects failed to apply " + "<b>x</b>" * 600,
        "health": "Degraded",
        "onset": (NOW - timedelta(seconds=50)).isoformat(),
        "paths": ["helm/applications/plate-api/values-stg.yaml"],
        "commit": {"sha": GOOD, "author": "Dev Three", "subject": "innocent head"},
        "failing_pods": [{"name": "api-1", "reason": "CrashLoopBackOff", "restarts": 4, "images": ["api:1.2"]}],
        "degraded_resources": ["apps/Deployment/stg/plate-api"],
    }
    return Incident(
        1, "plate-api-stg", EventKind.SYNC_FAILED, GOOD, NOW - timedelta(seconds=40),
        NOW - timedelta(seconds=5) if resolved else None, "sync failed", evidence, "recovered at cccccccccccc",
    )  # fmt: skip


def decision(rule: str = "culprit_found") -> DecisionRecord:
    blame = {
        "outcome": "culprits",
        "reason": "1 commit changed plate-api-stg",
        "last_good_revision": "d" * 40,
        "culprits": [
            {
                "sha": BAD,
                "author": "Dev <b>Two</b>",
                "subject": HOSTILE,
                "committed_at": (NOW - timedelta(minutes=2)).isoformat(),
            }
        ],
    }
    return DecisionRecord(
        1, 1, "plate-api-stg", NOW - timedelta(seconds=30), Action.REVERT, rule, "revert it", RevertMode.PUSH,
        {"blame": blame, "still_failing": True, "opt_in": None},
    )  # fmt: skip


def revert() -> RevertRecord:
    return RevertRecord(
        1, 1, "plate-api-stg", RevertMode.PUSH, (BAD,), RevertState.PUSHED, NOW - timedelta(seconds=29),
        NOW - timedelta(seconds=28), REVERT, GOOD, verified_at=NOW - timedelta(seconds=4),
        verify_result=VerifyResult.HEALED,
    )  # fmt: skip


def events() -> list[Event]:
    return [
        Event("plate-api-stg", EventKind.DEPLOY_STARTED, GOOD, NOW - timedelta(seconds=59), "sync operation running",
              {"started_at": (NOW - timedelta(seconds=60)).isoformat()}),
        Event("plate-api-stg", EventKind.SYNC_FAILING, GOOD, NOW - timedelta(seconds=55), "retrying (attempt 1)"),
        Event("plate-api-stg", EventKind.RECOVERED, REVERT, NOW - timedelta(seconds=5), "synced and healthy"),
    ]  # fmt: skip


def test_the_story_is_told_in_order_with_every_step_recorded() -> None:
    view = incident_view.incident_page(
        incident(), [decision()], [revert()], events(), {}, LINKS, "stg", NOW, ("C0123", "1733.5")
    )
    assert [s.what for s in view.steps] == [
        "Committed", "Sync tried", "Argo CD saw it", "Sync failing", "Failing since", "Detected", "Blamed",
        "Decided", "Reverted", "Deployed", "Resolved", "Verified",
    ]  # fmt: skip
    assert view.steps[0].at.ago == "2 min ago" and view.steps[0].at.text == "2026-12-08 11:58:00 UTC"
    assert view.culprits[0].link == f"https://github.com/acme/gitops/commit/{BAD}"
    assert view.reverts[0].revert_link == f"https://github.com/acme/gitops/commit/{REVERT}"
    assert view.slack_thread == "https://slack.com/archives/C0123/p17335"
    assert view.argocd_link == "https://argocd.example.com/applications/argocd/plate-api-stg"
    assert view.failing_pods == (("api-1", "CrashLoopBackOff", "4", "api:1.2"),)
    assert view.failing_objects == ("apps/Deployment/stg/plate-api",)
    assert view.decision is not None and view.decision.rule == "culprit_found" and view.decision.advice
    assert view.argocd_message.endswith("more characters)") and len(view.argocd_message) < page_text.MESSAGE_MAX + 40


def test_a_step_nothing_recorded_is_left_out_not_guessed() -> None:
    view = incident_view.incident_page(incident(resolved=False), [], [], [], {}, Links("", None), "", NOW)
    assert [s.what for s in view.steps] == ["Failing since", "Detected"]
    assert view.culprits == () and view.decision is None and view.slack_thread is None and view.argocd_link is None


@pytest.mark.parametrize("thread", [("C0123", "17335"), ("#deploys", "1.2"), ("C0123", "1.2/../x")])
def test_a_slack_link_is_made_only_from_a_channel_id_and_a_timestamp(thread: tuple[str, str]) -> None:
    assert incident_view.incident_page(incident(), [], [], [], {}, LINKS, "", NOW, thread).slack_thread is None


def test_dora_over_the_recorded_history() -> None:
    deployed = [
        Event("a", EventKind.DEPLOYED, GOOD, NOW, "ok", {"finished_at": NOW.isoformat(),
              "commit": {"committed_at": (NOW - timedelta(minutes=10)).isoformat()}}),
        Event("a", EventKind.DEPLOYED, GOOD, NOW, "ok", {"finished_at": NOW.isoformat(),
              "commit": {"committed_at": (NOW - timedelta(minutes=20)).isoformat()}}),
        Event("a", EventKind.DEPLOYED, GOOD, NOW, "ok", {}),
    ]  # fmt: skip
    figures = app_view.dora(deployed, [incident()])
    assert (figures.deployments, figures.change_failures) == (3, 1)
    assert figures.change_failure_rate == "25 %"  # a sync failure never deployed: 1 of 3 + 1 attempts
    assert figures.lead_time == "15 min" and figures.time_to_restore == "45 s"
    assert app_view.dora([], []) == app_view.Dora(0, 0, "-", "-", "-")


# -- rendered over a real store ---------------------------------------------------------------------------
class StaticFleet:
    def __init__(self, status: FleetStatus):
        self._status = status

    def status(self) -> FleetStatus:
        return self._status

    def environment(self, key: str) -> str:
        return env_of(key)

    def health(self) -> FleetHealth:
        return FleetHealth({}, {}, {})


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    i = incident()
    event = Event(i.app, i.kind, i.revision, i.detected_at, HOSTILE, i.evidence)
    store.detection.record(i.app, None, [event], False, i.detected_at)
    [stored] = store.detection.incidents()
    d = decision()
    store.audit.record_decision(stored.id, d.app, d.at, d.action, d.rule, d.reason, d.mode, d.evidence)
    rid = store.audit.start_revert(stored.id, d.app, RevertMode.PUSH, [BAD], NOW)
    store.audit.finish_revert(rid, RevertState.PULL_REQUEST_OPENED, NOW, url="javascript:alert(3)")
    store.slack.save_thread("C0DEPLOYS", "1733650000.000100", d.app, GOOD, stored.id, {}, NOW)
    store.slack.resolve_thread(store.slack.open_threads(d.app)[0].id, NOW)  # resolved: still linked
    status = fleet_of([snap("plate-api-stg", health=Health.DEGRADED)], failing=("plate-api-stg",))
    patch = f"diff --git a/v b/v\n-replicaCount: 1\n+replicaCount: -1 {HOSTILE}\n"
    app = build_app(store, StaticFleet(status), lambda: b"", {}, links=LINKS, patches=lambda sha, paths: patch)
    server = BackgroundServer(app, "127.0.0.1", 0)
    server.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as c:
            yield c
    finally:
        server.stop()


def test_every_page_escapes_git_and_argocd_text_and_forbids_scripts(client: httpx.Client) -> None:
    for path in ("/ui/", "/ui/incidents/1", "/ui/apps/argocd/plate-api-stg"):
        r = client.get(path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "style-src 'self'" in csp and "script-src" not in csp
        assert "<script" not in r.text and "onerror=" not in r.text.replace("onerror=&#34;", ""), path
        assert "\u202e" not in r.text and 'href="javascript:' not in r.text, path
    page_text = client.get("/ui/incidents/1").text
    subject = "scale down &lt;script&gt;alert(1)&lt;/script&gt; &lt;img src=x onerror=&#34;alert(2)&#34;&gt;"
    assert f"{subject} &lt;U+202E&gt;gnp.exe" in page_text
    assert "Dev &lt;b&gt;Two&lt;/b&gt;" in page_text and "+replicaCount: -1 scale down &lt;script&gt;" in page_text
    assert f'title="{BAD}"' in page_text and "culprit_found" in page_text
    assert 'href="https://slack.com/archives/C0DEPLOYS/p1733650000000100"' in page_text
    css = client.get("/ui/static/pages.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and "#18be94" in css.text


def test_the_pages_only_read(client: httpx.Client) -> None:
    for path in ("/ui/", "/ui/incidents/1", "/ui/apps/argocd/plate-api-stg"):
        assert client.post(path).status_code == 405
    assert "<form" not in client.get("/ui/incidents/1").text
    assert 'method="get"' in client.get("/ui/").text  # the only form: the filters


@pytest.mark.parametrize(
    "path", ["/ui/incidents/99", "/ui/incidents/abc", "/ui/incidents/%3Cscript%3E", "/ui/apps/x/y"]
)
def test_an_unknown_page_is_a_404_that_echoes_nothing_harmful(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404 and "<script" not in r.text and "content-security-policy" in r.headers


# -- Slack and the setting ---------------------------------------------------------------------------------
def test_slack_links_each_incident_to_its_page_when_the_pages_have_an_address() -> None:
    n = Notice(EventKind.SYNC_FAILED, "plate-api-stg", Severity.CRITICAL, "Sync failed", "d", incident_id=7,
               culprits=(CommitRef(BAD, "Dev", "s"),))  # fmt: skip
    with_pages = str(blocks_for(n, links_for("", "git@github.com:acme/gitops.git", pages="https://sw.example.com")))
    assert "<https://sw.example.com/ui/incidents/7|The whole story>" in with_pages
    assert "/ui/incidents" not in str(blocks_for(n, links_for("", "git@github.com:acme/gitops.git")))


def test_the_external_url_is_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_HTTP__EXTERNAL_URL", "https://sw.example.com/")
    assert load_settings().http.external_url == "https://sw.example.com"
    monkeypatch.setenv("WATCHER_HTTP__EXTERNAL_URL", "sw.example.com")
    with pytest.raises(SettingsError, match=r"^WATCHER_HTTP__EXTERNAL_URL: .*https?://"):
        load_settings()
