"""Opening a pull request (GitHub) or merge request (GitLab) for a revert branch, over their REST APIs (httpx)."""

from __future__ import annotations

from urllib.parse import quote

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from watcher.core.appmap import normalize_repo_url
from watcher.core.plain_text import visible_all
from watcher.domain import NeedsHuman
from watcher.ports import PullRequests
from watcher.settings import ForgeSettings


class ForgeError(NeedsHuman):
    """The forge refused or could not be reached; the message never holds the token."""


class _Retryable(ForgeError):
    pass


def project_from_url(git_url: str) -> str:
    """`org/repo` from any spelling of the remote URL (the normalised form is host/org/repo)."""
    return normalize_repo_url(git_url).split("/", 1)[-1]


class _Forge:
    def __init__(self, cfg: ForgeSettings, git_url: str, headers: dict[str, str], timeout: float = 15.0):
        if cfg.token is None:
            raise ForgeError("WATCHER_FORGE__TOKEN: not set (expected: an API token that may open pull requests)")
        self.project = cfg.project or project_from_url(git_url)
        self.client = httpx.Client(base_url=cfg.api_url.rstrip("/"), headers=headers, timeout=timeout)

    @retry(
        retry=retry_if_exception_type(_Retryable),
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=0.5, max=8),
        reraise=True,
    )
    def _post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        try:
            r = self.client.post(path, json=visible_all(body))  # titles and bodies quote commit subjects
        except httpx.HTTPError as exc:
            raise _Retryable(f"{path}: {type(exc).__name__}") from None
        if r.status_code >= 500 or r.status_code == 429:
            raise _Retryable(f"{path}: HTTP {r.status_code}")
        if r.status_code >= 400:
            raise ForgeError(f"{path}: HTTP {r.status_code}: {r.text[:200]}")
        data = r.json()
        if not isinstance(data, dict):
            raise ForgeError(f"{path}: answer is not a JSON object")
        return data


class GitHubPulls(_Forge):
    """POST /repos/{owner}/{repo}/pulls (GitHub REST API, also GitHub Enterprise's /api/v3)."""

    def __init__(self, cfg: ForgeSettings, git_url: str):
        token = cfg.token.get_secret_value() if cfg.token else ""
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        super().__init__(cfg, git_url, headers)

    def open(self, branch: str, base: str, title: str, body: str) -> str:
        data = self._post(f"/repos/{self.project}/pulls", {"title": title, "head": branch, "base": base, "body": body})
        return str(data.get("html_url", ""))


class GitLabMergeRequests(_Forge):
    """POST /projects/:id/merge_requests (GitLab REST API v4; :id is the URL-encoded project path)."""

    def __init__(self, cfg: ForgeSettings, git_url: str):
        token = cfg.token.get_secret_value() if cfg.token else ""
        super().__init__(cfg, git_url, {"PRIVATE-TOKEN": token})

    def open(self, branch: str, base: str, title: str, body: str) -> str:
        data = self._post(
            f"/projects/{quote(self.project, safe='')}/merge_requests",
            {
                "source_branch": branch,
                "target_branch": base,
                "title": title,
                "description": body,
                "remove_source_branch": True,
            },
        )
        return str(data.get("web_url", ""))


def pull_requests_for(cfg: ForgeSettings, git_url: str) -> PullRequests | None:
    if cfg.kind == "github":
        return GitHubPulls(cfg, git_url)
    if cfg.kind == "gitlab":
        return GitLabMergeRequests(cfg, git_url)
    return None
