"""When the simulated controller compares each app with git, and which branch head it sees when it does.

Argo CD (37ee0097) notices a push without a webhook through three clocks:
- the app informer's resync every `timeout.reconciliation` (120 s; cmd/argocd-application-controller/commands/
  argocd_application_controller.go:45,260), each app's refresh delayed by a fresh random 0-60 s
  (`timeout.reconciliation.jitter`; controller/appcontroller.go:2933-2937);
- the expiry gate: the queued refresh compares only when `reconciledAt + 120 s` has passed
  (appcontroller.go:2155-2218, types.go:3665), so a resync whose jitter is shorter than the last one's is skipped;
- the repo server's ls-remote cache per repo URL, 3 min (reposerver/cache/cache.go:75,225-236;
  util/git/client.go:810-874): a branch resolves to the head fetched up to 3 min ago.
A webhook or `?refresh` sets the refresh annotation: the app is compared now with CompareWithLatestForceResolve
(appcontroller.go:2163-2167), which skips the ls-remote cache (reposerver/repository/repository.go:367) and the
repo-error grace (controller/state.go:751-762); the fresh refs are written back to the cache (client.go:864-871).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class RefsCache:
    """The repo server's ls-remote cache of one repo: when the branch heads were last fetched."""

    fetched_at: float | None = None

    def stale(self, now: float, ttl: float) -> bool:
        return self.fetched_at is None or now - self.fetched_at >= ttl

    def fetched(self, now: float) -> None:
        self.fetched_at = now


@dataclass
class RefreshSchedule:
    """Which apps' refreshes are due, per app: queued by the resync with their own jitter, or asked for."""

    rng: random.Random
    next_resync: float | None = None
    queued: dict[str, float] = field(default_factory=dict)  # app -> when its refresh is processed
    forced: dict[str, str] = field(default_factory=dict)  # app -> "normal" | "hard": the refresh annotation
    known: set[str] = field(default_factory=set)  # apps the informer has added

    def request(self, names: Iterable[str], hard: bool = False) -> None:
        """A webhook (every app of the repo) or `?refresh=` (one app): processed at the next tick."""
        for name in names:
            if self.forced.get(name) != "hard":
                self.forced[name] = "hard" if hard else "normal"

    def due(self, now: float, names: Iterable[str], period: float, jitter: float) -> list[tuple[str, str | None]]:
        """The apps to look at now, each with its refresh annotation (None: a resync, which the expiry gate
        may skip). An app never seen is looked at at once (the informer's add has no jitter)."""
        names = list(names)
        for name in names:
            if name not in self.known:
                self.known.add(name)
                self.queued.setdefault(name, now)
        if self.next_resync is None or now >= self.next_resync:
            self.next_resync = now + period
            for name in names:
                delay = self.rng.uniform(0, jitter) if jitter > 0 else 0.0
                self.queued[name] = min(self.queued.get(name, now + delay), now + delay)
        ready = [n for n, at in self.queued.items() if at <= now] + list(self.forced)
        out = [(n, self.forced.pop(n, None)) for n in dict.fromkeys(ready)]
        for name, _ in out:
            self.queued.pop(name, None)
        return out

    def rearm(self) -> None:
        """The resync period changed (a test slows the poll): the next resync counts from now."""
        self.next_resync = None


def expired(reconciled_at: float | None, now: float, period: float) -> bool:
    """The expiry gate: a resync compares only when the last full compare is older than the period
    (types.go:3665-3667; a never-compared app always). `reconciledAt` is kept in whole seconds, as the API
    stores it."""
    return reconciled_at is None or int(reconciled_at) + period < now
