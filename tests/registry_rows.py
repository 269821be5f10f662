"""Registry rows made directly, for the admin and audit tests (no consumer needed)."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from gqlchannels.models import Connection, Subscription, join_topics

_numbers = itertools.count(1)
#: Older than any STALE_AFTER the tests use.
LONG_AGO = timedelta(hours=2)


def connection(
    *,
    stale: bool = False,
    server_id: str = "host-a:100:aaaaaa",
    channel_name: str = "gqlchannels.hub.a",
    protocol: str = "graphql-transport-ws",
    user: Any = None,
    now: datetime | None = None,
    save: bool = True,
) -> Connection:
    """A connection row, alive unless ``stale``."""
    now = now or timezone.now()
    seen = now - LONG_AGO if stale else now
    row = Connection(
        connection_id=f"conn{next(_numbers):08d}",
        channel_name=channel_name,
        server_id=server_id,
        user=user,
        protocol=protocol,
        remote_address="127.0.0.1:50000",
        user_agent="tests",
        connected_at=seen - timedelta(minutes=5),
        last_seen=seen,
    )
    if save:
        row.save(force_insert=True)
    return row


def subscription(
    on: Connection,
    *,
    topics: tuple[str, ...] = (),
    name: str = "",
    operation_type: str = "subscription",
    document: str = "subscription { events }",
    variables: dict[str, Any] | None = None,
    save: bool = True,
) -> Subscription:
    """An operation row on ``on``."""
    row = Subscription(
        id=uuid.uuid4(),
        connection=on,
        operation_id=str(next(_numbers)),
        operation_name=name,
        operation_type=operation_type,
        document=document,
        variables=variables,
        topics=join_topics(topics),
        started_at=on.connected_at,
    )
    if save:
        row.save(force_insert=True)
    return row
