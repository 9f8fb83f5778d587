"""pull-request mode: the revert goes to a branch on the real git remote and a pull/merge request is opened
through a fake forge that checks requests the way GitHub's and GitLab's REST APIs document them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.revert_world import Scenario
from tests.support.waiting import wait_for
from watcher.adapters.forge import ForgeError, GitHubPulls, GitLabMergeRequests, project_from_url
from watcher.run.web import BackgroundServer
from watcher.settings import ForgeSettings
from watcher.sim.world import SimWorld

TOKEN = "forge-token-5ecret"


class FakeForge:
    """POST /repos/{owner}/{repo}/pulls (GitHub) and /projects/{id}/merge_requests (GitLab, id URL-encoded)."""

    def __init__(self, remote: Path, fail_first: int = 0):
        self.remote = remote
        self.opened: list[dict[str, Any]] = []
        self.fail_first = fail_first

    def _branch_exists(self, branch: str) -> bool:
        r = subprocess.run(
            ["git", "-C", str(self.remote), "rev-parse", "--verify", f"refs/heads/{branch}"], capture_output=True
        )
        return r.returncode == 0

    async def github(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"message": "Bad credentials"}, 401)
        if self.fail_first:
            self.fail_first -= 1
            return JSONResponse({"message": "Server Error"}, 502)
        body = await request.json()
        missing = [k for k in ("head", "base") if not body.get(k)] + ([] if body.get("title") else ["title"])
        if missing or not self._branch_exists(body["head"]):
            return JSONResponse({"message": "Validation Failed", "errors": [{"field": missing or "head"}]}, 422)
        n = len(self.opened) + 1
        self.opened.append({"api": "github", "path": request.url.path} | body)
        owner, repo = request.path_params["owner"], request.path_params["repo"]
        return JSONResponse({"number": n, "html_url": f"https://github.example/{owner}/{repo}/pull/{n}"}, 201)

    async def gitlab(self, request: Request) -> JSONResponse:
        if request.headers.get("private-token") != TOKEN:
            return JSONResponse({"message": "401 Unauthorized"}, 401)
        body = await request.json()
        if not all(body.get(k) for k in ("source_branch", "target_branch", "title")):
            return JSONResponse({"error": "source_branch, target_branch, title are missing"}, 400)
        if not self._branch_exists(body["source_branch"]):
            return JSONResponse({"message": ["Source branch does not exist"]}, 422)
        n = len(self.opened) + 1
        self.opened.append({"api": "gitlab", "path": request.scope["raw_path"].decode()} | body)
        return JSONResponse({"iid": n, "web_url": f"https://gitlab.example/group/gitops/-/merge_requests/{n}"}, 201)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/repos/{owner}/{repo}/pulls", self.github, methods=["POST"]),
                Route("/api/v4/projects/{project:path}/merge_requests", self.gitlab, methods=["POST"]),
            ]
        )


@pytest.fixture
def forge(world: SimWorld) -> Iterator[tuple[FakeForge, str]]:
    fake = FakeForge(world.root / "remotes" / "gitops.git")
    server = BackgroundServer(fake.app(), "127.0.0.1", 0)
    server.start()
    yield fake, f"http://127.0.0.1:{server.port}"
    server.stop()


def test_project_is_read_from_any_spelling_of_the_remote() -> None:
    assert project_from_url("git@github.com:plate/gitops.git") == "plate/gitops"
    assert project_from_url("https://gitlab.com/group/sub/gitops") == "group/sub/gitops"


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_pull_request_mode_pushes_a_branch_and_opens_a_request(
    world: SimWorld, forge: tuple[FakeForge, str], scenario: Callable[..., Scenario], kind: str
) -> None:
    fake, url = forge
    s = scenario(mode="pull-request")
    api = url if kind == "github" else url + "/api/v4"
    cfg = ForgeSettings(kind=kind, api_url=api, project="plate/gitops", token=SecretStr(TOKEN))  # type: ignore[arg-type]
    s.settings = s.settings.model_copy(update={"forge": cfg})
    s.start()
    bad = s.push("plate-api-stg: scale to -1", {"plate-api-stg": ("replicaCount", -1)})
    row = wait_for(lambda: s.revert_rows("pull_request_opened"), what="pull request opened")[0]
    assert s.remote_log()[0][0] == bad  # main untouched: a human merges
    opened = fake.opened[0]
    branch = opened["head"] if kind == "github" else opened["source_branch"]
    assert branch == row.detail["branch"] and branch.startswith("sync-watcher/revert-")
    text = opened["body"] if kind == "github" else opened["description"]
    assert f"Sync-Watcher-Reverts: {bad}" in text and opened["title"] == 'Revert "plate-api-stg: scale to -1"'
    if kind == "gitlab":
        assert opened["path"] == "/api/v4/projects/plate%2Fgitops/merge_requests"
    assert row.url.endswith("/1")
    tip = subprocess.run(
        ["git", "-C", str(fake.remote), "log", "-1", "--format=%H %P", branch],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tip == [row.revert_sha, bad]


def test_forge_errors_are_retried_then_named_without_the_token(world: SimWorld, forge: tuple[FakeForge, str]) -> None:
    fake, url = forge
    fake.fail_first = 1
    pulls = GitHubPulls(
        ForgeSettings(kind="github", api_url=url, token=SecretStr(TOKEN)), "git@github.com:plate/gitops"
    )  # type: ignore[arg-type]
    with pytest.raises(ForgeError) as err:
        pulls.open("no-such-branch", "main", "t", "b")  # 502 retried, then 422: the branch was never pushed
    assert "422" in str(err.value) and TOKEN not in str(err.value)
    bad_token = GitLabMergeRequests(
        ForgeSettings(kind="gitlab", api_url=url + "/api/v4", token=SecretStr("nope")), "x/y"
    )  # type: ignore[arg-type]
    with pytest.raises(ForgeError, match="401"):
        bad_token.open("b", "main", "t", "d")
