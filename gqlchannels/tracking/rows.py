"""Registry rows, as plain dicts, from the records of tracked connections and operations.

Only records are read here (never a consumer): a row says what was true when its
connection opened or its operation started, plus the user and the topics that came since.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..redaction import clean_text

if TYPE_CHECKING:
    from .pending import TrackedConnection, TrackedOperation


def connection_row(connection: TrackedConnection, now: datetime) -> dict[str, Any]:
    """The row of a connection, with the user of the write under way."""
    record = connection.record
    return {
        "connection_id": record.connection_id,
        "channel_name": record.channel_name,
        "server_id": record.server_id,
        "user": connection.user_in_flight,
        "protocol": record.protocol,
        "remote_address": record.remote_address,
        "user_agent": record.user_agent,
        "connected_at": record.connected_at,
        "last_seen": now,
    }


def operation_row(operation: TrackedOperation) -> dict[str, Any]:
    """The row of an operation (its ``uid`` made), with the topics of the write under way."""
    record = operation.record
    return {
        "id": operation.uid,
        "connection_id": record.connection_id,
        # Client-chosen strings: bounded to their columns, so no row can be refused for size.
        "operation_id": clean_text(str(record.operation_id))[:200],
        "operation_name": clean_text(record.operation_name)[:200],
        "operation_type": record.operation_type,
        "document": record.document,
        "variables": record.variables,
        "topics": topics_text(operation.topics_in_flight),
        "started_at": record.started_at,
        "events_sent": operation.delivered_in_flight,
        "last_event_at": operation.last_event_at,
    }


def topics_text(topics: Iterable[str]) -> str:
    """Topics as the ``topics`` column stores them."""
    from ..models import join_topics  # the models need the app registry: not at import

    return clean_text(join_topics(tuple(topics)))
