"""Publishing committed model changes, from whichever thread committed them.

Django runs ``on_commit`` callbacks in the thread that committed: a view's thread, a
management command's, or the worker thread where an async ORM call (``acreate``,
``sync_to_async``) ran the save. That thread has no running event loop, so the events go
out with ``broadcast_sync``, which finds the server's loop when this process serves
WebSockets. Code that commits on a running loop gets a task that awaits ``broadcast``.

The transaction is already committed when this runs, so a failure to publish (the layer is
down) must not reach the code that committed: it is logged as one ERROR line, without a
traceback, and handed to any ``publish_failures()`` block around the commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from .broadcast import broadcast, broadcast_sync

logger = logging.getLogger("gqlchannels.changes")

#: An event to publish: its topic and its payload.
Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class PublishFailure:
    """A committed change whose event could not be published: the event and the error."""

    topic: str
    event: dict[str, Any]
    error: Exception


_failures: ContextVar[list[PublishFailure] | None] = ContextVar(
    "gqlchannels_publish_failures", default=None
)
#: Publishing tasks started on a running loop, kept alive until they end.
_tasks: set[asyncio.Task[None]] = set()


@contextmanager
def publish_failures() -> Iterator[list[PublishFailure]]:
    """Collect the failures to publish the changes committed inside the block.

    For code that wants to tell its user a change was saved but not delivered live (the
    failures are logged all the same). The list fills as the commits happen, in the thread
    that commits; events published by a task (a commit on a running loop) are not collected.
    """
    failures: list[PublishFailure] = []
    token = _failures.set(failures)
    try:
        yield failures
    finally:
        _failures.reset(token)


def deliver(events: list[Event]) -> None:
    """Publish ``events`` in order, from the thread that committed them; never raises."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        for topic, event in events:
            try:
                broadcast_sync(topic, event)
            except Exception as exc:
                _failed(topic, event, exc)
        return
    task = loop.create_task(_publish(events))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _publish(events: list[Event]) -> None:
    for topic, event in events:
        try:
            await broadcast(topic, event)
        except Exception as exc:
            _failed(topic, event, exc)


def _failed(topic: str, event: dict[str, Any], error: Exception) -> None:
    logger.error(
        "Committed change not published (%s %s pk=%r to %r): %s",
        event["type"],
        event["model"],
        event["pk"],
        topic,
        error,
    )
    failures = _failures.get()
    if failures is not None:
        failures.append(PublishFailure(topic, event, error))
