"""Leadership: the pure lease (tables over timelines), then the elector on a scripted lock and a fake clock."""

from __future__ import annotations

import math

import pytest

from watcher.core.lease import ALONE, LeaseTiming, Role, Term, after_check, may_try, role_at, transition_reason
from watcher.domain import RetryLater
from watcher.run.leadership import Leadership

TIMING = LeaseTiming(lease=10.0, takeover=10.0)


def replay(checks: list[tuple[float, bool]], round_trip: float = 0.0) -> Term:
    term = Term()
    for at, holds in checks:
        term = after_check(term, holds, at, at + round_trip)
    return term


@pytest.mark.parametrize(
    ("checks", "now", "role"),
    [
        ([], 0.0, Role.STANDBY),  # never asked
        ([(0.0, False)], 1.0, Role.STANDBY),  # another replica holds it
        ([(0.0, True)], 0.0, Role.TAKING_OVER),  # just taken: the previous leader may still act
        ([(0.0, True)], 10.0, Role.STANDBY),  # taken, but not confirmed for a lease
        ([(0.0, True), (2.0, True), (4.0, True), (6.0, True), (8.0, True)], 9.9, Role.TAKING_OVER),
        ([(0.0, True), (2.0, True), (4.0, True), (6.0, True), (8.0, True)], 10.0, Role.LEADER),  # waited out
        ([(0.0, True), (8.0, True), (12.0, True)], 21.9, Role.LEADER),  # confirmed within the lease
        ([(0.0, True), (8.0, True), (12.0, True)], 22.0, Role.STANDBY),  # cut off: stops acting by itself
        ([(0.0, True), (12.0, True), (14.0, False), (16.0, True)], 20.0, Role.TAKING_OVER),  # lost: waits again
        ([(0.0, True), (12.0, True), (30.0, True)], 30.0, Role.LEADER),  # a late confirmation: still its lock
    ],
)
def test_role_over_a_timeline_of_checks(checks: list[tuple[float, bool]], now: float, role: Role) -> None:
    assert role_at(replay(checks), now, TIMING) is role


@pytest.mark.parametrize(
    ("checks", "now", "tries"),
    [
        ([], 0.0, True),  # at start
        ([(0.0, False), (2.0, False)], 2.5, True),  # a standby keeps trying
        ([(0.0, True), (4.0, False)], 13.9, False),  # lost it: steps back for a lease
        ([(0.0, True), (4.0, False)], 14.0, True),
        ([(0.0, True)], 1.0, True),  # holding it: confirms
    ],
)
def test_a_replica_that_lost_the_lock_steps_back_for_a_lease(
    checks: list[tuple[float, bool]], now: float, tries: bool
) -> None:
    assert may_try(replay(checks), now, TIMING) is tries


def test_a_slow_round_trip_counts_against_the_replica_that_made_it() -> None:
    term = replay([(0.0, True)], round_trip=3.0)  # asked at 0, answered at 3
    assert (term.acquired_at, term.confirmed_at) == (3.0, 0.0)  # taken late, confirmed early
    # The wait runs until 13, the confirmation only until 10: it needs a fresh one before it may act.
    assert role_at(term, 9.9, TIMING) is Role.TAKING_OVER and role_at(term, 10.0, TIMING) is Role.STANDBY
    assert role_at(after_check(term, True, 12.0, 12.5), 13.0, TIMING) is Role.LEADER


def test_a_replica_alone_leads_at_once_and_for_good() -> None:
    term = after_check(Term(), True, 0.0, 0.0)
    assert role_at(term, 0.0, ALONE) is Role.LEADER and role_at(term, 1e9, ALONE) is Role.LEADER
    assert math.isinf(ALONE.lease)


def test_the_previous_leaders_lease_ends_before_the_new_one_acts() -> None:
    """The safety argument, over a grid of timings: the old leader's last confirmation came before the new one
    took the lock (the server frees it only when the old session ended), so old stops before new starts."""
    for last_confirmed in (0.0, 3.0, 7.5):
        for taken in (last_confirmed + 0.001, last_confirmed + 4.0, last_confirmed + 20.0):
            old = Term(acquired_at=-100.0, confirmed_at=last_confirmed)
            # the new leader asked long before (its question was slow to arrive); the answer came at `taken`
            new = after_check(Term(), True, taken - 5.0, taken)
            for step in range(0, 400):
                now = taken + step * 0.1
                both = role_at(old, now, TIMING) is Role.LEADER and role_at(new, now, TIMING) is Role.LEADER
                assert not both, (last_confirmed, taken, now)


@pytest.mark.parametrize(
    ("before", "after", "holds", "error", "reason"),
    [
        (None, Role.STANDBY, False, "", "another replica holds the leader lock"),
        (None, Role.STANDBY, False, "connection refused", "no answer: connection refused"),
        (Role.STANDBY, Role.TAKING_OVER, True, "", "took the leader lock; waiting out the previous leader's lease"),
        (Role.TAKING_OVER, Role.LEADER, True, "", "the previous leader's lease ran out: acting now"),
        (None, Role.LEADER, True, "", "alone on its store: the leader"),  # SQLite: no wait, nobody to wait for
        (Role.STANDBY, Role.LEADER, True, "", "lease confirmed again"),  # a slow check, the lock never lost
        (Role.LEADER, Role.STANDBY, False, "server closed the connection", "leader lock session lost: server closed"),
        (Role.LEADER, Role.STANDBY, True, "", "lease ran out before the lock was confirmed"),
    ],
)
def test_each_change_says_why(before: Role | None, after: Role, holds: bool, error: str, reason: str) -> None:
    assert transition_reason(before, after, holds, error).startswith(reason)


class ScriptedLock:
    """ports.LeaderLock: `free` says whether the lock can be taken; `lost` makes the session fail once."""

    def __init__(self) -> None:
        self.free = True
        self.held = False
        self.lost = ""
        self.calls: list[str] = []

    def try_acquire(self) -> bool:
        self.calls.append("try_acquire")
        self.held = self.free
        return self.held

    def holds(self) -> bool:
        self.calls.append("holds")
        if self.lost:
            self.held, error, self.lost = False, self.lost, ""
            raise RetryLater(error)
        return self.held

    def release(self) -> None:
        self.calls.append("release")
        self.held = False


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_elector_waits_out_the_lease_takes_over_once_and_steps_down_on_a_lost_session() -> None:
    lock, clock, told = ScriptedLock(), Clock(), []
    lead = Leadership(lock, TIMING, 2.0, told.append, clock)
    lock.free = False
    assert lead.check() is Role.STANDBY and told == [Role.STANDBY] and not lead.leading()
    lock.free = True
    clock.now = 2.0
    assert lead.check() is Role.TAKING_OVER and not lead.leading() and not lead.confirm()
    for clock.now in (4.0, 6.0, 8.0, 10.0):
        lead.check()
    assert lead.role() is Role.TAKING_OVER
    clock.now = 12.0
    assert lead.check() is Role.LEADER and lead.leading() and lead.confirm()
    assert told == [Role.STANDBY, Role.TAKING_OVER, Role.LEADER]  # the take-over ran once
    lock.lost = "terminating connection due to administrator command"
    assert not lead.confirm()  # the fence finds out first, on the thread about to act
    assert told[-1] is Role.STANDBY and lead.role() is Role.STANDBY
    assert lead.check() is Role.STANDBY and lock.calls[-1] == "holds"  # steps back: the other replica goes first
    clock.now = 22.0
    assert lead.check() is Role.TAKING_OVER  # a lease later, a new session: and the wait starts again


def test_the_elector_stops_acting_when_its_lease_runs_out_without_a_check() -> None:
    lock, clock = ScriptedLock(), Clock()
    lead = Leadership(lock, LeaseTiming(lease=10.0, takeover=0.0), 2.0, lambda role: None, clock)
    assert lead.check() is Role.LEADER and lead.leading()
    clock.now = 9.9
    assert lead.leading()
    clock.now = 10.0  # the heartbeat hangs (a network split): no answer, no acting
    assert not lead.leading() and lead.role() is Role.STANDBY


def test_a_failed_take_over_is_tried_again_at_the_next_check() -> None:
    lock, clock = ScriptedLock(), Clock()
    attempts: list[Role] = []

    def on_change(role: Role) -> None:
        attempts.append(role)
        if role is Role.LEADER and attempts.count(Role.LEADER) == 1:
            raise RuntimeError("store away")

    lead = Leadership(lock, LeaseTiming(lease=10.0, takeover=0.0), 2.0, on_change, clock)
    with pytest.raises(RuntimeError):
        lead.check()
    assert not lead.leading() and lead.role() is Role.TAKING_OVER
    clock.now = 2.0
    assert lead.check() is Role.LEADER and lead.leading() and attempts == [Role.LEADER, Role.LEADER]
