"""The model changes of one database transaction, kept until it commits, then coalesced.

Each database connection (one per thread and alias) has at most one live ``Batch``: the
changes its current transaction made to published objects, in order. Nothing is published
before the transaction commits, and then each object gets the fewest events that tell a
subscriber what happened to it (``Touched.events``).

Django's ``transaction.on_commit`` decides what survives, so the rules are Django's own:

- a change made inside a savepoint registers ``Change.keep`` with ``on_commit``; when that
  savepoint is rolled back Django drops the callback, and the change is never kept;
- the batch's flush is registered as if no savepoint were open (``_at_transaction_level``),
  after the latest change, so it runs once, after every kept change has been marked. Each
  later change inside a savepoint registers a newer flush; the older ones find they are
  stale and do nothing;
- a rolled-back transaction makes Django drop every callback, and with them the only strong
  references to the batch: the connection's next transaction starts from an empty one;
- outside any transaction (autocommit) ``on_commit`` runs its callback at once, so a change
  is published as soon as it is saved.

One corner is not told apart: a change made by another ``on_commit`` callback of the same
commit, before the batch's flush has run, joins that batch (and is published with it even
if it was made in a transaction of its own that then rolled back).
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db import transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from .change_data import plain
from .change_delivery import Event, deliver

ChangeKind = Literal["created", "updated", "deleted"]


@dataclass(eq=False)
class Change:
    """One save or delete of an object, as it happened: its kind, its topic and data then.

    ``kept`` is False while the change sits in a savepoint that may yet be rolled back.
    """

    kind: ChangeKind
    topic: str | None
    data: dict[str, Any]
    kept: bool

    def keep(self) -> None:
        """Mark the change as committed (Django calls this unless its savepoint rolled back)."""
        self.kept = True


@dataclass(eq=False)
class Touched:
    """One object's changes in a transaction, and what subscribers knew of it before.

    ``before_topic`` is the object's topic as committed before the transaction (read from
    its database row by the first save that touched it); ``before_known`` says whether it was
    read at all (a delete, or a create, reads nothing).
    """

    model: str
    pk: Any
    before_topic: str | None
    before_known: bool
    changes: list[Change] = field(default_factory=list)

    def events(self) -> list[Event]:
        """The fewest events that carry the object from before the transaction to after it.

        Only kept changes count. Created then changed is ``created`` with the last data;
        changed any number of times is one ``updated``; created then deleted is nothing;
        changed then deleted is ``deleted`` (to the topic subscribers knew). An object whose
        topic moved gets ``deleted`` on the old topic and ``created`` on the new one; a topic
        of None is no topic (the object is not published while it has none).
        """
        kept = [change for change in self.changes if change.kept]
        if not kept:
            return []
        first, last = kept[0], kept[-1]
        existed = first.kind != "created"
        old_topic = self.before_topic if self.before_known else first.topic
        if last.kind == "deleted":
            return [self._event(old_topic, "deleted", last)] if existed and old_topic else []
        new_topic = last.topic
        if not existed:
            return [self._event(new_topic, "created", last)] if new_topic else []
        if old_topic == new_topic:
            return [self._event(new_topic, "updated", last)] if new_topic else []
        moved = [self._event(old_topic, "deleted", last)] if old_topic else []
        return moved + ([self._event(new_topic, "created", last)] if new_topic else [])

    def _event(self, topic: str | None, kind: ChangeKind, change: Change) -> Event:
        assert topic is not None
        payload = {"type": kind, "model": self.model, "pk": plain(self.pk), "data": change.data}
        return topic, payload


class Batch:
    """The published objects one transaction has touched, in the order it first touched them."""

    def __init__(self) -> None:
        self.touched: dict[Hashable, Touched] = {}
        self._generation = 0
        self._flush_due = True
        self._done = False

    @property
    def done(self) -> bool:
        """Whether the batch has been flushed (a new transaction needs a new batch)."""
        return self._done

    def add(self, connection: BaseDatabaseWrapper, touched: Touched, change: Change) -> None:
        """Append ``change`` to ``touched``'s changes and make sure a flush follows it."""
        touched.changes.append(change)
        if not change.kept:
            connection.on_commit(change.keep)
            self._flush_due = True
        if self._flush_due:
            self._flush_due = False
            self._generation += 1
            _at_transaction_level(connection, functools.partial(self._flush, self._generation))

    def _flush(self, generation: int) -> None:
        if self._done or generation != self._generation:
            return  # a newer flush runs after this one
        self._done = True
        events = [event for touched in self.touched.values() for event in touched.events()]
        if events:
            deliver(events)


def _at_transaction_level(connection: BaseDatabaseWrapper, callback: Callable[[], None]) -> None:
    """``on_commit(callback)`` as if no savepoint were open: rolling back the savepoint that
    is open now must not drop it, only rolling back the whole transaction. Django keeps the
    open savepoints in ``savepoint_ids``, which its ``on_commit`` copies into the callback's
    record; it is the one private attribute this module relies on."""
    open_savepoints = connection.savepoint_ids
    connection.savepoint_ids = []
    try:
        connection.on_commit(callback)
    finally:
        connection.savepoint_ids = open_savepoints


class _Batches(threading.local):
    """This thread's live batches, by database alias (connections are per thread).

    Held weakly: Django's queued callbacks are what keep a batch alive (see the module).
    """

    def __init__(self) -> None:
        self.by_alias: weakref.WeakValueDictionary[str, Batch] = weakref.WeakValueDictionary()


_batches = _Batches()


def live_batch(using: str) -> Batch | None:
    """The batch of the transaction running on ``using`` in this thread, if it touched any
    published object."""
    batch = _batches.by_alias.get(using)
    return None if batch is None or batch.done else batch


def record(
    using: str,
    key: Hashable,
    new: Callable[[], Touched],
    kind: ChangeKind,
    topic: str | None,
    data: dict[str, Any],
) -> None:
    """Record a change of the object ``key`` in the transaction running on ``using``.

    ``new`` makes the object's ``Touched`` when this transaction had not touched it yet.
    """
    connection = transaction.get_connection(using)
    batch = live_batch(using)
    if batch is None:
        batch = _batches.by_alias[using] = Batch()
    touched = batch.touched.get(key)
    if touched is None:
        touched = batch.touched[key] = new()
    in_savepoint = any(connection.savepoint_ids)  # None marks an atomic block without one
    batch.add(connection, touched, Change(kind, topic, data, kept=not in_savepoint))
