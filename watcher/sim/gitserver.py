"""A real `git daemon` on 127.0.0.1 serving bare repos (demo and tests): push and fetch over git://."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GitDaemon:
    def __init__(self, base: Path, port: int | None = None):
        self.base = Path(base)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def init_bare(self, name: str) -> Path:
        path = self.base / name
        subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(path)], check=True)
        # Let clients ask for partial clones, as hosted remotes do.
        subprocess.run(["git", "-C", str(path), "config", "uploadpack.allowFilter", "true"], check=True)
        subprocess.run(["git", "-C", str(path), "config", "uploadpack.allowAnySHA1InWant", "true"], check=True)
        return path

    def start(self, timeout: float = 10.0) -> GitDaemon:
        self.base.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "git",
                "daemon",
                "--listen=127.0.0.1",
                f"--port={self.port}",
                f"--base-path={self.base}",
                "--export-all",
                "--enable=receive-pack",
                "--reuseaddr",
                str(self.base),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"git daemon exited with {self.proc.returncode}") from None
                time.sleep(0.02)
        raise RuntimeError("git daemon did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
