"""The receivers that feed each event loop's tracker from the connection signals.

``connect()`` wires them (``apps.ready`` does when ``TRACKING`` is on). Each takes the record
or the ids its signal carries and hands them to the running loop's tracker; only
``connection_opened`` makes a tracker, so a loop with tracking off never has one.
"""

from __future__ import annotations

import uuid
from typing import Any

from .. import conf, drain, signals
from ..loops import PerLoop
from .flusher import Tracker
from .records import ConnectionRecord, OperationRecord


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


_trackers: PerLoop[Tracker] = PerLoop(lambda: Tracker(_process_live_rows))


def get_tracker() -> Tracker:
    """The tracker of the running event loop (made on first use)."""
    return _trackers.get()


def loop_tracker() -> Tracker | None:
    """The running loop's tracker if it has one (called for every operation: no lock, never
    creates)."""
    return _trackers.peek()


def _on_opened(sender: Any, record: ConnectionRecord, **kwargs: Any) -> None:
    if conf.get("TRACKING"):
        get_tracker().opened(record)


def _on_updated(sender: Any, record: ConnectionRecord, **kwargs: Any) -> None:
    tracker = loop_tracker()
    if tracker is not None:
        tracker.updated(record)


def _on_started(sender: Any, record: OperationRecord, **kwargs: Any) -> None:
    tracker = loop_tracker()
    if tracker is not None:
        tracker.started(record)


def _on_topics(
    sender: Any, connection_id: str, operation_id: str, topics: frozenset[str], **kwargs: Any
) -> None:
    tracker = loop_tracker()
    if tracker is not None:
        tracker.listens(connection_id, operation_id, topics)


def _on_finished(sender: Any, connection_id: str, operation_id: str, **kwargs: Any) -> None:
    tracker = loop_tracker()
    if tracker is not None:
        tracker.finished(connection_id, operation_id)


def _on_closed(sender: Any, connection_id: str, **kwargs: Any) -> None:
    tracker = loop_tracker()
    if tracker is not None:
        tracker.closed(connection_id)


_RECEIVERS = (
    (signals.connection_opened, _on_opened, "gqlchannels.tracking.opened"),
    (signals.connection_updated, _on_updated, "gqlchannels.tracking.updated"),
    (signals.operation_started, _on_started, "gqlchannels.tracking.started"),
    (signals.operation_topics, _on_topics, "gqlchannels.tracking.topics"),
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
