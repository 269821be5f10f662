"""Handing a write to Django's database thread, so that a closing loop never leaves one behind.

Registry writes run where the ORM's sync code runs (``database_sync_to_async``: one thread,
shared with sync ORM resolvers, so on SQLite they never contend for the lock from two
connections). When the task awaiting a write is cancelled (its event loop is closing: the end
of a test, a server's shutdown), asgiref stops waiting but the thread does not: a write that
has not started is dropped, and one under way is waited for (bounded), so no write runs
unobserved against a database being torn down.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async

#: Seconds a cancelled flusher (its loop is closing) still waits for a write under way.
CANCEL_GRACE = 10.0


class _Write:
    """One write handed to the database thread, which the loop can still wait for after
    the task awaiting it was cancelled (asgiref then stops waiting, the thread does not)."""

    def __init__(self, function: Callable[[Any], Any], batch: Any):
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


async def in_database_thread(function: Callable[[Any], Any], batch: Any) -> Any:
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
