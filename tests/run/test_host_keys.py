"""Host keys strictly checked by default, with the forges' published keys shipped; trust on first use only when
asked for, and warned at every start. Failed on main before issue 25 (trust on first use was the default)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.run.test_security import head_of, remote_with_history
from tests.support.ssh_server import SshServer
from watcher.adapters.gitrepo import GitRepo, HostKeyRejected
from watcher.run.daemon import Daemon
from watcher.settings import GitSettings
from watcher.sim.world import SimWorld

FORGE_KEYS = Path(__file__).parents[2] / "watcher" / "adapters" / "forge_known_hosts"
# The fingerprints each forge publishes (the URLs are in the shipped file's header).
PUBLISHED = {
    ("github.com", "ED25519", "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"),
    ("github.com", "ECDSA", "SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM"),
    ("github.com", "RSA", "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"),
    ("gitlab.com", "ED25519", "SHA256:eUXGGm1YGsMAS7vkcx6JOJdOGHPem5gQp4taiCfCLB8"),
    ("gitlab.com", "ECDSA", "SHA256:HbW3g8zUjNSksFbqTiUWPWg2Bq1x8xdGUrliXFzSnUw"),
    ("gitlab.com", "RSA", "SHA256:ROQFvPThGrW4RuWLoL9tq9I9zJ42fK4XywyRtbOz/EQ"),
    ("bitbucket.org", "ED25519", "SHA256:ybgmFkzwOSotHTHLJgHO0QN8L0xErw6vd0VhFA9m3SM"),
    ("bitbucket.org", "ECDSA", "SHA256:FC73VB6C4OQLSCrjEayhMp9UMxS97caD/Yyi2bhW/J0"),
    ("bitbucket.org", "RSA", "SHA256:46OSHA1Rmj8E8ERTC6xkNcmGOw9oFxYr0WF6zWW8l1E"),
    ("ssh.dev.azure.com", "RSA", "SHA256:ohD8VZEXGWo6Ez8GSEJQ9WpafgLFsOfLOtGGQCQo6Og"),
}


@pytest.fixture
def ssh_remote(tmp_path: Path) -> Iterator[tuple[SshServer, Path]]:
    bare, _ = remote_with_history(tmp_path / "remote")
    server = SshServer(tmp_path / "sshd").start()
    try:
        yield server, bare
    finally:
        server.stop()


def test_the_shipped_forge_keys_are_the_published_ones() -> None:
    out = subprocess.run(["ssh-keygen", "-lf", str(FORGE_KEYS)], check=True, capture_output=True, text=True).stdout
    found = {(line.split()[2], line.split()[3].strip("()"), line.split()[1]) for line in out.splitlines()}
    assert found == PUBLISHED


def test_an_unknown_host_is_refused_by_default_and_nothing_is_trusted(
    ssh_remote: tuple[SshServer, Path], tmp_path: Path
) -> None:
    server, bare = ssh_remote
    state = tmp_path / "state"
    repo = GitRepo(GitSettings(url=server.url(bare), clone_dir=state / "repo", ssh_key_file=server.client_key))  # type: ignore[call-arg]
    with pytest.raises(HostKeyRejected) as err:
        repo.sync()
    assert "is not among the shipped forge keys" in str(err.value) and "WATCHER_GIT__SSH_KNOWN_HOSTS_FILE" in str(
        err.value
    )
    assert repo.trusted == [] and not (state / "known_hosts").exists()


def test_the_ssh_command_checks_strictly_against_the_shipped_keys(tmp_path: Path) -> None:
    ssh = GitRepo(GitSettings(url="git@github.com:acme/gitops.git", clone_dir=tmp_path / "repo")).transport.ssh()  # type: ignore[call-arg]
    assert "StrictHostKeyChecking=yes" in ssh
    assert f"UserKnownHostsFile={tmp_path / 'known_hosts'} {FORGE_KEYS}" in ssh


def test_trust_on_first_use_is_explicit_and_warned_at_every_start(
    ssh_remote: tuple[SshServer, Path], world: SimWorld, tmp_path: Path
) -> None:
    server, bare = ssh_remote
    base = world.watcher_settings(tmp_path / "w")
    git_cfg = base.git.model_copy(
        update={"url": server.url(bare), "ssh_key_file": server.client_key, "ssh_host_key_checking": "accept-new"}
    )
    settings = base.model_copy(update={"git": git_cfg})
    assert GitRepo(settings.git).sync() == head_of(bare)
    for _ in range(2):  # every start, not only the first
        with capture_logs() as logs:
            daemon = Daemon(settings, argocd_retry_max_wait=0.05)
            daemon.start()
            daemon.stop()
        assert "ssh_host_keys_trusted_on_first_use" in {e["event"] for e in logs if e["log_level"] == "warning"}
