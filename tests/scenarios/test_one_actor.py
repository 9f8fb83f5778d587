"""One actor per store and per clone: `run --once` and `check` beside a running daemon, on real git.
Both failed on main before issue 25 (see the commit message)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from click.testing import CliRunner

from tests.scenarios.test_branch_rules import on_failure
from tests.support.revert_world import Scenario
from tests.support.waiting import wait_for
from watcher.cli import main
from watcher.run.daemon import Daemon, OnceSummary
from watcher.sim.world import SimWorld


def test_run_once_beside_a_running_daemon_only_looks(world: SimWorld, scenario: Callable[..., Scenario]) -> None:
    """`run --once` on the daemon's SQLite store and clone, at the moment the daemon detects a failure: one
    decision for the incident (the daemon's), no circuit opened, --once says it only looked."""
    s = scenario()
    once: list[OnceSummary] = []
    s.start(before=on_failure("plate-api-stg", lambda: once.append(Daemon(s.settings).run_once())))
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed")[0]
    assert row.culprits == (bad,)
    # the refused sync never reached the cluster, so the revert needs no sync: verified as "restored"
    wait_for(lambda: s.d.store.audit.reverts()[0].verify_result == "restored", what="revert verified")
    [summary] = once
    assert not summary.failed and summary.handled == ()
    assert "another replica is the leader" in summary.lines()[2]
    decisions = s.d.store.audit.decisions(incident_id=row.incident_id)
    assert [d.rule for d in decisions] == ["culprit_found"]
    assert s.d.store.audit.circuit() is None and len(s.bot_commits()) == 1


def test_check_with_another_url_leaves_the_daemons_clone_alone(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    s = scenario().start()
    clone = s.settings.git.clone_dir
    env = {
        "WATCHER_ARGOCD__URL": world.argocd_url,
        "WATCHER_GIT__URL": "http://127.0.0.1:9/elsewhere.git",
        "WATCHER_GIT__CLONE_DIR": str(clone),
    }
    result = CliRunner().invoke(main, ["check"], env=env)
    assert "FAIL git" in result.output, result.output
    url = subprocess.run(["git", "-C", str(clone), "config", "remote.origin.url"], capture_output=True, text=True)
    assert url.stdout.strip() == world.repo_url
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    row = wait_for(lambda: s.revert_rows("pushed"), what="revert pushed by the daemon, to its own remote")[0]
    assert row.culprits == (bad,) and s.remote_log()[0][0] == row.revert_sha
