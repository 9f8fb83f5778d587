"""The image, built from the Dockerfile with buildah (no Docker engine) on a local Debian bookworm stand-in for
python:3.11-slim-bookworm, and run the way the chart runs it: uid 10001, read-only root filesystem, tmpfs /tmp.
Select with `-m image`; it needs root, buildah and mmdebstrap (scripts/test installs them) and takes ~2 minutes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.waiting import wait_for
from watcher.sim.gitserver import free_port
from watcher.sim.world import SimWorld

pytestmark = [pytest.mark.image, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# The name the Dockerfile's PYTHON_IMAGE is given; nothing is pulled, only the local stand-in answers to it.
BASE = "docker.io/library/python:3.11-slim-bookworm"
IMAGE = "localhost/sync-watcher:test"
ADDED_MB_GOAL = 150
# python:3.11-slim-bookworm is debootstrap's bookworm (merged /usr, no recommends, so no perl) with ca-certificates,
# netbase and tzdata, and Python in /usr/local; Debian's python3 stands in for that Python. Today's point release,
# as a rebuilt base would have it.
MMDEBSTRAP = [
    "mmdebstrap",
    "--variant=minbase",
    "--include=python3,python3-venv,ca-certificates,netbase,tzdata",
    '--aptopt=APT::Install-Recommends "false"',
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    "bookworm",
]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
OFFLINE = ("Temporary failure resolving", "Could not resolve", "NewConnectionError", "Network is unreachable")
SECRETS = "/var/run/secrets/sync-watcher"


class BuildahFailed(Exception):
    pass


@dataclass
class Buildah:
    """buildah with its own storage under `root`: vfs (no overlay mounts needed) and chroot isolation (no runc)."""

    root: Path

    def command(self, *args: str) -> list[str]:
        storage = ["--root", str(self.root / "storage"), "--runroot", str(self.root / "run"), "--storage-driver", "vfs"]
        return ["buildah", *storage, *args]

    def __call__(self, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        env = os.environ | {"BUILDAH_ISOLATION": "chroot"}
        done = subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout, env=env)
        if check and done.returncode != 0:
            raise BuildahFailed(f"buildah {args[0]} failed:\n{done.stderr[-3000:]}")
        return done


@dataclass
class Image:
    buildah: Buildah
    base_seconds: float
    build_seconds: float
    added_bytes: int
    config: dict[str, Any] = field(repr=False)

    def container(self) -> str:
        return self.buildah("from", "--pull=never", IMAGE).stdout.strip()

    def run_args(
        self, command: Sequence[str], env: Mapping[str, str] | None = None, mounts: Sequence[str] = ()
    ) -> list[str]:
        """`buildah run` arguments for `command` in a fresh container, as the chart's pod runs it: as the image's
        USER, with no capabilities and no new privileges, a read-only root, a tmpfs /tmp and the image's volume
        writable. buildah run has no --read-only: the shell starts as root with CAP_SYS_ADMIN just to remount /
        read-only, then setpriv drops to the user and every capability before exec."""
        uid, gid = self.config["User"].split(":")
        drop = (
            f"mount -o remount,bind,ro / && exec setpriv --reuid={uid} --regid={gid} --clear-groups"
            ' --bounding-set=-all --no-new-privs -- "$@"'
        )
        options = ["--user", "0:0", "--cap-add", "CAP_SYS_ADMIN", "--mount", "type=tmpfs,destination=/tmp"]
        options += [f"--mount={m}" for m in mounts]
        options += [arg for name, value in (env or {}).items() for arg in ("-e", f"{name}={value}")]
        options += ["-e", "TINI_SUBREAPER=1"]  # tini is not PID 1 here; as a subreaper it still reaps and forwards
        return ["run", *options, self.container(), "--", "sh", "-c", drop, "sh", *command]

    @property
    def entrypoint(self) -> list[str]:
        return list(self.config["Entrypoint"])


def skip_unless_buildah_can_run(buildah: Buildah) -> None:
    missing = [tool for tool in ("buildah", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{', '.join(missing)} missing: scripts/test installs buildah, mmdebstrap and uidmap")
        pytest.skip(f"the image is not built: {', '.join(missing)} not installed (apt-get install buildah mmdebstrap)")
    if os.geteuid() != 0:
        pytest.skip("the image is not built: buildah's chroot isolation and mmdebstrap need root here")
    probe = buildah("from", "scratch", check=False, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"the image is not built: buildah cannot run on this machine: {probe.stderr.strip()[-500:]}")
    buildah("rm", probe.stdout.strip())


def skip_if_offline(what: str, done: subprocess.CompletedProcess[str]) -> None:
    output = done.stdout + done.stderr
    if any(sign in output for sign in OFFLINE):
        pytest.skip(f"the image is not built: {what} could not reach the network")
    pytest.fail(f"{what} failed:\n{output[-4000:]}")


def build_base(buildah: Buildah, workdir: Path) -> None:
    """The stand-in for python:3.11-slim-bookworm, imported into buildah's storage under that name."""
    tarball = workdir / "bookworm.tar"
    done = subprocess.run([*MMDEBSTRAP, str(tarball)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        skip_if_offline("mmdebstrap", done)
    ctr = buildah("from", "scratch").stdout.strip()
    root = Path(buildah("mount", ctr).stdout.strip())
    subprocess.run(["tar", "-C", str(root), "-xf", str(tarball)], check=True)
    tarball.unlink()
    (root / "usr/local/bin").mkdir(parents=True, exist_ok=True)
    (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")  # where python:*-slim has it
    # pip in the build must trust this machine's CAs (there may be a proxy in between): the stand-in only.
    shutil.copy(HOST_CA, root / "etc/ssl/host-ca-bundle.crt")
    env = ["SSL_CERT_FILE=/etc/ssl/host-ca-bundle.crt", "PIP_CERT=/etc/ssl/host-ca-bundle.crt", "LANG=C.UTF-8"]
    buildah("config", *(arg for e in env for arg in ("--env", e)), "--cmd", "python3", ctr)
    buildah("unmount", ctr)
    buildah("commit", "-q", ctr, BASE)
    buildah("rm", ctr)


def layer_sizes(buildah: Buildah, image: str) -> dict[str, int]:
    """Uncompressed size of each layer, by digest (local storage keeps layers as plain tars)."""
    manifest = json.loads(json.loads(buildah("inspect", "--type", "image", image).stdout)["Manifest"])
    return {layer["digest"]: layer["size"] for layer in manifest["layers"]}


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    workdir = tmp_path_factory.mktemp("image")
    buildah = Buildah(workdir / "buildah")
    skip_unless_buildah_can_run(buildah)
    try:
        started = time.monotonic()
        build_base(buildah, workdir)
        base_seconds = time.monotonic() - started
        started = time.monotonic()
        args = ["--pull-never", "--isolation", "chroot", "--build-arg", f"PYTHON_IMAGE={BASE}"]
        done = buildah("build", *args, "-f", str(ROOT / "Dockerfile"), "-t", IMAGE, str(ROOT), check=False)
        if done.returncode != 0:
            skip_if_offline("buildah build", done)
        build_seconds = time.monotonic() - started
        base, built = layer_sizes(buildah, BASE), layer_sizes(buildah, IMAGE)
        added = sum(size for digest, size in built.items() if digest not in base)
        config = json.loads(buildah("inspect", "--type", "image", IMAGE).stdout)["OCIv1"]["config"]
        yield Image(buildah, base_seconds, build_seconds, added, config)
    finally:
        buildah("rm", "--all", check=False)
        buildah("rmi", "--all", "--force", check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_dockerfile_builds_on_todays_bookworm_and_adds_little(
    image: Image, capsys: pytest.CaptureFixture[str]
) -> None:
    added_mb = image.added_bytes / 1e6
    with capsys.disabled():
        print(
            f"\nimage: stand-in base built in {image.base_seconds:.0f} s, image built in {image.build_seconds:.0f} s;"
            f" the Dockerfile adds {added_mb:.1f} MB to the base (goal: under {ADDED_MB_GOAL} MB)"
        )
    assert image.config["User"] == "10001:0"
    assert image.entrypoint == ["/usr/bin/tini", "--", "sync-watcher"] and image.config["Cmd"] == ["run"]
    assert added_mb < ADDED_MB_GOAL, f"the Dockerfile adds {added_mb:.1f} MB; see what it installs and keeps"


def test_the_container_runs_as_10001_with_only_tmp_and_the_volume_writable(image: Image) -> None:
    probe = "id -u; for d in /opt /etc /tmp /var/lib/sync-watcher; do touch $d/probe 2>/dev/null && echo $d; done"
    done = image.buildah(*image.run_args(["sh", "-c", probe]))
    assert done.stdout.split() == ["10001", "/tmp", "/var/lib/sync-watcher"], done.stdout + done.stderr


def test_the_demo_passes_inside_the_image(image: Image) -> None:
    done = image.buildah(*image.run_args([*image.entrypoint, "demo"]), check=False, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout
    assert "DETECTED sync_failed on plate-api-stg" in out
    assert "REVERTED plate-api-stg" in out and "the revert undoes only the bad commit: yes" in out
    # the refused sync never changed the cluster, so the revert needs no sync: the demo says "restored", not "healthy"
    assert "restored plate-api-stg Synced and Healthy on the revert" in out and "open incidents: 0" in out


@pytest.fixture
def chart_env(world: SimWorld, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The environment the chart gives the container (stg values), pointed at the simulated world on loopback, and
    a directory with the files the chart mounts from its Secret."""
    from tests.support.chart import CASES, by_kind, render  # needs helm_python: imported only when this test runs

    container = by_kind(render(CASES["stg"]), "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, value in env.items():
        if value.startswith(SECRETS + "/"):
            (secrets / Path(value).name).write_text("demo-token-123456" if "TOKEN" in name else "")
    for name in ("WATCHER_GIT__SSH_KEY_FILE", "WATCHER_GIT__SSH_KNOWN_HOSTS_FILE"):
        env.pop(name)  # the world's remote is git://, not SSH
    env.pop("WATCHER_SLACK__BOT_TOKEN_FILE")
    env.pop("WATCHER_SLACK__CHANNEL")
    # Store and clone stay where the chart puts them (the volume); only the addresses change.
    env |= {
        "WATCHER_ARGOCD__URL": world.argocd_url,
        "WATCHER_GIT__URL": world.repo_url,
        "WATCHER_HTTP__HOST": "127.0.0.1",
        "WATCHER_HTTP__PORT": str(free_port()),
    }
    return env, secrets


def test_run_with_the_charts_stg_environment_is_ready_and_stops_on_sigterm(
    image: Image, chart_env: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, secrets = chart_env
    # /var/run is a symlink to /run in the image; buildah 1.28 silently drops a mount whose path goes through one.
    mount = f"type=bind,source={secrets},destination={SECRETS.replace('/var/run/', '/run/')},ro"
    args = image.buildah.command(*image.run_args([*image.entrypoint, *image.config["Cmd"]], env, [mount]))
    log = tmp_path / "container.log"
    with log.open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{env['WATCHER_HTTP__PORT']}"
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None  # stop waiting if it died

        wait_for(ready, 90, "/readyz inside the image")
        assert proc.poll() is None, log.read_text()[-3000:]
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert "sync_watcher_app_info" in httpx.get(f"{url}/metrics").text
        tini = next(p for p in psutil.Process(proc.pid).children(recursive=True) if p.name() == "tini")
        stopped = time.monotonic()
        tini.send_signal(signal.SIGTERM)  # what the kubelet sends to the container's PID 1
        assert proc.wait(15) == 0, log.read_text()[-3000:]
        assert time.monotonic() - stopped < 10, "SIGTERM took longer than the README promises"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert {"watcher_started", "watcher_stopped"} <= {line["event"] for line in lines}, text[-3000:]
    assert "demo-token-123456" not in text
