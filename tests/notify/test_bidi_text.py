"""Bidirectional control characters in a commit subject never reach Slack, a pull request or a revert message
raw: each shows as its name (`<U+202E>`). Failed on main before issue 25 (the character reached Slack)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.notify.test_slack import failed_event, notifier
from tests.support.fake_slack import fake_slack
from watcher.core.revert_message import revert_message, revert_title
from watcher.domain import Commit, EventKind, Incident

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "fix \u202eyrev" shows as "fix very"
CONTROLS = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F)]
BIDI = re.compile(f"[{''.join(CONTROLS)}]")


@pytest.mark.parametrize("bot", [False, True])
def test_a_right_to_left_override_in_a_commit_subject_reaches_slack_as_its_name(tmp_path: Path, bot: bool) -> None:
    base = failed_event()
    commit = dict(base.evidence["commit"])  # type: ignore[call-overload]
    commit |= {"subject": f"bump redis {RLO}6.7 ot", "author": f"Dev{RLO} Three"}
    with fake_slack() as slack:
        n = notifier(tmp_path, slack, bot=bot)
        n.on_event(failed_event(commit=commit))
        posted = slack.wait(1)
        n.stop()
    assert not BIDI.search(posted[0].all_text), posted[0].all_text
    assert "<U+202E>" in posted[0].all_text


def test_the_revert_message_and_pull_request_title_show_bidi_controls_by_name() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    culprit = Commit("b" * 40, f"Mallory{RLO}", now, f"harmless {RLO}txet", ("a" * 40,))
    incident = Incident(1, "plate-api-stg", EventKind.SYNC_FAILED, "b" * 40, now, None, "sync failed", {}, uid="u")
    for text in (revert_message("plate-api-stg", incident, [culprit], {}), revert_title("plate-api-stg", [culprit])):
        assert not BIDI.search(text) and "<U+202E>" in text
