"""One batch of registry changes, as plain values handed from the loop to the database thread.

The flusher (``gqlchannels.tracking.flusher``) fills a ``Batch`` from the pending state; the
store (``gqlchannels.tracking.store``) applies it and answers with a ``WriteResult``. Neither
holds anything the other side mutates, so the event loop and the database thread share
nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class Batch:
    """One write: rows to delete, insert and update, and whether to send a heartbeat.

    ``connections`` rows carry ``user``, the user object (resolved to a key here, where the
    database may be read); ``users`` maps connection ids to a user that replaced theirs.
    """

    server_id: str
    now: datetime
    delete_connections: list[str] = field(default_factory=list)
    delete_operations: list[uuid.UUID] = field(default_factory=list)
    connections: list[dict[str, Any]] = field(default_factory=list)
    operations: list[dict[str, Any]] = field(default_factory=list)
    users: dict[str, Any] = field(default_factory=dict)
    topics: dict[uuid.UUID, str] = field(default_factory=dict)
    #: Operations whose count of results changed: the count, and when it last changed
    #: (sent with heartbeats only).
    deliveries: dict[uuid.UUID, tuple[int, datetime | None]] = field(default_factory=dict)
    heartbeat: bool = False
    #: Rows of this loop that must exist after the batch (checked by the heartbeat).
    expected_connections: int = 0
    expected_operations: int = 0
    #: Insert row by row, each in a savepoint, and report the rows refused.
    isolate: bool = False
    #: Delete every row of this process that is not live (after pending deletes were lost).
    resync: bool = False
    live_connections: set[str] = field(default_factory=set)
    live_operations: set[uuid.UUID] = field(default_factory=set)

    def empty(self) -> bool:
        """Whether there is nothing to write."""
        return not (
            self.delete_connections
            or self.delete_operations
            or self.connections
            or self.operations
            or self.users
            or self.topics
            or self.heartbeat
            or self.resync
        )


@dataclass
class WriteResult:
    """What the database thread reports back to the loop."""

    #: After a heartbeat that found fewer rows than expected: the ids of this process's rows
    #: that do exist (None: nothing is missing).
    existing_connections: set[str] | None = None
    existing_operations: set[uuid.UUID] | None = None
    refused_connections: set[str] = field(default_factory=set)
    refused_operations: set[uuid.UUID] = field(default_factory=set)
