"""Commit statuses over HTTP, against a fake forge that checks each request the way the public API docs describe
it: GitHub "Create a commit status" (POST /repos/{owner}/{repo}/statuses/{sha}; state one of error, failure,
pending, success; description, context, target_url; 201) and GitLab "Set the pipeline status of a commit"
(POST /projects/:id/statuses/:sha; state one of pending, running, success, failed, canceled; name; 201)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from watcher.adapters.forge import ForgeError
from watcher.adapters.forge_status import commit_statuses_for
from watcher.run.web import BackgroundServer
from watcher.settings import ForgeSettings

SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "forge-token-never-shown"


class FakeForge:
    def __init__(self) -> None:
        self.posted: list[tuple[str, dict[str, Any]]] = []

    async def github(self, request: Request) -> JSONResponse:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        if request.headers.get("accept") != "application/vnd.github+json":
            return JSONResponse({"message": "wrong Accept"}, status_code=415)
        body = await request.json()
        problems = [k for k in body if k not in ("state", "target_url", "description", "context")]
        if body.get("state") not in ("error", "failure", "pending", "success") or problems:
            return JSONResponse({"message": "Validation Failed", "errors": problems}, status_code=422)
        if len(body.get("description", "")) > 140 or not re.fullmatch(r"[0-9a-f]{40}", request.path_params["sha"]):
            return JSONResponse({"message": "Validation Failed"}, status_code=422)
        self.posted.append((request.url.path, body))
        return JSONResponse({"id": 1, "state": body["state"], "context": body.get("context", "default")}, 201)

    async def gitlab(self, request: Request) -> JSONResponse:
        if request.headers.get("private-token") != TOKEN:
            return JSONResponse({"message": "401 Unauthorized"}, status_code=401)
        body = await request.json()
        if body.get("state") not in ("pending", "running", "success", "failed", "canceled"):
            return JSONResponse({"message": "state does not have a valid value"}, status_code=400)
        self.posted.append((request.url.path, body))
        return JSONResponse({"id": 1, "status": body["state"], "name": body.get("name", "default")}, 201)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/repos/{owner}/{repo}/statuses/{sha}", self.github, methods=["POST"]),
                Route("/api/v4/projects/{project:path}/statuses/{sha}", self.gitlab, methods=["POST"]),
            ]
        )


@pytest.fixture
def forge() -> Iterator[tuple[FakeForge, str]]:
    fake = FakeForge()
    server = BackgroundServer(fake.app(), "127.0.0.1", 0)
    server.start()
    yield fake, f"http://127.0.0.1:{server.port}"
    server.stop(2.0)


def settings(kind: str, api_url: str) -> ForgeSettings:
    return ForgeSettings(kind=kind, api_url=api_url, token=SecretStr(TOKEN))  # type: ignore[arg-type]


def test_github_gets_a_failure_status_with_argo_cds_words_cut_to_140(forge: tuple[FakeForge, str]) -> None:
    fake, url = forge
    statuses = commit_statuses_for(settings("github", url), "git@github.com:org/gitops.git")
    assert statuses is not None
    statuses.post(SHA, "failure", "sync-watcher/preflight: plate-api", "will_fail_to_render: " + "x" * 300)
    path, body = fake.posted[0]
    assert path == f"/repos/org/gitops/statuses/{SHA}"
    assert body["state"] == "failure" and body["context"] == "sync-watcher/preflight: plate-api"
    assert len(body["description"]) == 140


def test_gitlab_gets_its_own_state_names_and_the_encoded_project(forge: tuple[FakeForge, str]) -> None:
    fake, url = forge
    statuses = commit_statuses_for(settings("gitlab", url + "/api/v4"), "https://gitlab.com/group/sub/gitops.git")
    assert statuses is not None
    statuses.post(SHA, "failure", "sync-watcher/preflight: plate-api", "will_fail_to_render", "https://w/explain")
    statuses.post(SHA, "success", "sync-watcher/preflight: plate-web", "renders")
    assert [b["state"] for _, b in fake.posted] == ["failed", "success"]
    assert fake.posted[0][1]["name"] == "sync-watcher/preflight: plate-api"
    assert fake.posted[0][1]["target_url"] == "https://w/explain"


def test_a_refusal_is_named_without_the_token(forge: tuple[FakeForge, str]) -> None:
    _, url = forge
    wrong = ForgeSettings(kind="github", api_url=url, token=SecretStr("wrong"))  # type: ignore[arg-type]
    statuses = commit_statuses_for(wrong, "git@github.com:org/gitops.git")
    assert statuses is not None
    with pytest.raises(ForgeError) as err:
        statuses.post(SHA, "success", "c", "renders")
    assert "HTTP 401" in str(err.value) and "wrong" not in str(err.value)


def test_no_forge_no_statuses() -> None:
    assert commit_statuses_for(ForgeSettings(), "git@github.com:org/gitops.git") is None
