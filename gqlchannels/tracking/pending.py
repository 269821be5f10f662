"""One loop's tracked connections and operations, and what of them is still unwritten.

The recording methods (``opened``, ``updated``, ``started``, ``listens``, ``finished``,
``closed``) take the records the signals carry and only change dicts and sets: they never
wait and never read a consumer. ``take`` moves what is due into a ``Batch``; after the write,
``settle`` records what the database now holds, or ``give_back`` makes a failed batch pending
again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .batch import Batch, WriteResult
from .records import ConnectionRecord, OperationRecord
from .rows import connection_row, operation_row, topics_text

logger = logging.getLogger("gqlchannels.tracking")

#: Deletes kept pending while the database refuses writes. Past this many they are dropped
#: (memory stays bounded however long the outage) and, at the next successful write, the
#: process's rows are resynchronised with what is actually live.
MAX_PENDING_DELETES = 10_000

#: Connection ids and operation row keys live in this process (for a resynchronisation).
LiveRows = Callable[[], tuple[set[str], set[uuid.UUID]]]


@dataclass(eq=False)
class TrackedConnection:
    """A live connection of this loop: its record, and where its row stands."""

    record: ConnectionRecord
    #: The user now: the record's, or the one a ``connection_updated`` record brought.
    current_user: Any = None
    operations: dict[str, TrackedOperation] = field(default_factory=dict)
    #: Finishes still to come of operations replaced under the same id (legacy ``start``).
    superseded: dict[str, int] = field(default_factory=dict)
    #: Handed to a write at least once: its close must delete a row.
    submitted: bool = False
    #: Its row is known to be in the database.
    written: bool = False
    #: The database refused its row: it is not written again.
    abandoned: bool = False
    #: The user object its row was written with, and the one of the write under way.
    user: Any = None
    user_in_flight: Any = None

    @property
    def connection_id(self) -> str:
        """The connection's id (its row's key)."""
        return self.record.connection_id


@dataclass(eq=False)
class TrackedOperation:
    """A running operation of a tracked connection: its record, topics, and row state."""

    connection: TrackedConnection
    record: OperationRecord
    #: Topics it listens to so far (the ``operation_topics`` signal brings them).
    topics: frozenset[str] = frozenset()
    #: The row's primary key, made when the row is first written (short operations never
    #: need one).
    uid: uuid.UUID | None = None
    submitted: bool = False
    written: bool = False
    abandoned: bool = False
    #: Topics in its row, and in the write under way.
    topics_written: frozenset[str] = frozenset()
    topics_in_flight: frozenset[str] = frozenset()
    #: Its count of results as last sampled (every flush), when that count last changed,
    #: and the count in its row and in the write under way.
    delivered_seen: int = 0
    last_event_at: datetime | None = None
    delivered_written: int = 0
    delivered_in_flight: int = 0

    def sample(self, now: datetime) -> None:
        """Read the operation's count of results; date it ``now`` if it moved."""
        count = self.record.delivered.count
        if count != self.delivered_seen:
            self.delivered_seen = count
            self.last_event_at = now

    @property
    def operation_id(self) -> str:
        """The operation's id, as the client chose it."""
        return self.record.operation_id

    def live(self) -> bool:
        """Whether it is still its connection's running operation under its id."""
        return self.connection.operations.get(self.operation_id) is self


@dataclass
class Taken:
    """What one flush took out of the pending state (given back if the write fails)."""

    batch: Batch
    connections: list[TrackedConnection]
    operations: list[TrackedOperation]
    retopiced: list[TrackedOperation]
    #: Operations whose count of results this write updates.
    recounted: list[TrackedOperation] = field(default_factory=list)


class Pending:
    """The tracked state of one event loop, and the changes not yet written."""

    def __init__(self, live_rows: LiveRows) -> None:
        self.connections: dict[str, TrackedConnection] = {}
        self._live_rows = live_rows
        self._new_connections: dict[str, TrackedConnection] = {}
        self._ended_connections: set[str] = set()
        self._new_operations: dict[TrackedOperation, None] = {}
        self._ended_operations: set[uuid.UUID] = set()
        self._resync = False

    # -- recording (never waits) ----------------------------------------------------------

    def opened(self, record: ConnectionRecord) -> None:
        """A connection was accepted."""
        tracked = TrackedConnection(record, current_user=record.user)
        self.connections[tracked.connection_id] = tracked
        self._new_connections[tracked.connection_id] = tracked

    def updated(self, record: ConnectionRecord) -> None:
        """A tracked connection's user was replaced (``on_connect``)."""
        connection = self.connections.get(record.connection_id)
        if connection is not None:
            connection.record = record
            connection.current_user = record.user

    def started(self, record: OperationRecord) -> None:
        """An operation was admitted on a tracked connection."""
        connection = self.connections.get(record.connection_id)
        if connection is None:
            return
        previous = connection.operations.get(record.operation_id)
        if previous is not None:
            # A legacy ``start`` reusing a running id replaces it; its finish comes later.
            superseded = connection.superseded
            superseded[record.operation_id] = superseded.get(record.operation_id, 0) + 1
            self._end_operation(previous)
        operation = TrackedOperation(connection, record)
        connection.operations[record.operation_id] = operation
        self._new_operations[operation] = None

    def listens(self, connection_id: str, operation_id: str, topics: frozenset[str]) -> None:
        """A running operation listens to ``topics`` (all of its topics so far)."""
        connection = self.connections.get(connection_id)
        operation = connection.operations.get(operation_id) if connection else None
        if operation is not None:
            operation.topics = topics

    def finished(self, connection_id: str, operation_id: str) -> None:
        """An operation ended, however it ended."""
        connection = self.connections.get(connection_id)
        if connection is None:
            return
        if connection.superseded.get(operation_id):
            connection.superseded[operation_id] -= 1
            return
        operation = connection.operations.get(operation_id)
        if operation is not None:
            self._end_operation(operation)

    def closed(self, connection_id: str) -> None:
        """A connection closed; its operations' rows go with its row."""
        connection = self.connections.pop(connection_id, None)
        if connection is None:
            return
        for operation in connection.operations.values():
            self._new_operations.pop(operation, None)
        connection.operations.clear()
        self._new_connections.pop(connection_id, None)
        if connection.submitted:
            self._ended_connections.add(connection_id)
            self._bound_pending_deletes()

    def _end_operation(self, operation: TrackedOperation) -> None:
        if operation.live():
            del operation.connection.operations[operation.operation_id]
        self._new_operations.pop(operation, None)
        if operation.submitted and operation.uid is not None:
            self._ended_operations.add(operation.uid)
            self._bound_pending_deletes()

    def _bound_pending_deletes(self) -> None:
        if len(self._ended_connections) + len(self._ended_operations) <= MAX_PENDING_DELETES:
            return
        self._ended_connections.clear()
        self._ended_operations.clear()
        if not self._resync:
            logger.warning(
                "More than %d registry deletes pending: dropped; the process's rows will be "
                "resynchronised with its live connections at the next successful write",
                MAX_PENDING_DELETES,
            )
        self._resync = True

    def pending(self) -> bool:
        """Whether changes wait to be written."""
        return bool(
            self._new_connections
            or self._ended_connections
            or self._new_operations
            or self._ended_operations
        )

    # -- one write ------------------------------------------------------------------------

    def take(self, batch: Batch, min_age: float, heartbeat: bool) -> Taken:
        """Move the pending changes old enough into ``batch``; what happens meanwhile, and
        what is younger than ``min_age`` seconds, stays pending."""
        batch.delete_connections = sorted(self._ended_connections)
        batch.delete_operations = list(self._ended_operations)
        self._ended_connections, self._ended_operations = set(), set()
        born_by = batch.now - timedelta(seconds=min_age)
        connections = self._take_connections(born_by)
        operations = self._take_operations(born_by)
        # An operation's connection row must exist (it may have been pruned): write it along,
        # ignoring the conflict when it is there, rather than fail on the foreign key.
        ids = {connection.connection_id for connection in connections}
        for operation in operations:
            if operation.connection.connection_id not in ids:
                ids.add(operation.connection.connection_id)
                connections.append(operation.connection)
        for connection in connections:
            connection.submitted = True
            connection.user_in_flight = connection.current_user
            batch.connections.append(connection_row(connection, batch.now))
        for operation in operations:
            operation.submitted = True
            operation.topics_in_flight = operation.topics
            operation.sample(batch.now)
            operation.delivered_in_flight = operation.delivered_seen
            batch.operations.append(operation_row(operation))
        retopiced, recounted = self._collect_updates(batch, heartbeat)
        if self._resync:
            batch.resync = True
            batch.live_connections, batch.live_operations = self._live_rows()
            batch.live_operations |= {op.uid for op in operations if op.uid is not None}
        if heartbeat:
            self._expect(batch, ids, operations)
        return Taken(batch, connections, operations, retopiced, recounted)

    def _take_connections(self, born_by: datetime) -> list[TrackedConnection]:
        taken: list[TrackedConnection] = []
        young: dict[str, TrackedConnection] = {}
        for connection_id, connection in self._new_connections.items():
            if connection.record.connected_at > born_by:
                young[connection_id] = connection
            elif not connection.abandoned:
                taken.append(connection)
        self._new_connections = young
        return taken

    def _take_operations(self, born_by: datetime) -> list[TrackedOperation]:
        taken: list[TrackedOperation] = []
        young: dict[TrackedOperation, None] = {}
        for operation in self._new_operations:
            if operation.record.started_at > born_by:
                young[operation] = None
            elif not operation.connection.abandoned:
                taken.append(operation)
                if operation.uid is None:
                    operation.uid = uuid.uuid4()
        self._new_operations = young
        return taken

    def _expect(
        self, batch: Batch, connection_ids: set[str], operations: list[TrackedOperation]
    ) -> None:
        """Make ``batch`` a heartbeat that checks this loop's rows are all there."""
        expected_connections = connection_ids | {
            c.connection_id for c in self.connections.values() if c.written
        }
        expected_operations = {op.uid for op in operations} | {
            op.uid for c in self.connections.values() for op in c.operations.values() if op.written
        }
        batch.expected_connections = len(expected_connections)
        batch.expected_operations = len(expected_operations)
        batch.heartbeat = bool(expected_connections)

    def _collect_updates(
        self, batch: Batch, heartbeat: bool
    ) -> tuple[list[TrackedOperation], list[TrackedOperation]]:
        """Users replaced after the row was written, topics listened to since, and (with a
        heartbeat) counts of results that moved; every count is sampled on the way. The
        operations whose topics, and whose counts, the batch updates."""
        retopiced, recounted = [], []
        for connection in self.connections.values():
            if not connection.written:
                continue
            if connection.current_user is not connection.user:
                batch.users[connection.connection_id] = connection.current_user
            for operation in connection.operations.values():
                if not operation.written:
                    continue
                assert operation.uid is not None
                operation.sample(batch.now)
                if operation.topics != operation.topics_written:
                    batch.topics[operation.uid] = topics_text(operation.topics)
                    operation.topics_in_flight = operation.topics
                    retopiced.append(operation)
                if heartbeat and operation.delivered_seen != operation.delivered_written:
                    batch.deliveries[operation.uid] = (
                        operation.delivered_seen,
                        operation.last_event_at,
                    )
                    operation.delivered_in_flight = operation.delivered_seen
                    recounted.append(operation)
        return retopiced, recounted

    def give_back(self, taken: Taken) -> None:
        """Make a failed batch pending again, minus what ended meanwhile."""
        self._ended_connections.update(taken.batch.delete_connections)
        self._ended_operations.update(taken.batch.delete_operations)
        self._bound_pending_deletes()
        for connection in taken.connections:
            if self.connections.get(connection.connection_id) is connection:
                self._new_connections.setdefault(connection.connection_id, connection)
        for operation in taken.operations:
            if operation.live() and operation.connection.connection_id in self.connections:
                self._new_operations.setdefault(operation, None)

    def settle(self, taken: Taken, result: WriteResult) -> int:
        """Record what the database now holds; queue again the rows found missing and
        return how many were."""
        for connection in taken.connections:
            if connection.connection_id in result.refused_connections:
                connection.abandoned = True
            else:
                connection.written = True
                connection.user = connection.user_in_flight
        for connection_id, user in taken.batch.users.items():
            tracked = self.connections.get(connection_id)
            if tracked is not None:
                tracked.user = user
        for operation in taken.operations:
            if operation.uid in result.refused_operations:
                operation.abandoned = True
            else:
                operation.written = True
                operation.topics_written = operation.topics_in_flight
                operation.delivered_written = operation.delivered_in_flight
        for operation in taken.retopiced:
            operation.topics_written = operation.topics_in_flight
        for operation in taken.recounted:
            operation.delivered_written = operation.delivered_in_flight
        if taken.batch.resync:
            self._resync = False
        if result.existing_connections is None:
            return 0
        return self._requeue_missing(result.existing_connections, result.existing_operations)

    def _requeue_missing(self, connections: set[str], operations: set[uuid.UUID] | None) -> int:
        missing = 0
        for connection in self.connections.values():
            if connection.written and connection.connection_id not in connections:
                connection.written = False
                self._new_connections[connection.connection_id] = connection
                missing += 1
            for operation in connection.operations.values():
                if operation.written and operation.uid not in (operations or set()):
                    operation.written = False
                    self._new_operations[operation] = None
                    missing += 1
        return missing
