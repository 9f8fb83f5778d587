"""A real OpenSSH server on 127.0.0.1 serving bare repos over ssh://, with a host key the test can swap."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from watcher.sim.gitserver import free_port


def require_sshd() -> str:
    """Path of Debian's sshd: a failure in CI (scripts/test installs openssh-server), a skip elsewhere."""
    path = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
    if path is None or shutil.which("ssh-keygen") is None:
        if os.environ.get("CI"):
            pytest.fail("sshd or ssh-keygen missing: scripts/test installs openssh-server and openssh-client")
        pytest.skip("sshd not installed (apt-get install openssh-server openssh-client)")
    return path


def keygen(path: Path, comment: str = "test") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


def fingerprint(public_key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(public_key)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


class SshServer:
    """`sshd -D` on a loopback port; the client key in `client_key` may log in as the current user."""

    def __init__(self, root: Path):
        self.sshd = require_sshd()
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.user = getpass.getuser()
        self.client_key = keygen(root / "client_key", "sync-watcher")
        (root / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        self.proc: subprocess.Popen[bytes] | None = None
        self.host_key = root / "host_key"

    def url(self, bare: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{bare}"

    def start(self, host_key_name: str = "host_key") -> SshServer:
        """Start with a host key of this name, made on first use (a new name = a new identity)."""
        self.host_key = self.root / host_key_name
        if not self.host_key.exists():
            keygen(self.host_key, "host")
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation directory
        conf = self.root / "sshd_config"
        conf.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.root / 'authorized_keys'}",
                    f"AllowUsers {self.user}",
                    "PermitRootLogin prohibit-password",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "StrictModes no",
                    "UsePAM no",
                    "LogLevel ERROR",
                    "",
                ]
            )
        )
        self.proc = subprocess.Popen([self.sshd, "-D", "-e", "-f", str(conf)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("sshd did not listen within 10s")

    @property
    def host_fingerprint(self) -> str:
        return fingerprint(Path(f"{self.host_key}.pub"))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None
