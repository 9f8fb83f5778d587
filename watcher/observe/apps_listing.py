"""Argo CD's application list as the watcher reads it: one bad item is one unreadable app, and a list that
misses most of the fleet is suspect, never a mass deletion (an app leaves on a 404 or a stream DELETED)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from watcher.core import appmap
from watcher.core.snapshots import snapshot_from_app
from watcher.domain import AppSnapshot, NotFound, RetryLater, UnreadableItem
from watcher.ports import AppSource

# A list that misses more than this share of the known fleet (and at least SUSPECT_MIN apps) is suspect:
# RBAC, a project filter or a half-started Argo CD hides apps; nobody deletes most of a fleet at once.
SUSPECT_SHARE = 0.5
SUSPECT_MIN = 3
CONFIRM_PER_POLL = 20  # apps missing from a list confirmed gone (a GET answers 404) per poll; the rest wait
# What makes one app unreadable, not the poll failed: Argo CD's answer for it, or a shape the spec does not allow.
UNREADABLE = (RetryLater, AttributeError, TypeError, ValueError)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Known:
    """What the watcher already holds per app. An item that says the same is kept as the object already held,
    so a poll of a quiet fleet has one item's new objects alive at a time, never a second copy of the fleet."""

    snapshots: Mapping[str, AppSnapshot] = field(default_factory=dict)
    specs: Mapping[str, appmap.Fields] = field(default_factory=dict)

    def snapshot(self, key: str, snap: AppSnapshot) -> AppSnapshot:
        held = self.snapshots.get(key)
        return held if held == snap else snap

    def spec(self, key: str, specs: appmap.Fields) -> appmap.Fields:
        held = self.specs.get(key)
        return held if held == specs else specs


@dataclass(frozen=True, slots=True)
class Listing:
    """One list poll: snapshots and mapping fields per app, and the apps it could not read this time."""

    snapshots: dict[str, AppSnapshot]
    specs: dict[str, appmap.Fields]
    unreadable: dict[str, str]  # app key (or the item's position) -> why: kept as it was, not taken as gone


def list_snapshots(
    argocd: AppSource, known: Known = Known(), concurrent_gets: int = 1, watched_repo: str = ""
) -> Listing:
    """Snapshots and mapping fields of every listed app, with a full GET of the apps that look wrong. One
    malformed item or one failed GET is one unreadable app; the others are still observed. A list that fails
    part way fails whole, before any GET. The apps read whole come first in `snapshots`, so that their
    detection is never behind the healthy apps' rows."""
    listing = Listing({}, {}, {})
    healthy: dict[str, AppSnapshot] = {}
    wrong: list[AppSnapshot] = []
    for position, item in enumerate(argocd.iter_apps()):  # one item's objects at a time
        if isinstance(item, UnreadableItem):
            listing.unreadable[str(item["metadata"].get("name") or f"#{position}")] = item.reason
            continue
        try:
            snap = snapshot_from_app(item, complete=False, watched_repo=watched_repo)
            specs = appmap.compact_fields(item)
        except (AttributeError, TypeError, ValueError) as exc:  # a shape the spec does not allow
            name = item.get("metadata", {}).get("name") if isinstance(item.get("metadata"), dict) else None
            listing.unreadable[str(name or f"#{position}")] = f"malformed list item: {type(exc).__name__}: {exc}"
            continue
        if not snap.name:
            continue
        listing.specs[snap.key] = known.spec(snap.key, specs)
        if snap.looks_healthy:
            healthy[snap.key] = known.snapshot(snap.key, snap)
        else:
            wrong.append(snap)
    for listed, answer in read_whole(argocd, wrong, concurrent_gets):
        try:
            if isinstance(answer, Exception):
                raise answer
            snap = snapshot_from_app(answer, complete=True, watched_repo=watched_repo)
        except UNREADABLE as exc:
            listing.unreadable[listed.key] = f"GET failed: {type(exc).__name__}: {exc}"
            continue
        listing.snapshots[snap.key] = known.snapshot(snap.key, snap)
    listing.snapshots.update(healthy)
    return listing


def read_concurrently(
    read: Callable[[T], Any], items: Sequence[T], concurrency: int, thread_name: str
) -> Iterator[tuple[T, Any | Exception]]:
    """`read` of each item (or why it failed), in the order given, `concurrency` reads in flight at a time, each
    within the client's own deadline. They start once the caller has done its own walk: a thread back from the
    network would wait for the GIL behind it (up to 5 ms each time, which doubled a list's cycle)."""
    if not items:
        return
    with ThreadPoolExecutor(concurrency, thread_name_prefix=thread_name) as pool:
        answers = [pool.submit(read, item) for item in items]
        for item, answer in zip(items, answers, strict=True):
            try:
                yield item, answer.result()
            except UNREADABLE as exc:
                yield item, exc


def read_whole(
    argocd: AppSource, listed: Sequence[AppSnapshot], concurrent_gets: int
) -> Iterator[tuple[AppSnapshot, dict[str, Any] | Exception]]:
    """Each listed app's full GET: a bad day of 1,000 degraded apps is 1,000 round trips spread over
    `concurrent_gets` connections, not one after another."""
    return read_concurrently(
        lambda snap: argocd.get_app(snap.name, snap.namespace), listed, concurrent_gets, "argocd-get"
    )


def read_trees(
    argocd: AppSource, refs: Sequence[tuple[str, str, str]], concurrency: int
) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
    """Each (key, name, namespace)'s resource tree (or why it could not be read), `concurrency` reads in flight."""
    for (key, _, _), tree in read_concurrently(
        lambda ref: argocd.resource_tree(ref[1], ref[2]), refs, concurrency, "argocd-tree"
    ):
        yield key, tree if isinstance(tree, dict | Exception) else TypeError(f"tree is a {type(tree).__name__}")


def is_suspect(missing: int, known: int) -> bool:
    """Whether a list missing `missing` of `known` apps is to be disbelieved rather than acted on."""
    return missing >= SUSPECT_MIN and missing > SUSPECT_SHARE * known


def confirm_gone(argocd: AppSource, missing: Sequence[tuple[str, str, str, str]], log: Any) -> list[str]:
    """The keys of (key, name, namespace, project) that Argo CD confirms deleted: a GET naming the project
    answers 404 (without the project Argo CD answers 403 for a missing app). Any other answer keeps the app
    until Argo CD can say; at most CONFIRM_PER_POLL GETs a poll."""
    gone = []
    for key, name, namespace, project in missing[:CONFIRM_PER_POLL]:
        try:
            argocd.get_app(name, namespace, project=project)
        except NotFound:
            gone.append(key)
        except RetryLater as exc:
            log.warning("app_missing_unconfirmed", app=key, error=str(exc))
    return gone


def confirm_batch(missing: Sequence[str], poll: int) -> list[str]:
    """This poll's CONFIRM_PER_POLL of the (sorted) missing apps, in turn: a thousand apps gone at once are
    all asked about within fifty polls, and the same twenty that still answer are not asked forever."""
    if len(missing) <= CONFIRM_PER_POLL:
        return list(missing)
    start = (poll * CONFIRM_PER_POLL) % len(missing)
    return [missing[(start + i) % len(missing)] for i in range(CONFIRM_PER_POLL)]
