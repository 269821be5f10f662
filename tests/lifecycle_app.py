"""An ASGI application for tests that stop real server processes or stop reading from them.

Its subscription ``held(key)`` answers ``"ready"`` at once, then listens to a topic until it
is stopped; ``flood(key, size)`` sends strings of ``size`` characters as fast as the server
takes them. Their start and their ``finally`` are appended as lines (``start <key>``,
``finally <key>``) to the file named by ``GQLCHANNELS_TEST_EVENTS``, so a test can read,
even after the server process has exited, which ``finally`` blocks ran.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402
from graphql import (  # noqa: E402
    GraphQLArgument,
    GraphQLField,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
)

import gqlchannels  # noqa: E402
from gqlchannels.consumers import GraphQLWSConsumer  # noqa: E402


def record(line: str) -> None:
    """Append one line to the events file (one write per line: lines never interleave)."""
    with open(os.environ["GQLCHANNELS_TEST_EVENTS"], "a", encoding="utf-8") as events:
        events.write(line + "\n")


async def _held(root: Any, info: Any, key: str) -> Any:
    record(f"start {key}")
    try:
        yield "ready"
        async for event in gqlchannels.listen(info, "lifecycle"):
            yield str(event)
    finally:
        record(f"finally {key}")


async def _flood(root: Any, info: Any, key: str, size: int, count: int | None = None) -> Any:
    record(f"start {key}")
    try:
        text = "x" * size
        sent = 0
        while count is None or sent < count:
            yield text
            sent += 1
            await asyncio.sleep(0)
    finally:
        record(f"finally {key}")


schema = GraphQLSchema(
    query=GraphQLObjectType("Query", {"ok": GraphQLField(GraphQLString, resolve=lambda *_: "ok")}),
    subscription=GraphQLObjectType(
        "Subscription",
        {
            "held": GraphQLField(
                GraphQLString,
                args={"key": GraphQLArgument(GraphQLNonNull(GraphQLString))},
                subscribe=_held,
                resolve=lambda event, info, key: event,
            ),
            "flood": GraphQLField(
                GraphQLString,
                args={
                    "key": GraphQLArgument(GraphQLNonNull(GraphQLString)),
                    "size": GraphQLArgument(GraphQLNonNull(GraphQLInt)),
                    "count": GraphQLArgument(GraphQLInt),
                },
                subscribe=_flood,
                resolve=lambda event, info, **arguments: event,
            ),
        },
    ),
)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([path("graphql/", GraphQLWSConsumer.as_asgi(schema=schema))]),
    }
)
