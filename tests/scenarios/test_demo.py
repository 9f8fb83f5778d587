"""The demo is the end-to-end test: a newcomer's first run must show the whole loop, fast, and clean up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.waiting import wait_for
from watcher.adapters.argocd import LIST_FIELDS
from watcher.demo import argocd_message
from watcher.sim.gitserver import free_port


def test_demo_json_shows_the_whole_loop_and_leaves_nothing_running() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "watcher", "demo", "--json"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    bad = next(c for c in result["commits"] if not c["good"])
    detected = result["detected"]
    assert detected["app"] == "plate-api-stg" and detected["kind"] == "sync_failed"
    assert detected["culprit_matches_bad_commit"]
    assert result["decision"]["action"] == "revert" and result["decision"]["rule"] == "culprit_found"
    assert result["revert"]["reverts"] == [bad["sha"]] and result["revert"]["only_the_bad_commit"]
    # The branch keeps the good commits; each revert sits on top of what it undid.
    assert result["branch_now"][2].startswith(result["revert"]["sha"][:10])
    assert len(result["branch_now"]) == 7 and "Revert" in result["branch_now"][2]
    assert result["open_incidents"] == []  # recovered and verified
    assert result["incident_url"].endswith("/ui/incidents/1")  # the page, served while the demo ran
    assert result["total_seconds"] < 60
    whats = [e["what"] for e in result["timeline"]]
    # A refused sync never changed the cluster: the revert needs no sync, which restores, and proves nothing more.
    assert whats[-7:] == [
        "failure_detected", "blamed", "revert_pushed", "restored", "commit", "preflight", "preflight_reverted"
    ]  # fmt: skip
    # Act two: a broken values file judged by Argo CD's own renderer, reverted before Argo CD ever looked at it.
    p = result["preflight"]
    assert (p["app"], p["verdict"], p["rule"]) == ("plate-web-stg", "will_fail_to_render", "preflight_render_failed")
    assert "failed to parse values-stg.yaml" in p["argocd_error"] and not p["argocd_saw_it"]
    assert result["branch_now"][0].startswith(p["revert"][:10]) and result["branch_now"][1].startswith(p["commit"][:10])
    # The demo's own daemon, by its port: other git daemons on the machine (other tests, other runs) are not its.
    port = result["repo"].split(":")[2].split("/")[0]
    left = subprocess.run(["pgrep", "-f", f"git.daemon.*--port={port} "], capture_output=True, text=True).stdout
    assert left.split() == [], "the demo left a git daemon running"


def test_demo_text_output() -> None:
    out = subprocess.run([sys.executable, "-m", "watcher", "demo"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DETECTED sync_failed on plate-api-stg" in out.stdout
    assert "REVERTED plate-api-stg" in out.stdout
    assert "the revert undoes only the bad commit: yes" in out.stdout
    assert "JUDGED" in out.stdout and "will_fail_to_render" in out.stdout and "never synced by Argo CD" in out.stdout
    assert "Argo CD never saw it" in out.stdout
    assert "the whole story in a browser: http://127.0.0.1:" in out.stdout  # and no TTY: it did not wait
    detected = out.stdout[out.stdout.index("DETECTED") :].split("BLAMED")[0]
    assert "Argo CD: one or more objects failed to apply" in detected
    assert "must be greater than or equal to 0" in " ".join(detected.split())  # all of it, wrapped, not cut
    # The log names Argo CD's revision as the deployed one (the head of the push, Dev Three's), and the culprit
    # (Dev Two's) once blame has run: no line calls the innocent head "the commit".
    [failure] = [line for line in out.stderr.splitlines() if "failure_detected" in line]
    assert "deployed_revision=" in failure and "commit=" not in failure
    decided, preflight = [line for line in out.stderr.splitlines() if "revert_decided" in line]
    assert "culprits=" in decided and "by Dev Two" in decided
    assert "rule=preflight_render_failed" in preflight and "by Dev Four" in preflight


def test_a_long_argocd_message_is_cut_at_a_word_with_an_ellipsis() -> None:
    message = "one or more objects failed to apply, reason: " + "ConfigMap.v1 is invalid: data too long; " * 40
    text = argocd_message(message)
    assert text.endswith(" …") and len(text) < len(message)
    words = text.split()
    assert words[:2] == ["Argo", "CD:"] and set(words[2:-1]) <= set(message.split())  # no word cut in half
    assert all(len(line) <= 118 for line in text.splitlines())
    assert argocd_message("short and whole") == f"{'':19}Argo CD: short and whole"


def test_demo_log_lines_follow_watcher_log_level() -> None:
    env = os.environ | {"WATCHER_LOG__LEVEL": "debug"}
    out = subprocess.run(
        [sys.executable, "-m", "watcher", "demo", "--json"], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["open_incidents"] == []  # stdout stays the result
    assert "watcher_started" in out.stderr and "revert_pushed" in out.stderr
    assert "[debug    ] Popen(['git'" in out.stderr  # the git commands it runs


def test_simulate_prints_a_watch_command_with_this_worlds_own_clone_and_store(tmp_path: Path) -> None:
    commands = [_simulate_watch_command(tmp_path / name) for name in ("first", "second")]
    for workdir, env in zip((tmp_path / "first", tmp_path / "second"), commands, strict=True):
        assert Path(env["WATCHER_GIT__CLONE_DIR"]).is_relative_to(workdir)
        assert env["WATCHER_STORE__URL"] == f"sqlite:///{workdir}/watcher/state.db"
    assert commands[0]["WATCHER_GIT__URL"] != commands[1]["WATCHER_GIT__URL"]  # a new world: a new remote...
    assert commands[0]["WATCHER_GIT__CLONE_DIR"] != commands[1]["WATCHER_GIT__CLONE_DIR"]  # ...and a new clone


def _simulate_watch_command(workdir: Path) -> dict[str, str]:
    """Start `sync-watcher simulate`, read the `Watch it:` command it prints, stop it with Ctrl-C."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "simulate", "--port", str(free_port()), "--dir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Watch it: "):
                return dict(word.split("=", 1) for word in line.split() if "=" in word)
        pytest.fail(f"simulate exited without a command: {proc.wait()}")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


def test_simulate_serves_a_fleet_of_ten_thousand_apps(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "simulate", "--apps", "10000", "--port", str(port), "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/api/v1/applications"
    fields = {"fields": ",".join(LIST_FIELDS)}

    def listed() -> list[dict[str, Any]]:
        try:
            return list(httpx.get(url, params=fields, timeout=30).json()["items"])
        except httpx.HTTPError:
            return []

    try:
        # Loose bounds: this checks that a fleet is served at all, and in seconds, not minutes (the bench times it).
        apps = wait_for(lambda: len(items := listed()) == 10_000 and items, timeout=120, what="10,000 apps listed")
        assert len({a["metadata"]["name"] for a in apps}) == 10_000
        wait_for(lambda: all(a["status"]["health"]["status"] == "Healthy" for a in listed()), 120, "a synced fleet")
        started = time.monotonic()
        assert len(listed()) == 10_000
        assert time.monotonic() - started < 20
        fleet_app = next(a["metadata"]["name"] for a in apps if a["metadata"]["name"].startswith("fleet-"))
        whole = httpx.get(f"{url}/{fleet_app}", timeout=30).json()
        assert whole["status"]["history"] and whole["status"]["sync"]["status"] == "Synced"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""


def test_real_timings_demo_catches_the_crash_loop_and_reverts_only_it() -> None:
    """`demo --real-timings` on a clock 120x fast: Argo CD's minutes, the whole loop in seconds of wall time."""
    out = subprocess.run(
        [sys.executable, "-m", "watcher", "demo", "--real-timings", "--scale", "120", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    bad = next(c for c in result["commits"] if not c["good"])
    assert result["detected"]["app"] == "plate-api-stg"
    assert result["revert"]["reverts"] == [bad["sha"]] and result["revert"]["only_the_bad_commit"]
    t = result["argocd_seconds_after_push"]
    # The rollout watch names the crash loop from the resource tree, long before the 600 s progress deadline
    # (reads every 30 Argo CD seconds at x120, a grace of 20 s: hence the margin over the 60 s goal).
    assert result["detected"]["kind"] == "rollout_failing"
    assert t["detected"] - t["synced"] <= 120
    # Argo CD's real clock: with no webhook the push is first compared after the branch cache (3 min) and the
    # app's own resync (120 s + 0-60 s jitter, skipped when too soon): up to ~410 s (docs/argocd-conformance.md
    # rows 10-12); the crash loop leaves the app Progressing for the 600 s progress deadline, and the order of the
    # story holds. (A scaled clock turns a tenth of a second of the machine's own hiccups into twelve Argo CD
    # seconds: hence the margin.)
    assert 0 < t["compared"] <= t["synced"] <= 410 + 40
    assert t["synced"] < t["detected"] <= t["revert_pushed"] < t["recovered"]
    assert t["on-health-degraded"] is None or t["on-health-degraded"] - t["synced"] >= 600
    assert t["on-sync-failed"] is None
    assert result["wall_seconds"] < 60
