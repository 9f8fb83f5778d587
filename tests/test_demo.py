"""The demo is the end-to-end test: a newcomer's first run must show the culprit, fast, and clean up."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_json_names_the_bad_commit_and_leaves_nothing_running() -> None:
    before = subprocess.run(["pgrep", "-f", "git daemon"], capture_output=True, text=True).stdout.split()
    out = subprocess.run(
        [sys.executable, "-m", "watcher", "demo", "--json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    detected = result["detected"]
    assert detected["app"] == "plate-api-stg" and detected["kind"] == "sync_failed"
    assert detected["revision"] == result["bad_commit"]["sha"] and detected["culprit_matches_bad_commit"]
    assert result["total_seconds"] < 60
    assert [i["app"] for i in result["open_incidents"]] == ["plate-api-stg"]
    whats = [e["what"] for e in result["timeline"]]
    assert whats == ["commit", "all_synced", "commit", "deployed", "commit", "sync_failing", "failure_detected"]
    after = subprocess.run(["pgrep", "-f", "git daemon"], capture_output=True, text=True).stdout.split()
    assert set(after) <= set(before), "the demo left a git daemon running"


def test_demo_text_output() -> None:
    out = subprocess.run([sys.executable, "-m", "watcher", "demo"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "DETECTED sync_failed on plate-api-stg" in out.stdout
    assert "culprit is the bad commit: yes" in out.stdout
