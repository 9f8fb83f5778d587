"""A whole simulated world on loopback: git daemon + demo GitOps repo + Argo CD simulator."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette

from watcher.run.web import BackgroundServer
from watcher.settings import Settings, load_settings
from watcher.sim.clock import SimClock, WallClock
from watcher.sim.controller import Cluster, Controller, SimTimings
from watcher.sim.gitops_repo import (
    DEMO_APPS,
    IMAGE_BEHAVIOURS,
    WorkClone,
    fleet_applications,
    known_config_objects,
    known_images,
    repo_files,
)
from watcher.sim.gitserver import GitDaemon
from watcher.sim.server import Auth, Faults, build_sim_app

# Pods pull and become ready in 0.25 s, inside the 0.4 s after which the app's health turns.
FAST = SimTimings(git_poll_seconds=0.5, sync_seconds=0.2, health_seconds=0.4, backoff_scale=0.02, pod_scale=0.05)


@dataclass
class SimWorld:
    root: Path
    git: GitDaemon
    work: WorkClone
    controller: Controller
    server: BackgroundServer
    faults: Faults
    auth: Auth
    api: Starlette
    clock: SimClock

    @property
    def repo_url(self) -> str:
        return self.git.url("gitops.git")

    @property
    def argocd_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    @classmethod
    def start(
        cls,
        root: Path,
        timings: SimTimings = FAST,
        retry_limit: int = 2,
        auth: Auth | None = None,
        port: int = 0,
        apps: int = DEMO_APPS,
        clock: SimClock | None = None,
        cluster: Cluster | None = None,
    ) -> SimWorld:
        """A world of `apps` Applications: the demo's, and past those a fleet deploying the demo's charts."""
        root = Path(root)
        daemon = GitDaemon(root / "remotes").start()
        daemon.init_bare("gitops.git")
        work = WorkClone(root / "work", daemon.url("gitops.git"))
        work.init(repo_files(daemon.url("gitops.git"), retry_limit=retry_limit))
        work.push()
        clock = clock or WallClock()
        cluster = cluster or Cluster(
            images=known_images(), behaviours=dict(IMAGE_BEHAVIOURS), config_objects=known_config_objects()
        )
        controller = Controller(
            daemon.url("gitops.git"), root / "sim", timings=timings, cluster=cluster, clock=clock.time
        )
        controller.add_apps(fleet_applications(daemon.url("gitops.git"), apps - DEMO_APPS, retry_limit))
        faults, auth = Faults(), auth or Auth()
        api = build_sim_app(controller, faults, auth)
        server = BackgroundServer(api, "127.0.0.1", port)
        controller.start()
        server.start()
        return cls(root, daemon, work, controller, server, faults, auth, api, clock)

    def watcher_settings(self, state_dir: Path, poll_seconds: float = 2.0, grace_seconds: float = 1.0) -> Settings:
        """Settings for a watcher of this world, with timings scaled down like the simulator's."""
        return load_settings(
            argocd={"url": self.argocd_url, "list_interval_seconds": poll_seconds},
            git={"url": self.repo_url, "clone_dir": state_dir / "watcher-clone", "poll_interval_seconds": poll_seconds},
            detection={
                "comparison_error_grace_seconds": grace_seconds,
                "degraded_grace_seconds": grace_seconds,
                "progress_deadline_seconds": 3 * grace_seconds,
            },
            store={"url": f"sqlite:///{state_dir}/state.db"},
            # A fresh admin token per world: the API stays closed to anyone without it, as in production.
            http={"host": "127.0.0.1", "port": 0, "admin_token": secrets.token_urlsafe(16)},
        )

    def drop_streams(self) -> None:
        self.api.state.broadcaster.drop_all()

    def stop(self) -> None:
        self.drop_streams()
        self.server.stop()
        self.controller.stop()
        self.git.stop()
