"""The repo server's cached manifest generation error: after repeated failures of one render it answers the last
error from its cache, "Manifest generation error (cached): ...", for an hour.

argo-cd 37ee0097 reposerver/repository/repository.go:977-1013 counts consecutive failures per manifest-cache key
(the resolved commit, the source, the app); once 3 have failed (ARGOCD_PAUSE_GEN_AFTER_FAILED_ATTEMPTS, cmd/
argocd-repo-server/commands/argocd_repo_server.go:48; repository.go:1061) every request gets the cached error
(1095-1113), the 4th on, until 60 whole minutes after the first failure (ARGOCD_PAUSE_GEN_MINUTES, :49;
repository.go:1060-1077), then generation runs again. A hard refresh (noCache) skips the cache (389-393); a new
commit is a new key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

CACHED_PREFIX = "Manifest generation error (cached)"  # repository.go:79


@dataclass
class Failures:
    first: float
    count: int
    last_error: str


@dataclass
class ManifestErrorCache:
    entries: dict[tuple[str, str], Failures] = field(default_factory=dict)  # (app, commit) -> its failures

    def cached(
        self, app: str, commit: str, now: float, hard: bool, after: int = 3, minutes: float = 60.0
    ) -> str | None:
        """The cached error a request for (app, commit) gets instead of a render, or None: render it. `after`
        failures start the cache (0: never), which lasts `minutes` from the first."""
        entry = self.entries.get((app, commit))
        if hard or after <= 0 or entry is None or entry.count < after:
            return None
        if int((now - entry.first) / 60) >= minutes:
            del self.entries[(app, commit)]
            return None
        return f"{CACHED_PREFIX}: {entry.last_error}"

    def failed(self, app: str, commit: str, error: str, now: float) -> None:
        entry = self.entries.get((app, commit))
        if entry is None:
            self.entries[(app, commit)] = Failures(now, 1, error)
        else:
            entry.count += 1
            entry.last_error = error

    def succeeded(self, app: str, commit: str) -> None:
        self.entries.pop((app, commit), None)
