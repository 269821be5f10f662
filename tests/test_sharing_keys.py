"""Sharing by key, automatic sharing of pure selections, and per-subscriber filters.

``listen(info, topic, shared=key)`` shares one execution per event among subscribers whose
operation and key (a function of their context) are equal; ``shared=None`` (the default)
shares when every resolver the selection reaches is pure; ``filter=`` refuses events before
anything is executed for that subscriber.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer
from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
)

import gqlchannels
from gqlchannels.broadcast import broadcast
from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.testing import GraphQLWSCommunicator
from tests.helpers import wait_listening, wait_until

TIMEOUT = 5.0
#: Executions of each counting field, by the event's text.
executions: Counter[str] = Counter()

SHARING = {
    "key": lambda context: context.connection_params.get("group"),
    "auto": None,
    "never": False,
}


async def _items(
    root: Any, info: Any, topic: str, sharing: str, refuse: str = ""
) -> AsyncIterator[Any]:
    refused = (lambda event: event["text"] != refuse) if refuse else None
    async for event in gqlchannels.listen(info, topic, shared=SHARING[sharing], filter=refused):
        yield event


@gqlchannels.pure
def _pure_text(item: dict[str, str], info: Any) -> str:
    executions[item["text"]] += 1
    return item["text"]


@gqlchannels.inline
def _unmarked_text(item: dict[str, str], info: Any) -> str:
    executions[item["text"]] += 1
    return item["text"]


item_type = GraphQLObjectType(
    "Item",
    {
        "text": GraphQLField(GraphQLString),
        "pureText": GraphQLField(GraphQLString, resolve=_pure_text),
        "unmarkedText": GraphQLField(GraphQLString, resolve=_unmarked_text),
    },
)
schema = GraphQLSchema(
    query=GraphQLObjectType("Query", {"ok": GraphQLField(GraphQLString)}),
    subscription=GraphQLObjectType(
        "Subscription",
        {
            "items": GraphQLField(
                item_type,
                args={
                    "topic": GraphQLArgument(GraphQLNonNull(GraphQLString)),
                    "sharing": GraphQLArgument(GraphQLNonNull(GraphQLString)),
                    "refuse": GraphQLArgument(GraphQLString),
                },
                subscribe=_items,
                resolve=gqlchannels.pure(lambda item, info, **args: item),
            )
        },
    ),
)
application = GraphQLWSConsumer.as_asgi(schema=schema)


def items(field: str) -> str:
    return (
        "subscription($topic: String!, $sharing: String!, $refuse: String) {"
        f" items(topic: $topic, sharing: $sharing, refuse: $refuse) {{ {field} }} }}"
    )


@pytest.fixture(autouse=True)
def fresh(memory_layer: InMemoryChannelLayer) -> None:
    """A fresh in-memory layer, and no executions counted yet."""
    executions.clear()


class Subscribers:
    """Connections, each with one ``items`` subscription on ``topic``, all listening."""

    def __init__(self) -> None:
        self.clients: list[GraphQLWSCommunicator] = []
        self.streams: list[AsyncIterator[dict[str, Any]]] = []

    async def add(self, query: str, group: str = "", **variables: Any) -> None:
        client = GraphQLWSCommunicator(
            application, connection_params={"group": group}, timeout=TIMEOUT
        )
        await client.__aenter__()
        self.clients.append(client)
        self.streams.append(client.subscribe(query, {"topic": "t", **variables}))

    async def listening(self) -> None:
        """Every subscription is listening (each has taken a first event)."""
        firsts = [asyncio.ensure_future(anext(stream)) for stream in self.streams]
        await wait_listening("t")
        await wait_until(lambda: gqlchannels.hub.get_hub().listener_count() == len(self.streams))
        await broadcast("t", {"text": "first"})
        async with asyncio.timeout(TIMEOUT):
            await asyncio.gather(*firsts)

    async def next_texts(self, field: str) -> list[str]:
        async with asyncio.timeout(TIMEOUT):
            results = [await anext(stream) for stream in self.streams]
        return [result["data"]["items"][field] for result in results]

    async def close(self) -> None:
        for client in self.clients:
            await client.__aexit__(None, None, None)


@pytest.fixture
async def subscribers() -> AsyncIterator[Subscribers]:
    group = Subscribers()
    yield group
    await group.close()


async def test_subscribers_with_equal_keys_share_one_execution_per_event(subscribers):
    for group in "aabb":
        await subscribers.add(items("pureText"), group=group, sharing="key")
    await subscribers.listening()

    await broadcast("t", {"text": "hello"})

    assert await subscribers.next_texts("pureText") == ["hello"] * 4
    assert executions["hello"] == 2


async def test_a_selection_of_pure_resolvers_is_shared_without_being_asked(subscribers):
    for _ in range(3):
        await subscribers.add(items("pureText text"), sharing="auto")
    await subscribers.listening()

    await broadcast("t", {"text": "hello"})

    assert await subscribers.next_texts("pureText") == ["hello"] * 3
    assert executions["hello"] == 1


async def test_a_selection_reaching_an_unmarked_resolver_is_not_shared_automatically(
    subscribers,
):
    for _ in range(3):
        await subscribers.add(items("pureText unmarkedText"), sharing="auto")
    await subscribers.listening()

    await broadcast("t", {"text": "hello"})

    assert await subscribers.next_texts("unmarkedText") == ["hello"] * 3
    assert executions["hello"] == 6


async def test_shared_false_never_shares_even_a_pure_selection(subscribers):
    for _ in range(3):
        await subscribers.add(items("pureText"), sharing="never")
    await subscribers.listening()

    await broadcast("t", {"text": "hello"})

    assert await subscribers.next_texts("pureText") == ["hello"] * 3
    assert executions["hello"] == 3


async def test_an_event_the_filter_refuses_is_never_executed_for_that_subscriber(subscribers):
    await subscribers.add(items("pureText"), sharing="never", refuse="secret")
    await subscribers.listening()

    await broadcast("t", {"text": "secret"})
    await broadcast("t", {"text": "public"})

    assert await subscribers.next_texts("pureText") == ["public"]
    assert executions["secret"] == 0


async def test_a_subscriber_that_filters_leaves_the_others_sharing(subscribers):
    await subscribers.add(items("pureText"), sharing="auto")
    await subscribers.add(items("pureText"), sharing="auto")
    await subscribers.add(items("pureText"), sharing="auto", refuse="x")
    await subscribers.listening()

    await broadcast("t", {"text": "x"})
    await broadcast("t", {"text": "y"})

    assert await subscribers.next_texts("pureText") == ["x", "x", "y"]
    assert executions["x"] == 1
