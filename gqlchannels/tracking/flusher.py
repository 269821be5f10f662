"""The flusher: one task per event loop that writes the loop's pending registry changes.

Every ``TRACKING_FLUSH_INTERVAL`` it takes what piled up (``gqlchannels.tracking.pending``)
and hands it, as one batch, to the database thread (``gqlchannels.tracking.store``): bulk
deletes of what ended, bulk inserts of what started (an operation that starts and ends
between two flushes is never written at all), and, every ``HEARTBEAT_INTERVAL``, one UPDATE
refreshing ``last_seen`` of all the process's rows.

A failed write is logged once and retried with the same pending changes; after repeated
failures rows are inserted one by one, so one row the database refuses cannot keep the others
out. Rows that went missing (pruned by the audit while alive, say) are noticed by the
heartbeat and written again. When the loop's last connection closes, the flusher writes at
once and then ends, so no task outlives the connections it tracks.
"""

from __future__ import annotations

import asyncio
import logging
import time

from django.utils import timezone

from .. import conf
from ..faults import Outage
from .batch import Batch
from .handover import in_database_thread
from .pending import LiveRows, Pending, TrackedConnection
from .records import ConnectionRecord, OperationRecord, server_id

logger = logging.getLogger("gqlchannels.tracking")

#: Consecutive failed writes after which rows are inserted one by one, so that one row the
#: database refuses (a poison pill) cannot keep the registry from catching up.
ISOLATE_AFTER_FAILURES = 2


class Tracker:
    """One event loop's tracked state and the task that writes it.

    The recording methods run in the consumers' tasks and never wait; ``flush`` alone
    reaches the database.
    """

    def __init__(self, live_rows: LiveRows) -> None:
        self.state = Pending(live_rows)
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._flushed = asyncio.Event()
        #: Failed writes in a row, logged once when they start and once when they end.
        self._outage = Outage(
            logger,
            "Could not write the live connection registry ({error!r}); keeping the changes "
            "and retrying every {interval}s",
            "Live connection registry written again after {failures} failed attempt(s)",
        )
        self._last_heartbeat = time.monotonic()

    @property
    def connections(self) -> dict[str, TrackedConnection]:
        """The loop's tracked connections, by id."""
        return self.state.connections

    def pending(self) -> bool:
        """Whether changes wait to be written."""
        return self.state.pending()

    @property
    def running(self) -> bool:
        """Whether the flusher task is alive."""
        return self._task is not None and not self._task.done()

    # -- recording (never waits) ----------------------------------------------------------

    def opened(self, record: ConnectionRecord) -> None:
        """A connection was accepted: track it, and make sure the flusher runs."""
        self.state.opened(record)
        if not self.running:
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="gqlchannels-tracking")

    def updated(self, record: ConnectionRecord) -> None:
        """A tracked connection's user was replaced."""
        self.state.updated(record)

    def started(self, record: OperationRecord) -> None:
        """An operation was admitted."""
        self.state.started(record)

    def listens(self, connection_id: str, operation_id: str, topics: frozenset[str]) -> None:
        """An operation listens to ``topics`` (all of them so far)."""
        self.state.listens(connection_id, operation_id, topics)

    def finished(self, connection_id: str, operation_id: str) -> None:
        """An operation ended."""
        self.state.finished(connection_id, operation_id)

    def closed(self, connection_id: str) -> None:
        """A connection closed; after the last one, write now and then stop."""
        self.state.closed(connection_id)
        if not self.state.connections:
            self._wake.set()

    # -- the flusher ----------------------------------------------------------------------

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
                if not self.state.connections and not self.state.pending():
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
                done, self._flushed = self._flushed, asyncio.Event()
                done.set()

    async def _flush(self, force_heartbeat: bool, min_age: float) -> None:
        from . import store  # the models need the app registry: not at import

        batch = Batch(server_id=server_id(), now=timezone.now())
        batch.isolate = self._outage.failures >= ISOLATE_AFTER_FAILURES
        due = time.monotonic() - self._last_heartbeat >= conf.get("HEARTBEAT_INTERVAL")
        taken = self.state.take(batch, min_age, heartbeat=force_heartbeat or due)
        if batch.empty():
            return
        try:
            result = await in_database_thread(store.write_batch, batch)
        except Exception as exc:
            self.state.give_back(taken)
            self._outage.failed(error=exc, interval=conf.get("TRACKING_FLUSH_INTERVAL"))
            return
        self._outage.succeeded()
        if batch.heartbeat:
            self._last_heartbeat = time.monotonic()
        missing = self.state.settle(taken, result)
        if missing:
            logger.info("%d live registry row(s) had gone missing; writing them again", missing)
            self._wake.set()
