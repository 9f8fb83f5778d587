"""Least privilege by default (issue #12): each test is one fault or probe a platform engineer would try.

Host keys over a real sshd on loopback, the admin API of a running daemon, credentials in URLs, forged
trailers, settings typos, and the pagination of /api/incidents.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from click.testing import CliRunner
from pydantic import SecretStr
from structlog.testing import capture_logs

from tests.support.revert_world import Scenario
from tests.support.ssh_server import SshServer, keygen
from tests.support.waiting import wait_for
from watcher.adapters.gitrepo import GitRepo, GitUnavailable, HostKeyRejected, SigningFailed
from watcher.cli import main
from watcher.domain import RevertMode
from watcher.logs import configure
from watcher.run.daemon import Daemon
from watcher.run.web import MAX_ADMIN_BODY, BackgroundServer, build_app
from watcher.settings import GitSettings, RevertSettings, Settings, SettingsError, load_settings
from watcher.sim.world import SimWorld
from watcher.store import Store
from watcher.store.schema import incidents as incidents_table

IDENTITY = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "dev@x", "GIT_COMMITTER_NAME": "Dev"}


@pytest.fixture(autouse=True)
def _logging_at_every_level() -> Iterator[None]:
    """`check` and `demo` (run by other tests) configure logging at error or warning level for the whole
    process; these tests read warnings and info lines, so they start from structlog's defaults and leave them."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


def git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    run_env = os.environ | {"GIT_COMMITTER_EMAIL": "dev@x"} | IDENTITY | (env or {})
    return subprocess.run(["git", *args], cwd=cwd, env=run_env, check=True, capture_output=True, text=True).stdout


def remote_with_history(root: Path) -> tuple[Path, Path]:
    """A bare remote and a work clone that pushes to it, with one commit on main."""
    bare, work = root / "gitops.git", root / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True, capture_output=True)
    push(work, "app.yaml", "replicas: 1\n", "first")
    return bare, work


def push(work: Path, name: str, text: str, subject: str, env: dict[str, str] | None = None) -> str:
    (work / name).write_text(text)
    git("add", name, cwd=work)
    git("commit", "-q", "-m", subject, cwd=work, env=env)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    return git("rev-parse", "HEAD", cwd=work).strip()


def head_of(bare: Path) -> str:
    return git("rev-parse", "main", cwd=bare).strip()


# -- 1. host keys ---------------------------------------------------------------------------------------------
@pytest.fixture
def ssh_remote(tmp_path: Path) -> Iterator[tuple[SshServer, Path, Path]]:
    bare, work = remote_with_history(tmp_path / "remote")
    server = SshServer(tmp_path / "sshd").start()
    try:
        yield server, bare, work
    finally:
        server.stop()


def test_unknown_host_is_trusted_on_first_use_and_a_changed_key_stops_fetch_and_push(
    ssh_remote: tuple[SshServer, Path, Path], tmp_path: Path
) -> None:
    server, bare, work = ssh_remote
    state = tmp_path / "state"
    cfg = GitSettings(  # type: ignore[call-arg]
        url=server.url(bare),
        clone_dir=state / "repo",
        ssh_key_file=server.client_key,
        ssh_host_key_checking="accept-new",
    )
    repo = GitRepo(cfg)
    with capture_logs() as logs:
        assert repo.sync() == head_of(bare)
        repo.sync()
    trusted = [e for e in logs if e["event"] == "ssh_host_key_trusted"]
    assert len(trusted) == 1 and trusted[0]["fingerprint"] == server.host_fingerprint
    assert f"[127.0.0.1]:{server.port}" in (state / "known_hosts").read_text()  # on the state volume

    server.stop()
    server.start(host_key_name="impostor_key")  # same address, another identity
    culprit = push(work, "app.yaml", "replicas: -1\n", "break it")
    with pytest.raises(HostKeyRejected) as err:
        repo.sync()
    assert "host key" in str(err.value) and str(state / "known_hosts") in str(err.value)
    before = head_of(bare)
    local = GitRepo(GitSettings(url=str(bare), clone_dir=tmp_path / "local" / "repo"))  # type: ignore[call-arg]
    local.sync()  # a commit is read from what a fetch brought, never fetched by the read
    commit = local.commit(culprit)
    assert commit is not None
    with pytest.raises(GitUnavailable):
        repo.revert([commit], "Revert", ("sync-watcher", "sync-watcher@noreply.invalid"), push_branch="main")
    assert head_of(bare) == before  # nothing pushed to the impostor's address


def test_check_shows_the_fingerprint_it_trusted_on_first_use(
    ssh_remote: tuple[SshServer, Path, Path], tmp_path: Path
) -> None:
    server, bare, _ = ssh_remote
    env = {
        "WATCHER_ARGOCD__URL": "http://127.0.0.1:9",
        "WATCHER_GIT__URL": server.url(bare),
        "WATCHER_GIT__SSH_KEY_FILE": str(server.client_key),
        "WATCHER_GIT__CLONE_DIR": str(tmp_path / "state" / "repo"),
        "WATCHER_GIT__SSH_HOST_KEY_CHECKING": "accept-new",  # strict is the default: tests/run/test_host_keys.py
    }
    first = CliRunner().invoke(main, ["check"], env=env)
    expected = f"ok   host key  [127.0.0.1]:{server.port} {server.host_fingerprint} would be trusted on first use"
    assert expected in first.output, first.output
    again = CliRunner().invoke(main, ["check"], env=env)  # check keeps nothing: not the daemon's clone or keys
    assert "ok   git" in again.output and expected in again.output
    assert not (tmp_path / "state").exists()
    assert f"main at {head_of(bare)[:12]}; the remote's default branch: main" in again.output  # ls-remote over ssh


def test_a_known_hosts_file_from_the_chart_is_the_whole_truth(
    ssh_remote: tuple[SshServer, Path, Path], tmp_path: Path
) -> None:
    server, bare, _ = ssh_remote
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{server.port} {Path(f'{server.host_key}.pub').read_text()}")
    ok = GitSettings(  # type: ignore[call-arg]
        url=server.url(bare),
        clone_dir=tmp_path / "a" / "repo",
        ssh_key_file=server.client_key,
        ssh_known_hosts_file=known,
    )
    assert GitRepo(ok).sync() == head_of(bare)
    other = tmp_path / "other_known_hosts"
    other.write_text(f"[127.0.0.1]:{server.port} {keygen(tmp_path / 'stranger').with_suffix('.pub').read_text()}")
    with pytest.raises(HostKeyRejected):
        GitRepo(ok.model_copy(update={"ssh_known_hosts_file": other, "clone_dir": tmp_path / "b" / "repo"})).sync()
    assert other.read_text().count("\n") == 1  # a mounted file is never written to


def test_host_key_checking_off_must_be_explicit_and_is_warned_at_every_start(
    ssh_remote: tuple[SshServer, Path, Path], world: SimWorld, tmp_path: Path
) -> None:
    server, bare, _ = ssh_remote
    base = world.watcher_settings(tmp_path / "w")
    git_cfg = base.git.model_copy(
        update={"url": server.url(bare), "ssh_key_file": server.client_key, "ssh_host_key_checking": "off"}
    )
    argocd = base.argocd.model_copy(update={"insecure": True})
    settings = base.model_copy(update={"git": git_cfg, "argocd": argocd})
    assert GitRepo(settings.git).sync() == head_of(bare)
    assert not (tmp_path / "w" / "known_hosts").exists()
    for _ in range(2):  # every start, not only the first
        with capture_logs() as logs:
            daemon = Daemon(settings, argocd_retry_max_wait=0.05)
            daemon.start()
            daemon.stop()
        warned = {e["event"] for e in logs if e["log_level"] == "warning" and "risk" in e}
        assert {"ssh_host_key_checking_off", "argocd_tls_unverified"} <= warned


# -- 2. the admin API -------------------------------------------------------------------------------------------
@pytest.fixture
def daemon_of(world: SimWorld, tmp_path: Path) -> Iterator[Any]:
    started: list[Daemon] = []

    def start(**http: Any) -> tuple[Daemon, str]:
        base = world.watcher_settings(tmp_path / f"w{len(started)}")
        settings = base.model_copy(update={"http": base.http.model_copy(update=http)})
        d = Daemon(settings, argocd_retry_max_wait=0.05)
        d.start()
        started.append(d)
        return d, f"http://127.0.0.1:{d.http.port}"

    yield start
    for d in started:
        d.stop()


def test_resume_is_closed_by_default_and_the_cli_finds_the_generated_token(daemon_of: Any) -> None:
    with capture_logs() as logs:
        d, url = daemon_of(admin_token=None)
    token_file = d.settings.git.clone_dir.parent / "admin-token"
    said = next(e for e in logs if e["event"] == "admin_api_requires_token")
    assert said["source"] == str(token_file) and said["generated_now"] is True
    assert httpx.post(f"{url}/api/resume", json={"circuit": True}).status_code == 401
    assert (
        httpx.post(f"{url}/api/resume", json={"circuit": True}, headers={"Authorization": "Bearer x"}).status_code
        == 401
    )
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    elsewhere = {"WATCHER_GIT__CLONE_DIR": str(token_file.parent / "not-the-pod" / "repo")}
    refused = CliRunner().invoke(main, ["resume", "--circuit", "--url", url], env=elsewhere)
    assert refused.exit_code == 1 and "wants the admin token" in refused.output
    env = {"WATCHER_GIT__CLONE_DIR": str(d.settings.git.clone_dir)}
    resumed = CliRunner().invoke(main, ["resume", "--circuit", "--url", url], env=env)
    assert resumed.exit_code == 0, resumed.output
    assert "circuit: was not open" in resumed.output


def test_waiving_the_token_is_explicit_and_warned_at_start(daemon_of: Any) -> None:
    with capture_logs() as logs:
        _, url = daemon_of(admin_token=None, admin_auth="none")
    assert [e for e in logs if e["event"] == "admin_api_unauthenticated" and e["log_level"] == "warning"]
    r = httpx.post(f"{url}/api/resume", json={"circuit": True})
    assert r.status_code == 200 and r.json()["circuit_closed"] is False


BAD_BODIES = [
    ({"Content-Type": "text/plain"}, b'{"circuit": true}', 415),  # what a cross-origin form can send
    ({"Content-Type": "application/x-www-form-urlencoded"}, b"circuit=true", 415),
    ({"Content-Type": "application/json"}, b'{"app": "' + b"x" * MAX_ADMIN_BODY + b'"}', 413),
    ({"Content-Type": "application/json"}, b'{"app": ', 400),
    ({"Content-Type": "application/json"}, b'{"app": ["a", "b"]}', 400),  # was a 500 with SQL in it
    ({"Content-Type": "application/json"}, b'{"app": {"$ne": 1}}', 400),
    ({"Content-Type": "application/json"}, b'{"circuit": "yes", "extra": 1}', 400),
    ({"Content-Type": "application/json"}, b"[1, 2]", 400),
    ({"Content-Type": "application/json"}, b"{}", 400),
]


def test_resume_answers_bad_bodies_with_a_4xx_and_one_log_line(daemon_of: Any) -> None:
    _, url = daemon_of(admin_token=SecretStr("admin-token-for-this-test"))
    auth = {"Authorization": "Bearer admin-token-for-this-test"}
    for headers, body, status in BAD_BODIES:
        with capture_logs() as logs:
            r = httpx.post(f"{url}/api/resume", content=body, headers=headers | auth)
        assert r.status_code == status, (body[:40], r.text)
        assert "error" in r.json() and "sql" not in r.text.lower() and "select" not in r.text.lower()
        rejected = [e for e in logs if e["event"] == "admin_request_rejected"]
        assert len(rejected) == 1 and rejected[0]["status"] == status, (body[:40], rejected)
        assert "x" * 100 not in json.dumps(rejected[0])  # the body is never echoed into the log
    good = httpx.post(f"{url}/api/resume", json={"app": "plate-api-stg"}, headers=auth)
    assert good.status_code == 200 and good.json()["resumed"] is False


# -- 3. credentials in URLs ---------------------------------------------------------------------------------------
def test_check_never_prints_credentials_in_urls(tmp_path: Path) -> None:
    env = {
        "WATCHER_ARGOCD__URL": "https://admin:argo-pass-123@127.0.0.1:9",
        "WATCHER_GIT__URL": "https://user:tok-abc123456@127.0.0.1:9/x.git",
        "WATCHER_GIT__CLONE_DIR": str(tmp_path / "repo"),
    }
    result = CliRunner().invoke(main, ["check"], env=env)
    assert result.exit_code == 1
    assert "https://***@127.0.0.1:9/x.git" in result.output and "https://***@127.0.0.1:9" in result.output
    assert "tok-abc123456" not in result.output and "argo-pass-123" not in result.output


def test_start_log_and_git_errors_hide_a_token_in_the_repo_url(world: SimWorld, tmp_path: Path) -> None:
    base = world.watcher_settings(tmp_path / "w", poll_seconds=0.2)
    git_cfg = base.git.model_copy(update={"url": "https://ghp_tokenonly123456@127.0.0.1:9/acme/gitops.git"})
    out = io.StringIO()
    configure("info", "json", stream=out)
    d = Daemon(base.model_copy(update={"git": git_cfg}), argocd_retry_max_wait=0.05)
    d.start()
    try:
        wait_for(lambda: "git_poll_failed" in out.getvalue(), what="a failed git poll")
    finally:
        d.stop()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    started = next(line for line in lines if line["event"] == "watcher_started")
    assert started["repo"] == "https://***@127.0.0.1:9/acme/gitops.git"
    assert "ghp_tokenonly123456" not in out.getvalue()


# -- 4. our own trailers --------------------------------------------------------------------------------------------
def test_a_forged_incident_trailer_is_not_taken_for_our_revert(tmp_path: Path) -> None:
    """Only content makes a commit this incident's revert: not the trailer, not the bot's name and email."""
    bare, work = remote_with_history(tmp_path)
    culprit = push(work, "app.yaml", "replicas: -1\n", "break it")
    since = datetime.now(UTC) - timedelta(hours=1)
    trailer = "Sync-Watcher-Incident: 0123456789abcdef"
    mallory = {"GIT_AUTHOR_NAME": "Mallory", "GIT_AUTHOR_EMAIL": "m@x", "GIT_COMMITTER_NAME": "Mallory"}
    push(work, "a.yaml", "x\n", f"Revert it\n\n{trailer}", env=mallory)
    bot = {"GIT_AUTHOR_NAME": "sync-watcher", "GIT_AUTHOR_EMAIL": "sync-watcher@noreply.invalid"}
    bot |= {"GIT_COMMITTER_NAME": "sync-watcher", "GIT_COMMITTER_EMAIL": "sync-watcher@noreply.invalid"}
    push(work, "b.yaml", "y\n", f"Revert\n\nSync-Watcher-Reverts: {culprit}\n{trailer}", env=bot)
    repo = GitRepo(GitSettings(url=str(bare), clone_dir=tmp_path / "state" / "repo"))  # type: ignore[call-arg]
    repo.sync()
    assert repo.find_by_incident("0123456789abcdef", [culprit], since) is None  # the bot's name undoes nothing
    undone = push(work, "app.yaml", "replicas: 1\n", f"Put it back\n\n{trailer}", env=mallory)
    repo.sync()
    assert repo.find_by_incident("0123456789abcdef", [culprit], since) == undone  # whoever made it, it undoes it
    assert repo.find_by_incident("fedcba9876543210", [culprit], since) is None  # another incident's


def test_reconcile_after_a_crash_does_not_take_a_forged_trailer_for_our_revert(
    world: SimWorld, scenario: Callable[..., Scenario]
) -> None:
    s = scenario()
    # What a kill -9 between "intent stored" and "pushed" leaves: an incident and a revert row in state started.
    store = Store(s.settings.store.url)
    now = datetime.now(UTC)
    head = world.work.git("rev-parse", "HEAD")
    with store.engine.begin() as conn:
        row = {"app": "plate-api-stg", "kind": "sync_failed", "revision": head, "detected_at": now, "reason": "r"}
        incident_id = conn.execute(
            incidents_table.insert(), row | {"evidence": {}, "resolution": ""}
        ).inserted_primary_key[0]
    revert_id = store.audit.start_revert(incident_id, "plate-api-stg", RevertMode.PUSH, [head], now)
    store.close()
    # Meanwhile someone else pushes a commit that claims to be that revert.
    forged = world.work.commit(
        f"Revert it\n\nSync-Watcher-Incident: {incident_id}", {"FORGED": "x\n"}, author="Mallory"
    )
    world.work.push()
    s.start()
    reconciled = wait_for(
        lambda: [r for r in s.d.store.audit.reverts() if r.id == revert_id and r.state != "started"], what="reconcile"
    )[0]
    assert reconciled.revert_sha != forged and reconciled.state != "pushed"


def openpgp_key(home: Path, email: str) -> Path:
    """An unprotected OpenPGP signing key, armored as a Secret would hold it."""
    if shutil.which("gpg") is None:
        if os.environ.get("CI"):
            pytest.fail("gpg missing: scripts/test installs Debian's gpg package")
        pytest.skip("gpg not installed (apt-get install gpg)")
    home.mkdir(mode=0o700)
    gpg = ["gpg", "--batch", "--homedir", str(home), "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", f"sync-watcher <{email}>", "ed25519", "sign", "never"], check=True)
    armored = subprocess.run([*gpg, "--armor", "--export-secret-keys"], check=True, capture_output=True).stdout
    (home.parent / "signing.asc").write_bytes(armored)
    return home.parent / "signing.asc"


@pytest.mark.parametrize("kind", ["ssh", "openpgp"])
def test_revert_commits_are_signed_with_the_configured_key(tmp_path: Path, kind: str) -> None:
    bare, work = remote_with_history(tmp_path)
    culprit = push(work, "app.yaml", "replicas: -1\n", "break it")
    email = RevertSettings().author_email  # type: ignore[call-arg]
    homes = [tmp_path / "keyring", tmp_path / "state" / "gnupg"]
    key = keygen(tmp_path / "signing_key", "sync-watcher") if kind == "ssh" else openpgp_key(homes[0], email)
    revert = RevertSettings(signing_key_file=key)  # type: ignore[call-arg]
    repo = GitRepo(GitSettings(url=str(bare), clone_dir=tmp_path / "state" / "repo"), revert)  # type: ignore[call-arg]
    repo.sync()
    commit = repo.commit(culprit)
    assert commit is not None
    try:
        result = repo.revert([commit], "Revert", (revert.author_name, revert.author_email), push_branch="main")
    finally:
        for home in homes:
            subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)
    assert result.sha == head_of(bare)
    signers = tmp_path / "allowed_signers"
    if kind == "ssh":
        signers.write_text(f"{email} {key.with_suffix('.pub').read_text()}")
    check = ["-c", f"gpg.ssh.allowedSignersFile={signers}", "log", "-1", "--format=%G?", "main"]
    assert git(*check, cwd=bare, env={"GNUPGHOME": str(homes[0])}).strip() in ("G", "U")  # U: good, owner untrusted


def test_a_key_that_cannot_sign_stops_the_revert_before_anything_is_pushed(tmp_path: Path) -> None:
    bare, work = remote_with_history(tmp_path)
    culprit = push(work, "app.yaml", "replicas: -1\n", "break it")
    (tmp_path / "not_a_key").write_text("this is not a key\n")
    revert = RevertSettings(signing_key_file=tmp_path / "not_a_key")  # type: ignore[call-arg]
    repo = GitRepo(GitSettings(url=str(bare), clone_dir=tmp_path / "state" / "repo"), revert)  # type: ignore[call-arg]
    repo.sync()
    commit = repo.commit(culprit)
    assert commit is not None
    with pytest.raises(SigningFailed) as err:
        repo.revert([commit], "Revert", (revert.author_name, revert.author_email), push_branch="main")
    assert "nothing pushed" in str(err.value) and head_of(bare) == culprit


# -- 5. settings typos ---------------------------------------------------------------------------------------------
def test_an_unknown_variable_names_the_closest_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHER_REVERT__MOD", "push")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value) == "WATCHER_REVERT__MOD: not a sync-watcher setting; did you mean WATCHER_REVERT__MODE?"
    result = CliRunner().invoke(main, ["check"])
    assert result.exit_code == 1 and "did you mean WATCHER_REVERT__MODE" in result.output


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("WATCHER_SLACK__ROUTES", '[{"apps": "*-prod", "channel": '),
        ("WATCHER_SLACK__WEBHOOK_URLS", "{'#p': 'https://hooks'}"),
        ("WATCHER_REVERT__ALLOW", "*-stg"),
        ("WATCHER_ARGOCD__PROJECTS", "[platform"),
    ],
)
def test_malformed_json_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    result = CliRunner().invoke(main, ["run"])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {var}: not valid JSON") and result.output.count("\n") == 1
    assert "Traceback" not in result.output


def test_every_setting_name_and_its_file_form_are_known(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "t").write_text("s3cret-token")
    monkeypatch.setenv("WATCHER_HTTP__ADMIN_TOKEN_FILE", str(tmp_path / "t"))
    monkeypatch.setenv("watcher_log__level", "debug")  # the variables are case-insensitive
    settings: Settings = load_settings()
    assert settings.http.admin_token is not None and settings.log.level == "debug"


# -- 6. /api/incidents is paginated ------------------------------------------------------------------------------------
def test_incidents_come_a_page_at_a_time(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path}/state.db")
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        for n in range(5):
            row = {"app": f"a{n}", "kind": "sync_failed", "revision": "abc", "detected_at": now, "reason": "r"}
            conn.execute(incidents_table.insert(), row | {"evidence": {}, "resolution": ""})

    # The incidents route reads only the store: the fleet and the metrics are not asked.
    server = BackgroundServer(build_app(store, None, None, {}), "127.0.0.1", 0)  # type: ignore[arg-type]
    server.start()
    client = httpx.Client(base_url=f"http://127.0.0.1:{server.port}")
    first = client.get("/api/incidents?limit=2").json()
    assert [i["app"] for i in first["incidents"]] == ["a4", "a3"] and first["next_before"] is not None
    second = client.get(f"/api/incidents?limit=2&before={first['next_before']}").json()
    third = client.get(f"/api/incidents?limit=2&before={second['next_before']}").json()
    assert [i["app"] for i in second["incidents"] + third["incidents"]] == ["a2", "a1", "a0"]
    assert third["next_before"] is None
    assert len(client.get("/api/incidents").json()["incidents"]) == 5
    assert client.get("/api/incidents?limit=0").status_code == 400
    assert client.get("/api/incidents?before=x").status_code == 400
    server.stop()
    store.close()
