"""Settings from the environment and files; one-line errors; secrets never reach the logs."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests.support.waiting import wait_for
from watcher.adapters.gitrepo import GitRepo
from watcher.logs import QUIET_LIBRARIES, SecretRedactor, configure, get_logger
from watcher.settings import GitSettings, SettingsError, load_settings, require, settings_table


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("WATCHER_"):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Tests here configure logging into a buffer; later tests get back what they had."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    libraries = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, library_level in libraries.items():
        logging.getLogger(name).setLevel(library_level)


def test_nested_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_ARGOCD__URL", "https://argocd.example.com/")
    monkeypatch.setenv("WATCHER_ARGOCD__PROJECTS", '["platform","data"]')
    monkeypatch.setenv("WATCHER_DETECTION__DEGRADED_GRACE_SECONDS", "30")
    s = load_settings()
    assert s.argocd.url == "https://argocd.example.com"
    assert s.argocd.projects == ["platform", "data"]
    assert s.detection.degraded_grace_seconds == 30


def test_secret_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cr3t-token-value\n")
    monkeypatch.setenv("WATCHER_ARGOCD__TOKEN_FILE", str(tmp_path / "token"))
    s = load_settings()
    assert s.argocd.token is not None and s.argocd.token.get_secret_value() == "s3cr3t-token-value"
    assert "s3cr3t" not in repr(s)


def test_unreadable_secret_file_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_GIT__TOKEN_FILE", "/nonexistent/token")
    with pytest.raises(SettingsError, match=r"^WATCHER_GIT__TOKEN_FILE: cannot read /nonexistent/token"):
        load_settings()


@pytest.mark.parametrize(
    "var, value, pattern",
    [
        ("WATCHER_ARGOCD__URL", "argocd.example.com", r"^WATCHER_ARGOCD__URL: must start with http"),
        ("WATCHER_DETECTION__DEGRADED_GRACE_SECONDS", "soon", r"^WATCHER_DETECTION__DEGRADED_GRACE_SECONDS: .*number"),
        ("WATCHER_STORE__URL", "mysql://x", r"^WATCHER_STORE__URL: must be a sqlite"),
        ("WATCHER_LOG__FORMAT", "xml", r"^WATCHER_LOG__FORMAT: .*'json'"),
        ("WATCHER_HTTP__PORT", "70000", r"^WATCHER_HTTP__PORT: .*65535"),
    ],
)
def test_bad_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, pattern: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "\n" not in str(err.value)
    assert re.search(pattern, str(err.value)), str(err.value)


def test_missing_required_setting() -> None:
    with pytest.raises(SettingsError, match=r"^WATCHER_GIT__URL: not set \(expected: GitOps repo remote"):
        require(load_settings(), "git", "url")


def test_username_without_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_ARGOCD__USERNAME", "watcher")
    with pytest.raises(SettingsError, match="WATCHER_ARGOCD__PASSWORD"):
        load_settings()


def test_readme_lists_every_setting() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name, _default, _meaning in settings_table():
        assert f"`{name}`" in readme, f"{name} missing from the README settings table (run `sync-watcher settings`)"


def test_secrets_never_reach_the_log() -> None:
    out = io.StringIO()
    configure("debug", "json", secrets=["tok-abcdef123456"], stream=out)
    log = get_logger()
    log.info("request_sent", headers={"Authorization": "Bearer tok-abcdef123456"}, token="tok-abcdef123456")
    log.warning("fetch_failed", error="fatal: could not read from https://user:hunter2pass@git.example.com/x.git")
    log.error("argocd_poll_failed", error="server said: tok-abcdef123456 is invalid", password="hunter2pass")
    text = out.getvalue()
    assert "tok-abcdef123456" not in text and "hunter2pass" not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert [line["event"] for line in lines] == ["request_sent", "fetch_failed", "argocd_poll_failed"]
    assert lines[0]["token"] == "***" and "***" in lines[1]["error"]


def test_redactor_handles_nested_values() -> None:
    r = SecretRedactor(["abcd1234"])
    assert r.scrub({"a": ["x abcd1234 y", ("abcd1234",)], "api_key": "k"}) == {
        "a": ["x *** y", ("***",)],
        "api_key": "***",
    }


@pytest.mark.parametrize("level", ["debug", "info"])
def test_debug_level_shows_debug_lines_and_the_git_commands_info_does_not(level: str, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    subprocess.run(["git", "init", "-q", "-b", "main", str(remote)], check=True)
    author = ["-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "-C", str(remote), *author, "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    out = io.StringIO()
    configure(level, "json", stream=out)
    get_logger().debug("probe_debugged")
    get_logger().info("probe_informed")
    GitRepo(GitSettings(url=str(remote), clone_dir=tmp_path / "clone")).sync()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    debug = [line for line in lines if line["level"] == "debug"]
    git = [line["event"] for line in debug if line.get("logger") == "git.cmd"]
    assert "probe_informed" in [line["event"] for line in lines]
    if level == "debug":
        assert "probe_debugged" in [line["event"] for line in debug]
        assert any("'fetch'" in e for e in git), git  # the git commands it ran, as JSON lines
    else:
        assert debug == []


def test_errors_of_threads_and_the_scheduler_go_through_the_json_logger_and_its_redactor() -> None:
    import threading

    from apscheduler.schedulers.background import BackgroundScheduler

    out = io.StringIO()
    configure("info", "json", secrets=["tok-abcdef123456"], stream=out)

    def crash() -> None:
        raise ValueError("refused: tok-abcdef123456")

    thread = threading.Thread(target=crash, name="reverter")
    thread.start()
    thread.join()
    scheduler = BackgroundScheduler()
    scheduler.add_job(crash, id="apps_poll", name="apps_poll")
    scheduler.start()
    wait_for(lambda: out.getvalue().count("refused") >= 2, what="both errors logged")
    scheduler.shutdown()
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    crashed = [line for line in lines if line.get("event") == "thread_crashed"]
    assert crashed and crashed[0]["thread"] == "reverter" and "ValueError" in crashed[0]["exception"]
    job = [line for line in lines if "apps_poll" in line.get("event", "")]
    assert job and job[0]["level"] == "error"
    assert "tok-abcdef123456" not in out.getvalue()  # scrubbed from tracebacks too
