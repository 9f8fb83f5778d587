"""A watched repo that has nothing: for tests of the Argo CD side alone."""

from __future__ import annotations

from typing import Any

SHA = "a" * 40


class NoRepo:
    def sync(self) -> str:
        return SHA

    def commit(self, sha: str) -> None:
        return None

    def fetch_commits(self, shas: Any) -> None:
        pass

    def yaml_files(self, rev: str, directories: Any) -> dict[str, str]:
        return {}
