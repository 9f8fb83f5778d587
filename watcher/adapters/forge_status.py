"""Commit statuses on the forge (beside forge.py's pull requests): the pre-flight's verdict on any sha, pushed to
a branch or in a pull request.

GitHub: POST /repos/{owner}/{repo}/statuses/{sha}, JSON {state: error|failure|pending|success, target_url,
description, context} -> 201 ("Create a commit status", REST API 2022-11-28). GitLab: POST
/projects/:id/statuses/:sha, {state: pending|running|success|failed|canceled, name, description, target_url}
-> 201 ("Set the pipeline status of a commit", REST API v4). Both keep one status per (sha, context/name),
replaced by a later post with the same label.
"""

from __future__ import annotations

from urllib.parse import quote

from watcher.adapters.forge import GitHubPulls, GitLabMergeRequests
from watcher.ports import CommitStatuses
from watcher.settings import ForgeSettings

DESCRIPTION_MAX = 140  # GitHub refuses a longer description (422); GitLab takes it, cut the same for both
GITLAB_STATE = {"success": "success", "failure": "failed", "error": "failed", "pending": "pending"}


class GitHubStatuses(GitHubPulls):
    def post(self, sha: str, state: str, context: str, description: str, target_url: str = "") -> None:
        body: dict[str, object] = {"state": state, "context": context, "description": description[:DESCRIPTION_MAX]}
        if target_url:
            body["target_url"] = target_url
        self._post(f"/repos/{self.project}/statuses/{sha}", body)


class GitLabStatuses(GitLabMergeRequests):
    def post(self, sha: str, state: str, context: str, description: str, target_url: str = "") -> None:
        body: dict[str, object] = {
            "state": GITLAB_STATE[state],
            "name": context,
            "description": description[:DESCRIPTION_MAX],
        }
        if target_url:
            body["target_url"] = target_url
        self._post(f"/projects/{quote(self.project, safe='')}/statuses/{sha}", body)


def commit_statuses_for(cfg: ForgeSettings, git_url: str) -> CommitStatuses | None:
    """The forge's commit-status client, or None when no forge (or no token) is configured."""
    if cfg.token is None:
        return None
    if cfg.kind == "github":
        return GitHubStatuses(cfg, git_url)
    if cfg.kind == "gitlab":
        return GitLabStatuses(cfg, git_url)
    return None
