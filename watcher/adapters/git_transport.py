"""How git talks to the remote: the environment (token header, ssh command with host keys checked strictly,
against the shipped forge keys and the configured file, stall limits) and, only with accept-new, the host keys
it trusts on first use, logged with their fingerprints."""

from __future__ import annotations

import base64
import shlex
import subprocess
from pathlib import Path

from watcher.logs import get_logger
from watcher.settings import GitSettings, state_dir

# The published SSH host keys of github.com, gitlab.com, bitbucket.org and ssh.dev.azure.com (sources inside).
FORGE_KNOWN_HOSTS = Path(__file__).with_name("forge_known_hosts")


class GitTransport:
    def __init__(self, cfg: GitSettings):
        self.cfg = cfg
        self.known_hosts = cfg.ssh_known_hosts_file or state_dir(cfg) / "known_hosts"
        self.trusted: list[tuple[str, str]] = []  # (host, fingerprint) this process trusted on first use

    def env(self) -> dict[str, str]:
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GIT_SSH_COMMAND": shlex.join(self.ssh())}
        # Lazy blob fetches of the partial clone cannot be given a deadline per command: make HTTP(S)
        # transfers that stall (under 1 byte/s for 30 s) fail instead of waiting forever.
        env |= {"GIT_HTTP_LOW_SPEED_LIMIT": "1", "GIT_HTTP_LOW_SPEED_TIME": "30"}
        config: list[tuple[str, str]] = []
        if self.cfg.token:
            # The token goes in a header through the environment: never in the URL, argv or .git/config.
            raw = f"{self.cfg.token_username}:{self.cfg.token.get_secret_value()}".encode()
            config.append(("http.extraHeader", "Authorization: Basic " + base64.b64encode(raw).decode()))
        env["GIT_CONFIG_COUNT"] = str(len(config))
        for i, (key, value) in enumerate(config):
            env |= {f"GIT_CONFIG_KEY_{i}": key, f"GIT_CONFIG_VALUE_{i}": value}
        return env

    def ssh(self) -> list[str]:
        """The ssh command git runs for ssh:// and git@host: remotes: host keys checked unless set to off."""
        opts = ["ssh", "-o", "BatchMode=yes"]
        if self.cfg.ssh_key_file:
            opts += ["-i", str(self.cfg.ssh_key_file), "-o", "IdentitiesOnly=yes"]
        if self.cfg.ssh_host_key_checking == "off":
            return opts + ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        # Strict by default, as Argo CD and Flux are: the forges' published keys ship with the package, a
        # known_hosts file from the chart adds the others. Trust on first use only when asked for (accept-new),
        # and never into a mounted file: ssh writes a new key to the first file, the one on the state volume.
        strict = "yes" if self.cfg.ssh_known_hosts_file else self.cfg.ssh_host_key_checking
        return opts + [
            "-o", f"UserKnownHostsFile={self.known_hosts} {FORGE_KNOWN_HOSTS}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"StrictHostKeyChecking={strict}",
            "-o", "HashKnownHosts=no",
        ]  # fmt: skip

    def watching(self) -> _HostKeyWatch:
        """Around a fetch or push: logs every host key ssh trusted on first use meanwhile."""
        return _HostKeyWatch(self.known_hosts if self.cfg.ssh_host_key_checking != "off" else None, self.trusted)


class _HostKeyWatch:
    """Logs the fingerprint of every host key ssh trusted on first use while the block ran."""

    def __init__(self, known_hosts: Path | None, trusted: list[tuple[str, str]]):
        self.path = known_hosts
        self.trusted = trusted
        self.before: set[str] = set()

    def _lines(self) -> set[str]:
        try:
            text = self.path.read_text(encoding="utf-8") if self.path else ""
        except OSError:
            return set()
        return {line for line in text.splitlines() if line.strip() and not line.startswith("#")}

    def __enter__(self) -> _HostKeyWatch:
        self.before = self._lines()
        return self

    def __exit__(self, *exc: object) -> None:
        for line in sorted(self._lines() - self.before):
            host, _, key = line.partition(" ")
            fingerprint = _fingerprint(key)
            self.trusted.append((host, fingerprint))
            get_logger().warning("ssh_host_key_trusted", host=host, fingerprint=fingerprint, known_hosts=str(self.path))


def _fingerprint(key: str) -> str:
    try:
        found = subprocess.run(["ssh-keygen", "-l", "-f", "-"], input=key, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (ssh-keygen not found)"
    return found.stdout.split()[1] if found.returncode == 0 and found.stdout else "unknown"
