"""Edges of the input a user or a host hands the watcher: one line that names the setting and the fix.
Each failed on main before issue 25 (see the commit message)."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from watcher.cli import main
from watcher.run.web import BackgroundServer, build_app
from watcher.settings import SettingsError, load_settings
from watcher.store import Store
from watcher.store.schema import incidents as incidents_table


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"mdoe": "push"}', "WATCHER_REVERT: 'mdoe' is not a setting of the revert section; did you mean 'mode'?"),
        ('{"mode": "push", "zzz": 1}', "WATCHER_REVERT: 'zzz' is not a setting of the revert section; the revert "),
        ('["push"]', "WATCHER_REVERT: expected a JSON object of the revert settings"),
    ],
)
def test_a_typo_inside_a_section_given_as_json_fails_the_start(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("WATCHER_REVERT", value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_section_given_as_json_with_known_keys_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_REVERT", '{"mode": "push", "max_reverts_per_hour": 2}')
    settings = load_settings()
    assert (settings.revert.mode, settings.revert.max_reverts_per_hour) == ("push", 2)


def test_a_busy_http_port_is_one_line_at_once(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        env = {
            "WATCHER_ARGOCD__URL": "http://127.0.0.1:9",
            "WATCHER_GIT__URL": "http://127.0.0.1:9/gitops.git",
            "WATCHER_GIT__CLONE_DIR": str(tmp_path / "state" / "repo"),
            "WATCHER_HTTP__HOST": "127.0.0.1",
            "WATCHER_HTTP__PORT": str(port),
        }
        started = time.monotonic()
        result = CliRunner().invoke(main, ["run"], env=env)
        took = time.monotonic() - started
    assert result.exit_code == 1 and took < 5, (took, result.output)
    assert result.output.strip().splitlines() == [
        f"Error: WATCHER_HTTP__PORT: cannot listen on 127.0.0.1:{port} (Address already in use); stop the process "
        "that holds it (another sync-watcher?) or set WATCHER_HTTP__PORT to a free port"
    ]


def test_the_incidents_command_pages_and_says_how_to_get_the_rest(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/state.db")
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        for n in range(5):
            row = {"app": f"a{n}", "kind": "sync_failed", "revision": "abc", "detected_at": now, "reason": "r"}
            conn.execute(incidents_table.insert(), row | {"evidence": {}, "resolution": ""})
    server = BackgroundServer(build_app(store, None, None, {}), "127.0.0.1", 0)  # type: ignore[arg-type]
    server.start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        first = CliRunner().invoke(main, ["incidents", "--url", url, "--limit", "2"])
        rest = CliRunner().invoke(main, ["incidents", "--url", url, "--limit", "2", "--before", "4"])
        last = CliRunner().invoke(main, ["incidents", "--url", url, "--before", "2"])
    finally:
        server.stop()
        store.close()
    apps = [line.split()[1] for line in first.output.splitlines()[2:-1]]
    assert apps == ["a4", "a3"] and first.output.splitlines()[-1] == "more: sync-watcher incidents --before 4 --limit 2"
    assert rest.output.splitlines()[-1] == "more: sync-watcher incidents --before 2 --limit 2"
    assert [line.split()[1] for line in last.output.splitlines()[2:]] == ["a0"] and "more:" not in last.output
