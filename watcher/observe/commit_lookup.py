"""The commits detection names in events, from what the last fetch brought: never a git network call inside
detection. A lookup is a local read (GitRepo.commit never lazily fetches); a commit the clone lacks is unknown
for now (the event says so), remembered, and asked for in one bounded fetch at the next git poll."""

from __future__ import annotations

import threading
from collections import OrderedDict

from watcher.domain import Commit
from watcher.ports import WatchedRepo

KEEP = 4096  # commits kept (a fleet names a few revisions at a time)
MAX_MISSING = 256  # unknown shas remembered for the next poll's fetch; more wait for a later one


class CommitLookup:
    def __init__(self, repo: WatchedRepo):
        self.repo = repo
        self._known: OrderedDict[str, Commit] = OrderedDict()
        self._missing: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, sha: str) -> Commit | None:
        with self._lock:  # the git poll's thread empties `_missing` while detection's threads fill it
            if sha in self._known:
                self._known.move_to_end(sha)
                return self._known[sha]
            if sha in self._missing:
                return None  # asked already since the last fetch: not asked of git again in every poll
        commit = self.repo.commit(sha)
        with self._lock:
            if commit is None:
                if len(self._missing) < MAX_MISSING:
                    self._missing[sha] = None
                return None
            self._known[sha] = commit
            if len(self._known) > KEEP:
                self._known.popitem(last=False)
        return commit

    def after_fetch(self) -> None:
        """At the git poll, after its fetch: the commits detection could not name are fetched in one bounded
        call (they may be on no watched branch), then looked up afresh when next named."""
        with self._lock:
            missing = list(self._missing)
            self._missing.clear()
        if missing:
            self.repo.fetch_commits(missing)
