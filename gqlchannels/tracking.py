"""Tracking: the live registry of connections and operations, kept off the hot path.

Signal receivers (``connect()`` wires them; ``apps.ready`` does when ``TRACKING`` is on) only
record what happened in memory: they never touch the database and never wait. One flusher
task per running event loop (one per server process, like the hub) writes what piled up
every ``TRACKING_FLUSH_INTERVAL`` seconds, as one transaction in Django's database thread
(``gqlchannels.registry``): bulk deletes of what ended, bulk inserts of what started (an
operation that starts and ends between two flushes is never written at all), and, every
``HEARTBEAT_INTERVAL``, one UPDATE refreshing ``last_seen`` of all the process's rows.

A failed write is logged once and retried with the same pending changes; rows that went
missing (pruned by the audit while alive, say) are noticed by the heartbeat and written
again. When the loop's last connection closes, the flusher writes at once and then ends,
so no task outlives the connections it tracks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from channels.db import database_sync_to_async
from django.utils import timezone
from graphql import get_operation_ast

from . import conf, drain, signals
from .loops import PerLoop
from .redaction import clean_text, stored_document, stored_variables

logger = logging.getLogger("gqlchannels.tracking")

#: Consecutive failed writes after which rows are inserted one by one, so that one row the
#: database refuses (a poison pill) cannot keep the registry from catching up.
ISOLATE_AFTER_FAILURES = 2
#: Seconds a cancelled flusher (its loop is closing) still waits for a write under way.
CANCEL_GRACE = 10.0
#: Deletes kept pending while the database refuses writes. Past this many they are dropped
#: (memory stays bounded however long the outage) and, at the next successful write, the
#: process's rows are resynchronised with what is actually live.
MAX_PENDING_DELETES = 10_000

_server_tokens: dict[int, str] = {}


def server_id() -> str:
    """``host:pid:token`` of this process.

    The random token tells apart two processes that got the same pid on the same host (a
    restarted container's server is often pid 1): the new one must not keep the old one's
    rows alive with its heartbeats.
    """
    pid = os.getpid()
    token = _server_tokens.setdefault(pid, secrets.token_hex(3))
    return f"{socket.gethostname()}:{pid}:{token}"


@dataclass(eq=False)
class TrackedConnection:
    """A live connection of this loop, and what its row holds."""

    consumer: Any
    connection_id: str
    connected_at: datetime
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

    def current_user(self) -> Any:
        """The connection's user now (``on_connect`` may have replaced the scope's)."""
        return self.consumer.scope.get("user")


@dataclass(eq=False)
class TrackedOperation:
    """A running operation of a tracked connection, and what its row holds."""

    connection: TrackedConnection
    operation_id: str
    request: Any
    context: Any
    started_at: datetime
    #: The row's primary key, made when the row is first written (short operations never
    #: need one).
    uid: uuid.UUID | None = None
    submitted: bool = False
    written: bool = False
    abandoned: bool = False
    #: Topics in its row (``listen`` fills ``context.topics`` after the start), and in the
    #: write under way.
    topics_written: int = 0
    topics_in_flight: int = 0

    def topics(self) -> set[str]:
        """The topics the operation listens to so far."""
        topics = getattr(self.context, "topics", None)
        return topics if isinstance(topics, set) else set()

    def live(self) -> bool:
        """Whether it is still its connection's running operation under its id."""
        return self.connection.operations.get(self.operation_id) is self


@dataclass
class _Taken:
    """What one flush took out of the pending state (given back if the write fails)."""

    batch: Any
    connections: list[TrackedConnection]
    operations: list[TrackedOperation]
    retopiced: list[TrackedOperation]


class Tracker:
    """One event loop's tracked connections and operations, and what is still unwritten.

    The recording methods (``opened``, ``started``, ``finished``, ``closed``) run in the
    consumers' tasks and only change dicts and sets; ``flush`` alone reaches the database.
    """

    def __init__(self) -> None:
        self.connections: dict[str, TrackedConnection] = {}
        self._new_connections: dict[str, TrackedConnection] = {}
        self._ended_connections: set[str] = set()
        self._new_operations: dict[TrackedOperation, None] = {}
        self._ended_operations: set[uuid.UUID] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._flushed = asyncio.Event()
        self._failures = 0
        self._resync = False
        self._last_heartbeat = time.monotonic()
        #: Flushes done (written, failed or with nothing to write), for tests and diagnostics.
        self.flush_count = 0

    # -- recording (never waits) ----------------------------------------------------------

    def opened(self, consumer: Any) -> None:
        """A connection was accepted."""
        tracked = TrackedConnection(consumer, consumer.connection_id, timezone.now())
        self.connections[tracked.connection_id] = tracked
        self._new_connections[tracked.connection_id] = tracked
        self._ensure_running()

    def started(self, consumer: Any, operation_id: str, request: Any, context: Any) -> None:
        """An operation was admitted on a tracked connection."""
        connection = self.connections.get(consumer.connection_id)
        if connection is None:
            return
        previous = connection.operations.get(operation_id)
        if previous is not None:
            # A legacy ``start`` reusing a running id replaces it; its finish comes later.
            connection.superseded[operation_id] = connection.superseded.get(operation_id, 0) + 1
            self._end_operation(previous)
        operation = TrackedOperation(connection, operation_id, request, context, timezone.now())
        connection.operations[operation_id] = operation
        self._new_operations[operation] = None

    def finished(self, consumer: Any, operation_id: str) -> None:
        """An operation ended, however it ended."""
        connection = self.connections.get(consumer.connection_id)
        if connection is None:
            return
        if connection.superseded.get(operation_id):
            connection.superseded[operation_id] -= 1
            return
        operation = connection.operations.get(operation_id)
        if operation is not None:
            self._end_operation(operation)

    def closed(self, consumer: Any) -> None:
        """A connection closed; its operations' rows go with its row."""
        connection = self.connections.pop(consumer.connection_id, None)
        if connection is None:
            return
        for operation in connection.operations.values():
            self._new_operations.pop(operation, None)
        connection.operations.clear()
        self._new_connections.pop(connection.connection_id, None)
        if connection.submitted:
            self._ended_connections.add(connection.connection_id)
            self._bound_pending_deletes()
        if not self.connections:
            self._wake.set()  # write the last changes now, then stop

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

    @property
    def running(self) -> bool:
        """Whether the flusher task is alive."""
        return self._task is not None and not self._task.done()

    # -- the flusher ----------------------------------------------------------------------

    def _ensure_running(self) -> None:
        if not self.running:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="gqlchannels-tracking")

    async def _run(self) -> None:
        try:
            while True:
                try:
                    async with asyncio.timeout(conf.get("TRACKING_FLUSH_INTERVAL")):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
                await self.flush(min_age=conf.get("TRACKING_FLUSH_INTERVAL"))
                if not self.connections and not self.pending():
                    return
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def wait_stopped(self) -> None:
        """Return once the flusher has ended (wrap it in a timeout)."""
        task = self._task
        if task is not None:
            await asyncio.shield(task)

    async def next_flush(self) -> None:
        """Return once the next flush (of the flusher, or ``flush()``) has completed."""
        await self._flushed.wait()

    async def flush(self, heartbeat: bool = False, min_age: float = 0.0) -> None:
        """Write what is pending now, and the heartbeat when it is due (or ``heartbeat``).

        Connections and operations younger than ``min_age`` seconds stay pending: the flusher
        (which calls this every ``TRACKING_FLUSH_INTERVAL``) passes its interval, so that
        whatever lives shorter than that never costs a write. Tests and shutdown hooks may
        call it too. A database failure is logged (once per outage), never raised.
        """
        async with self._lock:
            try:
                await self._flush(heartbeat, min_age)
            finally:
                self.flush_count += 1
                done, self._flushed = self._flushed, asyncio.Event()
                done.set()

    async def _flush(self, force_heartbeat: bool, min_age: float) -> None:
        from .registry import write_batch

        taken = self._take(force_heartbeat, min_age)
        for connection in taken.connections:
            taken.batch.connections.append(await _connection_row(connection, taken.batch.now))
        for operation in taken.operations:
            taken.batch.operations.append(await _operation_row(operation))
        if taken.batch.empty():
            return
        try:
            result = await _in_database_thread(write_batch, taken.batch)
        except Exception as exc:
            self._give_back(taken)
            self._failures += 1
            if self._failures == 1:
                logger.warning(
                    "Could not write the live connection registry (%r); keeping the changes "
                    "and retrying every %ss",
                    exc,
                    conf.get("TRACKING_FLUSH_INTERVAL"),
                )
            return
        if self._failures:
            logger.warning(
                "Live connection registry written again after %d failed attempt(s)",
                self._failures,
            )
            self._failures = 0
        self._settle(taken, result)

    def _take(self, force_heartbeat: bool, min_age: float) -> _Taken:
        """Move the pending changes old enough into a batch; what happens meanwhile, and
        what is younger than ``min_age``, stays pending."""
        from .registry import Batch

        batch = Batch(server_id=server_id(), now=timezone.now())
        batch.isolate = self._failures >= ISOLATE_AFTER_FAILURES
        batch.delete_connections = sorted(self._ended_connections)
        batch.delete_operations = list(self._ended_operations)
        self._ended_connections, self._ended_operations = set(), set()
        born_by = batch.now - timedelta(seconds=min_age)
        connections: list[TrackedConnection] = []
        young_connections: dict[str, TrackedConnection] = {}
        for connection_id, connection in self._new_connections.items():
            if connection.connected_at > born_by:
                young_connections[connection_id] = connection
            elif not connection.abandoned:
                connections.append(connection)
        operations: list[TrackedOperation] = []
        young_operations: dict[TrackedOperation, None] = {}
        for operation in self._new_operations:
            if operation.started_at > born_by:
                young_operations[operation] = None
            elif not operation.connection.abandoned:
                operations.append(operation)
                if operation.uid is None:
                    operation.uid = uuid.uuid4()
        self._new_connections, self._new_operations = young_connections, young_operations
        # An operation's connection row must exist (it may have been pruned): write it along,
        # ignoring the conflict when it is there, rather than fail on the foreign key.
        ids = {connection.connection_id for connection in connections}
        for operation in operations:
            if operation.connection.connection_id not in ids:
                ids.add(operation.connection.connection_id)
                connections.append(operation.connection)
        for item in (*connections, *operations):
            item.submitted = True
        retopiced = self._collect_updates(batch)
        if self._resync:
            batch.resync = True
            batch.live_connections, batch.live_operations = _process_live_rows()
            batch.live_operations |= {op.uid for op in operations if op.uid is not None}
        interval = conf.get("HEARTBEAT_INTERVAL")
        if force_heartbeat or time.monotonic() - self._last_heartbeat >= interval:
            expected_connections = ids | {
                c.connection_id for c in self.connections.values() if c.written
            }
            expected_operations = {op.uid for op in operations} | {
                op.uid
                for c in self.connections.values()
                for op in c.operations.values()
                if op.written
            }
            batch.expected_connections = len(expected_connections)
            batch.expected_operations = len(expected_operations)
            batch.heartbeat = bool(expected_connections)
        return _Taken(batch, connections, operations, retopiced)

    def _collect_updates(self, batch: Any) -> list[TrackedOperation]:
        """Users replaced after the row was written, and topics listened to since."""
        retopiced = []
        for connection in self.connections.values():
            if not connection.written:
                continue
            user = connection.current_user()
            if user is not connection.user:
                batch.users[connection.connection_id] = user
            for operation in connection.operations.values():
                topics = operation.topics()
                if operation.written and len(topics) != operation.topics_written:
                    batch.topics[operation.uid] = _topics_text(topics)
                    operation.topics_in_flight = len(topics)
                    retopiced.append(operation)
        return retopiced

    def _give_back(self, taken: _Taken) -> None:
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

    def _settle(self, taken: _Taken, result: Any) -> None:
        """Record what the database now holds; queue again the rows found missing."""
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
        for operation in taken.retopiced:
            operation.topics_written = operation.topics_in_flight
        if taken.batch.heartbeat:
            self._last_heartbeat = time.monotonic()
        if taken.batch.resync:
            self._resync = False
        if result.existing_connections is not None:
            self._requeue_missing(result.existing_connections, result.existing_operations)

    def _requeue_missing(self, connections: set[str], operations: set[uuid.UUID]) -> None:
        missing = 0
        for connection in self.connections.values():
            if connection.written and connection.connection_id not in connections:
                connection.written = False
                self._new_connections[connection.connection_id] = connection
                missing += 1
            for operation in connection.operations.values():
                if operation.written and operation.uid not in operations:
                    operation.written = False
                    self._new_operations[operation] = None
                    missing += 1
        if missing:
            logger.info("%d live registry row(s) had gone missing; writing them again", missing)
            self._wake.set()


# -- rows, read from the consumers on the loop ---------------------------------------------


def _process_live_rows() -> tuple[set[str], set[uuid.UUID]]:
    """Connection ids and operation row keys live in any loop of this process (copies made
    under the GIL; another loop's changes meanwhile are healed by its own heartbeat)."""
    connections: set[str] = set()
    operations: set[uuid.UUID] = set()
    for tracker in _trackers.all():
        for connection in list(tracker.connections.values()):
            connections.add(connection.connection_id)
            operations.update(
                operation.uid
                for operation in list(connection.operations.values())
                if operation.uid is not None
            )
    return connections, operations


def _topics_text(topics: set[str]) -> str:
    from .models import join_topics

    return clean_text(join_topics(topics))


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


async def _hub_channel(consumer: Any) -> str:
    """The hub channel that reaches ``consumer`` (made now if the hub has not yet)."""
    hub = getattr(consumer, "hub", None)
    if hub is None:
        return ""
    if hub.channel_name is None:
        try:
            await hub.channel()
        except Exception as exc:  # the row is then unreachable from outside, nothing worse
            logger.debug("No hub channel for the registry: %r", exc)
            return ""
    return hub.channel_name or ""


async def _connection_row(connection: TrackedConnection, now: datetime) -> dict[str, Any]:
    consumer = connection.consumer
    client = consumer.scope.get("client") or ()
    connection.user_in_flight = connection.current_user()
    return {
        "connection_id": connection.connection_id,
        "channel_name": await _hub_channel(consumer),
        "server_id": server_id(),
        "user": connection.user_in_flight,
        "protocol": getattr(consumer.protocol, "name", "") or "",
        "remote_address": ":".join(str(part) for part in client[:2])[:100],
        "user_agent": clean_text(_header(consumer.scope, b"user-agent"))[:500],
        "connected_at": connection.connected_at,
        "last_seen": now,
    }


async def _operation_row(operation: TrackedOperation) -> dict[str, Any]:
    operation_type, operation_name = await _describe(operation)
    topics = operation.topics()
    operation.topics_in_flight = len(topics)
    return {
        "id": operation.uid,
        "connection_id": operation.connection.connection_id,
        # Client-chosen strings: bounded to their columns, so no row can be refused for size.
        "operation_id": clean_text(str(operation.operation_id))[:200],
        "operation_name": clean_text(operation_name)[:200],
        "operation_type": operation_type,
        "document": stored_document(
            operation.request.query, conf.get("TRACKING_MAX_DOCUMENT_BYTES")
        ),
        "variables": stored_variables(
            operation.request.variables, conf.get("TRACKING_MAX_VARIABLES_BYTES")
        ),
        "topics": _topics_text(topics),
        "started_at": operation.started_at,
    }


async def _describe(operation: TrackedOperation) -> tuple[str, str]:
    """The operation's type and name, from the executor's document cache (it was parsed a
    moment ago to run it, so this rarely parses again, and never on the loop)."""
    request = operation.request
    name = request.operation_name or ""
    executor = getattr(operation.connection.consumer, "executor", None)
    if executor is None:
        return "", name
    try:
        prepared = await executor.prepare(request.query)
    except Exception:
        return "", name
    ast = get_operation_ast(prepared.document, name or None) if prepared.document else None
    if ast is None:
        return "", name
    return ast.operation.value, ast.name.value if ast.name else name


class _Write:
    """One write handed to the database thread, which the loop can still wait for after
    the task awaiting it was cancelled (asgiref then stops waiting, the thread does not)."""

    def __init__(self, function: Any, batch: Any):
        self.function = function
        self.batch = batch
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._state = "queued"

    def __call__(self) -> Any:
        with self._lock:
            if self._state == "abandoned":
                return None
            self._state = "running"
        try:
            return self.function(self.batch)
        finally:
            self.done.set()

    def abandon(self) -> bool:
        """Keep the write from starting; False if it is already running (or has run)."""
        with self._lock:
            if self._state == "queued":
                self._state = "abandoned"
                return True
            return False


async def _in_database_thread(function: Any, batch: Any) -> Any:
    """``function(batch)`` in Django's database thread.

    When the flusher is cancelled (its event loop is closing: the end of a test, a server's
    shutdown) a write that has not started is dropped, and one under way is waited for, so
    no write is left running unobserved against a database being torn down.
    """
    write = _Write(function, batch)
    try:
        return await database_sync_to_async(write)()
    except asyncio.CancelledError:
        if not write.abandon():
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, write.done.wait, CANCEL_GRACE)
        raise


# -- one tracker per event loop, fed by the signals ----------------------------------------

_trackers: PerLoop[Tracker] = PerLoop(Tracker)


def get_tracker() -> Tracker:
    """The tracker of the running event loop (made on first use)."""
    return _trackers.get()


def _loop_tracker() -> Tracker | None:
    return _trackers.peek()  # called for every operation: no lock, never creates


def _on_opened(sender: Any, consumer: Any, **kwargs: Any) -> None:
    if conf.get("TRACKING"):
        get_tracker().opened(consumer)


def _on_started(
    sender: Any, consumer: Any, operation_id: str, request: Any, context: Any, **kwargs: Any
) -> None:
    tracker = _loop_tracker()
    if tracker is not None:
        tracker.started(consumer, operation_id, request, context)


def _on_finished(sender: Any, consumer: Any, operation_id: str, **kwargs: Any) -> None:
    tracker = _loop_tracker()
    if tracker is not None:
        tracker.finished(consumer, operation_id)


def _on_closed(sender: Any, consumer: Any, **kwargs: Any) -> None:
    tracker = _loop_tracker()
    if tracker is not None:
        tracker.closed(consumer)


_RECEIVERS = (
    (signals.connection_opened, _on_opened, "gqlchannels.tracking.opened"),
    (signals.operation_started, _on_started, "gqlchannels.tracking.started"),
    (signals.operation_finished, _on_finished, "gqlchannels.tracking.finished"),
    (signals.connection_closed, _on_closed, "gqlchannels.tracking.closed"),
)


async def _flush_before_stop() -> None:
    """Write the deletes of a stopping loop's closed connections before its server exits."""
    tracker = _trackers.peek()
    if tracker is not None:
        await tracker.flush()


def connect() -> None:
    """Connect the receivers to the connection signals; idempotent."""
    for signal, receiver, uid in _RECEIVERS:
        signal.connect(receiver, dispatch_uid=uid)
    drain.on_drained(_flush_before_stop)


def disconnect() -> None:
    """Disconnect the receivers: connections opened afterwards are not tracked."""
    for signal, _receiver, uid in _RECEIVERS:
        signal.disconnect(dispatch_uid=uid)
