"""Shared results: ``listen(..., shared=True)`` executes an event once for every subscription
in the process that sent the same operation, and changes nothing else they receive."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer
from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
)

import gqlchannels
from gqlchannels.broadcast import broadcast
from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.execution import MASKED_MESSAGE
from gqlchannels.hub import get_hub
from gqlchannels.sharing import SharedResults
from gqlchannels.testing import LEGACY_WS, TRANSPORT_WS, GraphQLWSCommunicator
from tests.helpers import wait_listening, wait_until

TIMEOUT = 5.0
#: Executions of the ``text`` field, by the event's text.
executions: Counter[str] = Counter()


async def _items(
    root: Any, info: Any, topic: str, shared: bool, replace: bool, tag: str
) -> AsyncIterator[Any]:
    async for payload in gqlchannels.listen(info, topic, shared=shared):
        yield dict(payload) if replace else payload


@gqlchannels.inline
def _text(item: dict[str, str], info: Any) -> str:
    executions[item["text"]] += 1
    return item["text"]


async def _slow_text(item: dict[str, str], info: Any) -> str:
    executions[item["text"]] += 1
    await asyncio.sleep(0)
    return item["text"].upper()


@gqlchannels.inline
def _broken(item: dict[str, str], info: Any) -> str:
    executions[item["text"]] += 1
    raise ValueError("secret internals")


item_type = GraphQLObjectType(
    "Item",
    {
        "text": GraphQLField(GraphQLString, resolve=_text),
        "slowText": GraphQLField(GraphQLString, resolve=_slow_text),
        "broken": GraphQLField(GraphQLString, resolve=_broken),
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
                    "shared": GraphQLArgument(GraphQLBoolean, default_value=True),
                    "replace": GraphQLArgument(GraphQLBoolean, default_value=False),
                    "tag": GraphQLArgument(GraphQLString, default_value=""),
                },
                subscribe=_items,
                resolve=lambda item, info, **args: item,
            )
        },
    ),
)
application = GraphQLWSConsumer.as_asgi(schema=schema)

ITEMS = """subscription($topic: String!, $shared: Boolean, $replace: Boolean, $tag: String) {
  items(topic: $topic, shared: $shared, replace: $replace, tag: $tag) { text }
}"""


@pytest.fixture(autouse=True)
def fresh(memory_layer: InMemoryChannelLayer) -> None:
    """A fresh in-memory layer, and no executions counted yet."""
    executions.clear()


async def subscribed(
    variables: list[dict[str, Any]], query: str = ITEMS, protocols: tuple[str, ...] = ()
) -> tuple[list[GraphQLWSCommunicator], list[AsyncIterator[dict[str, Any]]]]:
    """One connection per entry of ``variables``, each with its subscription listening
    (all on one topic) and past a first event."""
    clients: list[GraphQLWSCommunicator] = []
    streams: list[AsyncIterator[dict[str, Any]]] = []
    for number, values in enumerate(variables):
        protocol = protocols[number % len(protocols)] if protocols else TRANSPORT_WS
        communicator = GraphQLWSCommunicator(application, protocol=protocol, timeout=TIMEOUT)
        await communicator.__aenter__()
        clients.append(communicator)
        streams.append(communicator.subscribe(query, values))
    firsts = [asyncio.ensure_future(anext(stream)) for stream in streams]
    topic = variables[0]["topic"]
    await wait_listening(topic)
    await wait_until(lambda: get_hub().listener_count() == len(variables))
    await broadcast(topic, {"text": "first"})
    async with asyncio.timeout(TIMEOUT):
        await asyncio.gather(*firsts)
    return clients, streams


async def closed(clients: list[GraphQLWSCommunicator]) -> None:
    for communicator in clients:
        await communicator.__aexit__(None, None, None)


async def next_texts(
    streams: list[AsyncIterator[dict[str, Any]]], field: str = "text"
) -> list[Any]:
    async with asyncio.timeout(TIMEOUT):
        results = [await anext(stream) for stream in streams]
    return [result["data"]["items"][field] for result in results]


# -- through the consumer -----------------------------------------------------------------


async def test_subscriptions_sending_the_same_shared_operation_execute_each_event_once() -> None:
    clients, streams = await subscribed([{"topic": "same"}] * 3)
    await broadcast("same", {"text": "hello"})
    assert await next_texts(streams) == ["hello"] * 3
    await closed(clients)
    assert executions["hello"] == 1


async def test_subscriptions_not_sharing_execute_each_event_once_per_subscriber() -> None:
    clients, streams = await subscribed([{"topic": "own", "shared": False}] * 3)
    await broadcast("own", {"text": "hello"})
    assert await next_texts(streams) == ["hello"] * 3
    await closed(clients)
    assert executions["hello"] == 3


async def test_shared_subscriptions_with_different_variables_execute_separately() -> None:
    tags = [{"topic": "vars", "tag": tag} for tag in "aabb"]
    clients, streams = await subscribed(tags)
    await broadcast("vars", {"text": "hello"})
    assert await next_texts(streams) == ["hello"] * 4
    await closed(clients)
    assert executions["hello"] == 2


async def test_an_event_the_resolver_replaces_is_executed_per_subscriber() -> None:
    # A transformed event may carry anything of the subscriber's: it is never shared.
    clients, streams = await subscribed([{"topic": "replaced", "replace": True}] * 3)
    await broadcast("replaced", {"text": "hello"})
    assert await next_texts(streams) == ["hello"] * 3
    await closed(clients)
    assert executions["hello"] == 3


async def test_every_shared_subscriber_receives_every_event_in_order_in_both_protocols() -> None:
    clients, streams = await subscribed(
        [{"topic": "order"}] * 4, protocols=(TRANSPORT_WS, LEGACY_WS)
    )
    for number in range(20):
        await broadcast("order", {"text": str(number)})
    received = [await next_texts(streams) for _ in range(20)]
    await closed(clients)
    assert received == [[str(number)] * 4 for number in range(20)]
    assert all(executions[str(number)] == 1 for number in range(20))


async def test_an_asynchronous_shared_result_is_computed_once() -> None:
    query = ITEMS.replace("{ text }", "{ slowText }")
    clients, streams = await subscribed([{"topic": "slow"}] * 3, query=query)
    await broadcast("slow", {"text": "hello"})
    assert await next_texts(streams, "slowText") == ["HELLO"] * 3
    await closed(clients)
    assert executions["hello"] == 1


async def test_a_shared_resolver_error_is_masked_and_reaches_every_subscriber() -> None:
    query = ITEMS.replace("{ text }", "{ broken }")
    clients, streams = await subscribed([{"topic": "broken"}] * 2, query=query)
    await broadcast("broken", {"text": "hello"})
    async with asyncio.timeout(TIMEOUT):
        results = [await anext(stream) for stream in streams]
    await closed(clients)
    assert [result["errors"][0]["message"] for result in results] == [MASKED_MESSAGE] * 2
    assert executions["hello"] == 1


# -- SharedResults on its own ---------------------------------------------------------------


async def test_shared_results_compute_a_key_once() -> None:
    results, calls = SharedResults(), []

    def compute() -> str:
        calls.append(1)
        return "value"

    assert [await results.get("key", compute) for _ in range(3)] == ["value"] * 3
    assert len(calls) == 1


async def test_shared_results_compute_distinct_keys_separately() -> None:
    results = SharedResults()
    assert await results.get("a", lambda: "for a") == "for a"
    assert await results.get("b", lambda: "for b") == "for b"


async def test_shared_results_keep_computing_for_others_when_the_first_caller_is_cancelled() -> (
    None
):
    results, gate = SharedResults(), asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "value"

    # Typed apart: with no expected type, mypy cannot tell T from Awaitable[T] in ``get``.
    first_call: Coroutine[Any, Any, str] = results.get("key", slow)
    first = asyncio.ensure_future(first_call)
    await asyncio.sleep(0)
    second: asyncio.Future[str] = asyncio.ensure_future(
        results.get("key", lambda: pytest.fail("computed twice"))
    )
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert await asyncio.wait_for(second, TIMEOUT) == "value"
    assert first.cancelled()


async def test_an_error_while_computing_reaches_the_caller_and_is_not_kept() -> None:
    results = SharedResults()

    def broken() -> str:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await results.get("key", broken)
    assert await results.get("key", lambda: "value") == "value"
