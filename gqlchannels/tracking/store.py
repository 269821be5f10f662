"""The database side of tracking: one batch of registry changes, applied in one transaction.

Everything here runs in Django's database thread and takes plain values (``Batch``): it
never reads a consumer, so the event loop and this thread share nothing mutable.
``in_database_thread`` is how the loop hands a batch over.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from ..models import Connection, Subscription
from .batch import Batch, WriteResult

logger = logging.getLogger("gqlchannels.tracking")

#: Rows per INSERT and ids per ``IN (...)``: under every backend's parameter limit.
BATCH_SIZE = 500


def write_batch(batch: Batch) -> WriteResult:
    """Apply ``batch`` in one transaction: deletes first (an operation id may be reused on a
    connection), then inserts (ignoring rows already there), updates, heartbeat."""
    result = WriteResult()
    with transaction.atomic():
        for chunk in chunks(batch.delete_connections):
            Connection.objects.filter(pk__in=chunk).purge()
        for chunk in chunks(batch.delete_operations):
            Subscription.objects.filter(pk__in=chunk).delete()
        user_keys = existing_user_keys(
            [row["user"] for row in batch.connections] + list(batch.users.values())
        )
        connections = [
            Connection(
                user_id=user_keys.get(id(row["user"])),
                **{key: value for key, value in row.items() if key != "user"},
            )
            for row in batch.connections
        ]
        operations = [Subscription(**row) for row in batch.operations]
        if batch.isolate:
            insert_one_by_one(connections, operations, result)
        else:
            Connection.objects.bulk_create(connections, BATCH_SIZE, ignore_conflicts=True)
            Subscription.objects.bulk_create(operations, BATCH_SIZE, ignore_conflicts=True)
        by_user: dict[Any, list[str]] = {}
        for connection_id, user in batch.users.items():
            by_user.setdefault(user_keys.get(id(user)), []).append(connection_id)
        for user_key, ids in by_user.items():
            for chunk in chunks(ids):
                Connection.objects.filter(pk__in=chunk).update(user_id=user_key)
        for uid, topics in batch.topics.items():
            Subscription.objects.filter(pk=uid).update(topics=topics)
        write_deliveries(batch.deliveries)
        if batch.resync:
            resync(batch)
        if batch.heartbeat:
            heartbeat(batch, result)
    return result


def write_deliveries(deliveries: dict[Any, tuple[int, Any]]) -> None:
    """Each operation's count of results and the time of its last, ``BATCH_SIZE`` rows per
    UPDATE (a row that has gone is simply not updated)."""
    rows = [
        Subscription(pk=uid, events_sent=count, last_event_at=last)
        for uid, (count, last) in deliveries.items()
    ]
    Subscription.objects.bulk_update(rows, ["events_sent", "last_event_at"], BATCH_SIZE)


def chunks(items: list[Any]) -> Iterator[list[Any]]:
    """``items`` in slices of ``BATCH_SIZE``."""
    for start in range(0, len(items), BATCH_SIZE):
        yield items[start : start + BATCH_SIZE]


def existing_user_keys(users: Iterable[Any]) -> dict[int, Any]:
    """``id(user object) -> primary key`` for the authenticated users that still exist (a
    user deleted while connected must not make the whole batch fail on its foreign key)."""
    keys = {
        id(user): user.pk
        for user in users
        if user is not None and getattr(user, "is_authenticated", False)
    }
    if not keys:
        return {}
    manager = get_user_model()._default_manager
    existing = set(manager.filter(pk__in=set(keys.values())).values_list("pk", flat=True))
    return {key: pk for key, pk in keys.items() if pk in existing}


def insert_one_by_one(
    connections: list[Connection], operations: list[Subscription], result: WriteResult
) -> None:
    """Insert each row in a savepoint of its own; record the rows the database refused, so
    that one bad row (a poison pill) cannot keep every other row out for good."""
    for connection in connections:
        try:
            with transaction.atomic():
                Connection.objects.bulk_create([connection], ignore_conflicts=True)
        except Exception as exc:
            logger.error("Live registry refused connection %s: %r", connection.pk, exc)
            result.refused_connections.add(connection.pk)
    for operation in operations:
        if operation.connection_id in result.refused_connections:
            result.refused_operations.add(operation.pk)
            continue
        try:
            with transaction.atomic():
                Subscription.objects.bulk_create([operation], ignore_conflicts=True)
        except Exception as exc:
            logger.error("Live registry refused operation %s: %r", operation.operation_id, exc)
            result.refused_operations.add(operation.pk)


def resync(batch: Batch) -> None:
    """Delete the rows of this process that belong to nothing live any more."""
    mine = Connection.objects.filter(server_id=batch.server_id)
    gone = sorted(set(mine.values_list("pk", flat=True)) - batch.live_connections)
    for chunk in chunks(gone):
        Connection.objects.filter(pk__in=chunk).purge()
    operations = Subscription.objects.filter(connection__server_id=batch.server_id)
    ended = list(set(operations.values_list("pk", flat=True)) - batch.live_operations)
    for chunk in chunks(ended):
        Subscription.objects.filter(pk__in=chunk).delete()


def heartbeat(batch: Batch, result: WriteResult) -> None:
    """One UPDATE refreshing ``last_seen`` of every row of this process; when it touched
    fewer rows than this loop expects, report which rows exist, so the missing ones are
    written again. (Rows of another loop of the same process only add to the count.)"""
    mine = Connection.objects.filter(server_id=batch.server_id)
    updated = mine.update(last_seen=batch.now)
    operations = Subscription.objects.filter(connection__server_id=batch.server_id)
    missing = updated < batch.expected_connections or (
        batch.expected_operations > 0 and operations.count() < batch.expected_operations
    )
    if missing:
        result.existing_connections = set(mine.values_list("pk", flat=True))
        result.existing_operations = set(operations.values_list("pk", flat=True))
