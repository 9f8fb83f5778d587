"""Slack: messages an on-call engineer can act on, safe against hostile text, routed, de-duplicated, delivered."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.support.fake_slack import TOKEN, FakeSlack, block_kit_problems, fake_slack
from watcher.core.notices import (
    Notice,
    Routing,
    Severity,
    destination,
    from_event,
    from_report,
    notice_from_json,
    notice_to_json,
    route,
    routing_from,
)
from watcher.core.slack_message import blocks_for, fallback_text, links_for
from watcher.domain import Commit, Event, EventKind, RevertReport, RevertStep, StepDetail
from watcher.logs import REDACTOR
from watcher.metrics.registry import Metrics
from watcher.notify.notifier import SlackNotifier
from watcher.run.slack_transport import transport_for
from watcher.settings import Settings, SettingsError, load_settings
from watcher.store import Store

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
HEAD = "c" * 40
BAD = "b" * 40


def report(
    step: RevertStep, culprits: tuple[Commit, ...] = (), app: str = "plate-api-prod", incident: int = 7, **detail: Any
) -> RevertReport:
    """A revert report as the reverter makes one, on incident `incident` of a failed sync of HEAD."""
    return RevertReport(step, incident, app, EventKind.SYNC_FAILED, HEAD, culprits, StepDetail(**detail))


def commit(sha: str, author: str = "", subject: str = "") -> Commit:
    return Commit(sha, author, T0, subject)


LINKS = links_for("https://argocd.example.com", "git@github.com:acme/gitops.git")
OUR_LINKS = re.compile(r"<(https://argocd\.example\.com/|https://github\.com/acme/gitops/commit/)[^<>|]*\|[^<>]*>")

HOSTILE = [
    "<!channel> deploy now",
    "<!here|here> please",
    "@here @channel @everyone look",
    "<https://evil.example/steal|https://github.com/acme/gitops>",
    "<@U0ADMIN> approve",
    "<!subteam^S0ONCALL>",
    "&lt;!channel&gt; pre-escaped",
    "```<!channel>``` in a code block",
    "*bold* _it_ ~strike~ > quote",
]


def failed_event(message: str = "one or more objects failed to apply", **extra: Any) -> Event:
    evidence: dict[str, Any] = {"message": message, "onset": T0.isoformat()}
    evidence |= {
        "commit": {"sha": HEAD, "author": "Dev Three", "subject": "bump redis", "committed_at": T0.isoformat()}
    }
    return Event(
        "plate-api-prod", EventKind.SYNC_FAILED, HEAD, T0 + timedelta(seconds=5), "sync failed", evidence | extra
    )


def all_text(blocks: list[dict[str, Any]]) -> str:
    out = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            if isinstance(v.get("text"), str):
                out.append(v["text"])
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(blocks)
    return "\n".join(out)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_commit_and_argocd_text_cannot_ping_or_disguise_a_link(hostile: str) -> None:
    evidence = f"Service/plate-prod/plate-api refused; Replace=true was added by {BAD[:7]} (fix: {hostile})"
    notice = from_report(
        report(
            RevertStep.REVERT_PUSHED,
            (commit(BAD, f"Mallory {hostile}", f"fix: {hostile}"),),
            revert="d" * 40,
            evidence=evidence,
        )
    )
    assert notice is not None
    blocks = blocks_for(notice, LINKS) + blocks_for(from_event(failed_event(hostile)), LINKS)  # type: ignore[arg-type]
    text = all_text(blocks) + fallback_text(notice)
    leftover = OUR_LINKS.sub("", text)
    assert "<" not in leftover and ">" not in leftover, leftover  # every <...> is a link we built
    assert not re.search(r"@(here|channel|everyone)\b", text, re.IGNORECASE)
    assert "Mallory" in text and "fix:" in text  # the text is shown, defused, not dropped
    assert block_kit_problems(blocks) == []


def test_messages_fit_block_kit_limits_whatever_the_input_size() -> None:
    culprits = tuple(commit(f"{i:040x}", "A" * 500, "S&<>" * 2000) for i in range(40))
    notice = from_report(report(RevertStep.REVERT_FAILED, culprits, "x" * 300 + "-prod", error="E<>&" * 50_000))
    assert notice is not None
    blocks = blocks_for(notice, LINKS, resolved="r" * 10_000)
    assert block_kit_problems(blocks) == []
    text = all_text(blocks)
    assert "… and 35 more" in text  # the list is cut, and says so
    assert "…" in blocks[0]["text"]["text"]  # the header is cut to 150
    big = from_event(failed_event("m&" * 100_000))
    assert big is not None and block_kit_problems(blocks_for(big, LINKS)) == []


@pytest.mark.parametrize(
    "event_kind", [k for k in EventKind if k not in (EventKind.DEPLOY_STARTED, EventKind.DEPLOYED)]
)
def test_every_detector_notice_names_app_environment_and_links_to_argocd(event_kind: EventKind) -> None:
    e = Event("plate-web-stg", event_kind, HEAD, T0, "reason", {"message": "msg", "health_message": "pods crash"})
    notice = from_event(e)
    assert notice is not None
    blocks = blocks_for(notice, LINKS)
    assert block_kit_problems(blocks) == []
    assert "plate-web-stg (stg)" in blocks[0]["text"]["text"]
    assert "https://argocd.example.com/applications/argocd/plate-web-stg" in all_text(blocks)


def test_the_culprit_is_the_blamed_commit_with_a_link_not_argocds_head() -> None:
    incident = from_event(failed_event())
    assert incident is not None and incident.revision_commit is not None
    shown = all_text(blocks_for(incident, LINKS))
    assert "Commit deployed" in shown and "head of the push" in shown  # not called the culprit
    decided = from_report(report(RevertStep.ALERT_ONLY, rule="too_many_candidates", reason="4 commits changed it"))
    reverted = from_report(report(RevertStep.REVERT_PUSHED, (commit(BAD, "Dev Two", "scale"),), revert="d" * 40))
    assert decided is not None and decided.severity is Severity.WARNING
    assert reverted is not None
    text = all_text(blocks_for(reverted, LINKS))
    assert f"<https://github.com/acme/gitops/commit/{BAD}|`{BAD[:10]}`> by Dev Two: scale" in text
    assert f"https://github.com/acme/gitops/commit/{'d' * 40}" in text


def test_commit_links_only_for_hosts_whose_web_ui_is_known() -> None:
    assert links_for("", "https://gitlab.com/group/sub/gitops.git").commit("abc") == (
        "https://gitlab.com/group/sub/gitops/-/commit/abc"
    )
    assert links_for("", "git://127.0.0.1:9418/gitops.git").commit("abc") is None
    assert links_for("", "ssh://git@git.corp/x.git", "https://git.corp/x", "gitlab").commit("abc") == (
        "https://git.corp/x/-/commit/abc"
    )


def test_routing_by_app_and_severity() -> None:
    routing = routing_from(
        [
            {"apps": "*-prod", "channel": "#oncall", "min_severity": "critical"},
            {"apps": "*-prod", "channel": "#deploys-prod", "min_severity": "info"},
            {"apps": "*-stg", "channel": "#deploys-stg", "min_severity": "warning"},
            {"apps": "sandbox-*", "channel": "", "min_severity": "off"},
        ],
        "#deploys",
        "critical",
    )

    def n(app: str, severity: Severity) -> Notice:
        return Notice(EventKind.SYNC_FAILED, app, severity, "h", "d")

    assert route(n("plate-api-prod", Severity.CRITICAL), routing) == "#oncall"
    assert route(n("plate-api-prod", Severity.INFO), routing) == "#deploys-prod"
    assert route(n("plate-api-stg", Severity.WARNING), routing) == "#deploys-stg"
    assert route(n("plate-api-stg", Severity.INFO), routing) is None  # below every bar that matches it
    assert route(n("sandbox-x", Severity.CRITICAL), routing) is None  # muted
    assert route(n("other", Severity.WARNING), routing) is None  # below the default bar
    assert route(n("other", Severity.CRITICAL), routing) == "#deploys"
    assert route(n("plate-api-stg", Severity.CRITICAL), routing) == "#deploys-stg"


def test_a_recovery_goes_where_the_alerts_went_and_a_removal_only_there() -> None:
    routing = routing_from([], "#deploys", "warning")
    recovered = Notice(EventKind.RECOVERED, "a-prod", Severity.INFO, "Recovered", "d", resolves=True)
    removed = Notice(EventKind.APP_REMOVED, "a-prod", Severity.INFO, "x", "d", resolves=True, only_to_close=True)
    assert destination(recovered, ["C0PROD", "C0OTHER"], routing) == "C0PROD"  # below the bar, still told
    assert destination(recovered, [], routing) is None  # nothing was open: the bar applies
    assert destination(removed, ["C0PROD"], routing) == "C0PROD"
    assert destination(removed, [], Routing((), "#deploys", Severity.INFO)) is None


def test_bad_slack_settings_fail_with_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_SLACK__BOT_TOKEN", TOKEN)
    with pytest.raises(SettingsError, match=r"^WATCHER_SLACK__CHANNEL: .*#deploys$"):
        load_settings()
    monkeypatch.delenv("WATCHER_SLACK__BOT_TOKEN")
    monkeypatch.setenv("WATCHER_SLACK__ROUTES", '[{"apps": "*-prod", "chanel": "#p"}]')
    with pytest.raises(SettingsError, match=r"^WATCHER_SLACK__ROUTES__0__CHANEL: "):
        load_settings()


# -- delivery over loopback ----------------------------------------------------------------------------------
def notifier(tmp_path: Path, slack: FakeSlack, *, bot: bool, store: Store | None = None, **extra: Any) -> SlackNotifier:
    options: dict[str, Any] = {"retries": 3, "timeout_seconds": 5} | extra
    if bot:
        options |= {"bot_token": TOKEN, "channel": "#deploys", "api_url": slack.api_url}
    else:
        options |= {"webhook_url": slack.webhook("default")}
    settings = Settings(
        argocd={"url": "https://argocd.example.com", "token": "argocd-secret-token"},
        git={"url": "git@github.com:acme/gitops.git"},
        slack=options,
    )
    REDACTOR.add(settings.secret_values())
    transport = transport_for(settings)
    assert transport is not None
    n = SlackNotifier(settings, store or Store(f"sqlite:///{tmp_path}/state.db"), Metrics(), transport)
    n.start()
    return n


def count(n: SlackNotifier, outcome: str) -> float:
    return n.metrics.registry.get_sample_value("sync_watcher_slack_notices_total", {"outcome": outcome}) or 0.0


def test_webhook_honours_429_retry_after_and_retries_server_errors(tmp_path: Path) -> None:
    with fake_slack() as slack:
        n = notifier(tmp_path, slack, bot=False)
        slack.script = [(429, {"Retry-After": "1"}, "rate_limited"), (500, {}, "oops")]
        n.on_event(failed_event())
        posted = slack.wait(1)
        n.stop()
    times = [t for _, t in slack.requests]
    assert len(times) == 3 and times[1] - times[0] >= 1.0  # waited as told before the retry
    assert posted[0].via == "webhook" and "Sync failed: plate-api-prod" in posted[0].all_text
    assert count(n, "sent") == 1 and count(n, "failed") == 0


def test_undeliverable_notice_is_counted_and_logged_and_the_next_one_still_goes(tmp_path: Path) -> None:
    with fake_slack() as slack, capture_logs() as logs:
        n = notifier(tmp_path, slack, bot=False, retries=1)
        slack.script = [(404, {}, "no_service")]  # a 404 is final: not retried
        n.on_event(failed_event())
        n.on_event(Event("plate-web-prod", EventKind.SYNC_FAILED, HEAD, T0, "sync failed", {}))
        slack.wait(1)
        assert n.wait_idle(10)
        n.stop()
    assert [m.all_text.count("plate-web-prod") > 0 for m in slack.messages] == [True]
    assert count(n, "failed") == 1 and count(n, "sent") == 1
    assert [p for p, _ in slack.requests].count(slack.requests[0][0]) == 2  # one try each
    failed = [e for e in logs if e["event"] == "slack_delivery_failed"]
    assert len(failed) == 1 and failed[0]["app"] == "plate-api-prod" and "404" in failed[0]["error"]
    assert "/services/T000" not in str(logs)  # the webhook URL is a secret


def test_a_full_queue_drops_and_counts_instead_of_blocking_the_watcher(tmp_path: Path) -> None:
    with fake_slack() as slack:
        n = notifier(tmp_path, slack, bot=False, queue_size=3)
        gate = threading.Event()
        real_post = n.transport.post
        n.transport.post = lambda *a, **k: (gate.wait(10), real_post(*a, **k))[1]  # type: ignore[method-assign]
        started = time.monotonic()
        for i in range(10):
            n.on_event(Event(f"app-{i}-prod", EventKind.SYNC_FAILED, HEAD, T0, "sync failed", {}))
        assert time.monotonic() - started < 1.0  # submitting never waits for Slack
        gate.set()
        assert n.wait_idle(10)
        n.stop()
    assert count(n, "dropped") >= 6 and count(n, "sent") + count(n, "dropped") == 10
    assert len(slack.messages) == count(n, "sent")


def test_bot_keeps_an_incident_in_one_thread_and_marks_the_parent_resolved(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/state.db")
    with fake_slack() as slack:
        n = notifier(tmp_path, slack, bot=True, store=store)
        n.on_event(Event("plate-api-prod", EventKind.SYNC_FAILING, HEAD, T0, "retrying (attempt 2)", {}))
        n.on_event(failed_event("secret argocd-secret-token leaked in a message"))
        n.on_report(report(RevertStep.REVERT_PUSHED, (commit(BAD),), incident=1, revert="d" * 40))
        n.on_event(
            Event(
                "plate-api-prod",
                EventKind.RECOVERED,
                "d" * 40,
                T0 + timedelta(minutes=3, seconds=12),
                "synced and healthy",
                {"incident_onset": T0.isoformat()},
            )
        )
        messages = slack.wait(4)
        assert n.wait_idle(10)
        n.stop()
    parent, *replies = messages
    assert parent.channel == "C0DEPLOYS" and parent.thread_ts is None
    assert [r.thread_ts for r in replies] == [parent.ts] * 3
    assert "Recovered" in replies[-1].all_text and "after 3m 12s" in replies[-1].all_text
    assert len(parent.updates) == 1 and "Resolved" in all_text(parent.updates[0])
    assert all("argocd-secret-token" not in m.all_text for m in messages)
    thread = store.slack.open_threads("plate-api-prod")
    assert thread == []  # resolved; the stored ts is what the update used
    # A restart with the same store posts nothing twice.
    with fake_slack() as slack2:
        again = notifier(tmp_path, slack2, bot=True, store=store)
        again.on_event(failed_event())
        assert again.wait_idle(10)
        again.stop()
    assert slack2.messages == [] and count(again, "deduplicated") == 1


def test_end_to_end_a_bad_commit_becomes_one_thread_naming_the_culprit(scenario: Any) -> None:
    """The daemon, the simulator, real git: the thread says what broke, which commit, what was done, and closes."""
    from tests.support.waiting import wait_for

    with fake_slack() as slack:
        s = scenario()
        s.settings = s.settings.model_copy(
            update={
                "slack": Settings(
                    slack={
                        "bot_token": TOKEN,
                        "channel": "#deploys",
                        "api_url": slack.api_url,
                        "min_severity": "warning",
                    }
                ).slack.model_copy(update={"routes": []})
            }
        )
        s.start()
        bad = s.commit("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)}, "Dev Two")
        head = s.commit("plate-web-stg: bump to 1.26.0", {"plate-web-stg": ("image.tag", "1.26.0")}, "Dev One")
        s.world.work.push()
        wait_for(lambda: any("Recovered" in m.all_text for m in slack.messages), 60, "recovery message")
        assert s.d.slack is not None and s.d.slack.wait_idle(10)
        messages = list(slack.messages)
    parent = messages[0]
    thread = [m for m in messages if m.thread_ts == parent.ts]
    assert parent.thread_ts is None and "plate-api-stg (stg)" in parent.all_text
    assert head[:10] in parent.all_text and "Commit deployed" in parent.all_text  # Argo CD's head, labelled so
    reverted = next(m for m in thread if "Reverted" in m.all_text)
    assert bad[:10] in reverted.all_text and "Dev Two" in reverted.all_text  # the culprit is the blamed commit
    assert head[:10] not in reverted.all_text.split("Culprit")[1].split("Revert ")[0]
    assert "Recovered" in thread[-1].all_text and parent.updates and "Resolved" in all_text(parent.updates[-1])
    assert all(not block_kit_problems(m.blocks) for m in messages)
    assert not [m for m in messages if "plate-web-stg" in m.blocks[0]["text"]["text"]]  # healthy apps stay quiet


def test_an_app_removed_while_failing_closes_its_thread_and_is_otherwise_not_news(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/state.db")
    with fake_slack() as slack:
        n = notifier(tmp_path, slack, bot=True, store=store)
        n.on_event(failed_event())
        n.on_event(Event("plate-api-prod", EventKind.APP_REMOVED, None, T0, "gone", {}))
        n.on_event(Event("plate-web-prod", EventKind.APP_REMOVED, None, T0, "gone", {}))  # nothing was open
        slack.wait(2)
        assert n.wait_idle(10)
        n.stop()
    parent, removed = slack.messages
    assert removed.thread_ts == parent.ts and "Application removed" in removed.all_text
    assert parent.updates and "Resolved" in all_text(parent.updates[0])
    assert store.slack.open_threads("plate-api-prod") == [] and count(n, "filtered") == 1


def test_a_new_leader_sends_recent_news_its_predecessor_recorded_but_never_sent(tmp_path: Path) -> None:
    """The events table is the outbox: what was recorded and not marked sent goes out once, and only if fresh."""
    store = Store(f"sqlite:///{tmp_path}/state.db")
    now = datetime.now(UTC)
    fresh = Event("plate-api-prod", EventKind.SYNC_FAILED, HEAD, now - timedelta(minutes=2), "sync failed", {})
    stale = Event("plate-web-prod", EventKind.SYNC_FAILED, HEAD, now - timedelta(minutes=20), "sync failed", {})
    deployed = Event("plate-llm-prod", EventKind.DEPLOYED, HEAD, now - timedelta(minutes=1), "synced", {})
    for e in (fresh, stale, deployed):
        store.detection.record(e.app, None, [e], False, e.at)
    with fake_slack() as slack:
        n = notifier(tmp_path, slack, bot=True, store=store)
        assert n.replay(now) == 1  # neither the stale failure nor the deploy (no news)
        assert n.wait_idle(10)
        assert [m.text.split(" - ")[0] for m in slack.messages] == ["Sync failed: plate-api-prod"]
        assert n.replay(now) == 1 and n.wait_idle(10)  # a second take-over: already sent, not again
        n.stop()
    assert len(slack.messages) == 1 and count(n, "deduplicated") == 1


def test_a_notifier_that_is_not_the_leader_withholds_and_counts(tmp_path: Path) -> None:
    class Deposed:
        def leading(self) -> bool:
            return False

        def confirm(self) -> bool:
            return False

    with fake_slack() as slack:
        n = notifier(tmp_path, slack, bot=True)
        n.fence = Deposed()
        n.on_event(failed_event())
        assert n.wait_idle(10)
        n.stop()
    assert slack.messages == [] and count(n, "not_leader") == 1
    notice = from_event(failed_event())
    assert notice is not None and not n.store.slack.notification_sent(notice.dedup_key)  # the leader sends it


def test_a_revert_and_a_cluster_alert_show_what_they_rest_on() -> None:
    """The evidence line: the failing object and the culprit's change to it; for a cluster fault, the cause and no
    commit to look at (the reverter passes none)."""
    line = f"Service/plate-prod/plate-api refused by kubectl replace with Replace=true; added by {BAD[:7]}"
    reverted = from_report(report(RevertStep.REVERT_PUSHED, (commit(BAD, "", "x"),), revert="d" * 40, evidence=line))
    assert reverted is not None and f"*Evidence:* {line}" in all_text(blocks_for(reverted, LINKS))
    cause = "the admission webhook validate.kyverno.svc-fail is unreachable: no commit is at fault"
    alert = from_report(report(RevertStep.ALERT_ONLY, (), rule="cluster_fault", reason=cause, evidence=cause))
    assert alert is not None and alert.culprits == ()
    text = all_text(blocks_for(alert, LINKS))
    assert f"*Evidence:* {cause}" in text and "Culprit" not in text
    assert notice_from_json(notice_to_json(alert)) == alert
