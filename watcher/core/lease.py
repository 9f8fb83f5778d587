"""Pure: may this replica act now? From what it last learnt of the leader lock and the (monotonic) time.

Two replicas share one PostgreSQL store; the one whose database session holds the leader lock is the leader.
Holding the lock is not enough to act on its own, because the previous holder may not know yet that it lost it:

- a confirmation that this session holds the lock is good for `lease` seconds: past that, without a fresh
  one (the database is unreachable, the check hangs), the replica stops acting as if it had lost the lock;
- a replica that takes the lock waits `takeover` seconds (the lease) before it acts. The previous leader's
  last confirmation came before its session ended, so its lease has run out by then, whatever it is doing;
- a replica that lost the lock does not try to take it again for a lease: the other replica, likely the one
  with the healthier path to the database, gets it first.

Only the order of events on each replica's own monotonic clock matters, never a comparison of two clocks.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class Role(enum.StrEnum):
    STANDBY = "standby"  # another replica holds the lock, or this one lost it or let its lease run out
    TAKING_OVER = "taking_over"  # the lock is ours; waiting out the previous leader's lease before acting
    LEADER = "leader"  # the lock is ours and confirmed within the lease: decide, revert, notify


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    lease: float  # seconds a confirmation is good for
    takeover: float  # seconds to wait after taking the lock before acting


# A replica alone on its store (SQLite): nobody else can hold the lock, so it acts at once and for good.
ALONE = LeaseTiming(lease=math.inf, takeover=0.0)


@dataclass(frozen=True, slots=True)
class Term:
    """What this replica knows of its hold on the lock, in monotonic seconds; both None: it does not hold it."""

    acquired_at: float | None = None  # when this session took the lock
    confirmed_at: float | None = None  # the last time the session answered that it still holds it
    lost_at: float | None = None  # when this replica last found that it no longer holds the lock


def after_check(term: Term, holds: bool, asked_at: float, answered_at: float) -> Term:
    """The term after asking the database (taking the lock, or confirming it is still ours). Each end of the
    round trip errs on the safe side: the hold is confirmed as of the question (the lease ends no later than
    the server could have freed the lock), and the lock counts as taken as of the answer (the wait for the
    previous leader starts no earlier than the server gave it)."""
    if not holds:
        return Term(lost_at=answered_at if term.acquired_at is not None else term.lost_at)
    return Term(term.acquired_at if term.acquired_at is not None else answered_at, asked_at)


def may_try(term: Term, now: float, timing: LeaseTiming) -> bool:
    """Whether to ask for the lock now: not within a lease of losing it (the other replica goes first)."""
    return term.acquired_at is not None or term.lost_at is None or now - term.lost_at >= timing.lease


def role_at(term: Term, now: float, timing: LeaseTiming) -> Role:
    if term.acquired_at is None or term.confirmed_at is None:
        return Role.STANDBY
    if now - term.confirmed_at >= timing.lease:
        return Role.STANDBY  # not confirmed for a lease: as good as lost, though the lock may come back
    if now - term.acquired_at < timing.takeover:
        return Role.TAKING_OVER
    return Role.LEADER


def transition_reason(before: Role | None, after: Role, holds: bool, error: str) -> str:
    """Why the role changed (`before` None: the first look at start), in words for the `role_changed` line."""
    if after is Role.LEADER:
        if before is Role.TAKING_OVER:
            return "the previous leader's lease ran out: acting now"
        return "alone on its store: the leader" if before is None else "lease confirmed again"
    if after is Role.TAKING_OVER:
        return "took the leader lock; waiting out the previous leader's lease"
    if error:
        return f"leader lock session lost: {error}" if before not in (None, Role.STANDBY) else f"no answer: {error}"
    if before in (None, Role.STANDBY):
        return "another replica holds the leader lock"
    return "leader lock no longer held" if not holds else "lease ran out before the lock was confirmed"


class Alone:
    """The fence of a replica alone on its store (SQLite): it is the leader, always and at once."""

    def leading(self) -> bool:
        return True

    def confirm(self) -> bool:
        return True


ALONE_FENCE = Alone()
