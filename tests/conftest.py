"""Shared fixtures: a simulated world on loopback, a wait-for-condition helper (no sleeps in tests)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from watcher.sim.gitserver import free_port
from watcher.sim.world import SimWorld


@pytest.fixture
def world(tmp_path: Path) -> Iterator[SimWorld]:
    w = SimWorld.start(tmp_path / "world")
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def scenario(world: SimWorld, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Make watchers with auto-revert over `world` (tests/support/revert_world.py); all are stopped after the test."""
    from tests.support.revert_world import Scenario

    made: list[Scenario] = []

    def make(**revert: Any) -> Scenario:
        s = Scenario(world, tmp_path / f"watcher{len(made)}", **revert)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    return found


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server (Debian's binaries) for the whole session; tests clean the schema they use."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL missing: .ci/run installs Debian's postgresql package")
        pytest.skip("PostgreSQL not installed (apt-get install postgresql)")
    # pytest's tmp dirs are private to root; the postgres user needs a directory of its own.
    data = Path(tempfile.mkdtemp(prefix="watcher-pg-")) / "data"
    port = free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(data.parent, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "watcher"], check=True, capture_output=True)
    subprocess.run(
        [
            *as_user,
            pg_ctl,
            "-D",
            str(data),
            "-w",
            "-l",
            str(data.parent / "log"),
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {port} -k {data.parent}",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://watcher@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(data.parent, ignore_errors=True)
