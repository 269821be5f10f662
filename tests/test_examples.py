"""Every schema in ``examples/`` (the ones the README shows), driven over both protocols: its
query answers, and its subscription receives what its mutation broadcasts.

Graphene 3 needs graphql-core 3.2, so its example runs in the second environment
(``requirements-graphql32.txt``); elsewhere it is skipped, unless
``GQLCHANNELS_REQUIRE_GRAPHENE=1``, which that environment's CI step sets, makes a missing
Graphene fail.
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import os
from typing import Any

import pytest

from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.testing import LEGACY_WS, TRANSPORT_WS, GraphQLWSCommunicator, listening

TIMEOUT = 5.0
EXAMPLES = ["graphql_core_schema", "strawberry_schema", "graphene_schema", "ariadne_schema"]
SUBSCRIBE = "subscription Added($room: String!) { messageAdded(room: $room) { room text } }"
POST = (
    "mutation Post($room: String!, $text: String!)"
    " { postMessage(room: $room, text: $text) { room text } }"
)

_rooms = itertools.count(1)

pytestmark = [
    pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS]),
    pytest.mark.parametrize("example", EXAMPLES),
]


def example_schema(example: str) -> Any:
    """The example's ``schema``; a skip when it needs Graphene and Graphene is absent by
    design (graphql-core 3.3), unless GQLCHANNELS_REQUIRE_GRAPHENE says it must be there."""
    try:
        module = importlib.import_module(f"examples.{example}")
    except ModuleNotFoundError as missing:
        if missing.name == "graphene" and os.environ.get("GQLCHANNELS_REQUIRE_GRAPHENE") != "1":
            pytest.skip("Graphene 3 needs graphql-core 3.2: see requirements-graphql32.txt")
        raise
    return module.schema


def client(example: str, protocol: str) -> GraphQLWSCommunicator:
    """A test client on the example's schema, behind the consumer."""
    app = GraphQLWSConsumer.as_asgi(schema=example_schema(example))
    return GraphQLWSCommunicator(app, protocol=protocol, timeout=TIMEOUT)


async def test_the_query_answers(example: str, protocol: str) -> None:
    async with client(example, protocol) as communicator:
        result = await communicator.execute('{ hello(name: "Ada") }')
    assert result == {"data": {"hello": "Hello, Ada!"}}


async def test_the_mutation_returns_the_message(example: str, protocol: str) -> None:
    async with client(example, protocol) as communicator:
        result = await communicator.execute(POST, {"room": "quiet", "text": "hi"})
    assert result == {"data": {"postMessage": {"room": "quiet", "text": "hi"}}}


async def test_the_subscription_receives_what_the_mutation_broadcasts(
    example: str, protocol: str
) -> None:
    room = f"examples-{next(_rooms)}"
    async with client(example, protocol) as communicator:
        events = communicator.subscribe(SUBSCRIBE, {"room": room})
        first = asyncio.ensure_future(anext(events))
        await listening(f"room:{room}")
        await communicator.execute(POST, {"room": room, "text": "hi"})
        received = await asyncio.wait_for(first, TIMEOUT)
        await events.aclose()
    assert received == {"data": {"messageAdded": {"room": room, "text": "hi"}}}
