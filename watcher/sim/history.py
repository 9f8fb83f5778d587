"""Synthetic git history at scale (tests and benchmarks): `git fast-import` writes 100k commits in seconds."""

from __future__ import annotations

import subprocess
from pathlib import Path


def app_dir(i: int) -> str:
    return f"helm/applications/app-{i:05d}"


def build_history(bare: Path, commits: int, apps: int, start: int = 1_700_000_000) -> dict[str, list[int]]:
    """Commit i changes app i % apps (values-stg.yaml). Returns app dir -> commit numbers that touched it."""
    touched: dict[str, list[int]] = {}
    lines: list[bytes] = []
    for i in range(commits):
        app = app_dir(i % apps)
        touched.setdefault(app, []).append(i)
        content = f"replicaCount: 1\nimage:\n  tag: build-{i}\n".encode()
        message = f"{app.rsplit('/', 1)[-1]}: build {i}".encode()
        lines += [
            b"commit refs/heads/main",
            f"mark :{i + 1}".encode(),
            f"committer Bot <bot@example.com> {start + i * 60} +0000".encode(),
            f"data {len(message)}".encode(),
            message,
        ]
        if i:
            lines.append(f"from :{i}".encode())
        lines += [f"M 100644 inline {app}/values-stg.yaml".encode(), f"data {len(content)}".encode(), content, b""]
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(bare)], check=True)
    subprocess.run(["git", "-C", str(bare), "config", "uploadpack.allowFilter", "true"], check=True)
    subprocess.run(["git", "-C", str(bare), "fast-import", "--quiet"], input=b"\n".join(lines) + b"\n", check=True)
    return touched


def rev_of(bare: Path, n: int) -> str:
    """The sha of commit number n (0-based) on main."""
    total = int(
        subprocess.run(
            ["git", "-C", str(bare), "rev-list", "--count", "main"], check=True, capture_output=True, text=True
        ).stdout
    )
    out = subprocess.run(
        ["git", "-C", str(bare), "rev-parse", f"main~{total - 1 - n}"], check=True, capture_output=True, text=True
    )
    return out.stdout.strip()
