"""The benchmark schema for gqlchannels, hand-built with graphql-core.

Strawberry's server declares the same fields in Strawberry's own way
(``strawberry_schema.py``); the floor answers the same operations by hand. Two fields exist
here only, for the hostile scenario (``benchmarks.hostile``): ``plain``, a plain sync
resolver (it runs in Django's database thread, as an ORM resolver would), and the
subscription ``spin``, a source that yields without ever awaiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLFloat,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
)

import gqlchannels
from benchmarks.servers.common import live

tick_type = GraphQLObjectType(
    "Tick",
    {
        "seq": GraphQLField(GraphQLNonNull(GraphQLInt)),
        "sentAt": GraphQLField(GraphQLNonNull(GraphQLFloat)),
        "pad": GraphQLField(GraphQLString),
    },
)


@gqlchannels.inline
def resolve_hello(root: Any, info: Any) -> str:
    """A constant: the smallest query there is."""
    return "world"


@gqlchannels.inline
def resolve_live_subscriptions(root: Any, info: Any) -> int:
    """Subscriptions started in this process whose ``finally`` has not run."""
    return live.live


def resolve_plain(root: Any, info: Any) -> str:
    """A plain sync resolver, not marked inline: gqlchannels runs it off the loop, in the
    database thread, as it must for a resolver that may touch the ORM."""
    return "plain"


async def subscribe_spin(root: Any, info: Any) -> AsyncIterator[int]:
    """Counts up for ever without awaiting anything: only the server can give the loop back.
    Counted live until its ``finally`` runs, as ``tick`` is."""
    live.started += 1
    try:
        number = 0
        while True:
            yield number
            number += 1
    finally:
        live.finished += 1


@gqlchannels.inline
def resolve_spin(number: int, info: Any) -> int:
    """Each number as it came, on the loop: nothing in ``spin`` ever suspends."""
    return number


def tick_subscriber(shared: bool) -> Callable[..., AsyncIterator[dict[str, Any]]]:
    """The ``tick`` subscribe resolver, with or without shared results."""

    async def subscribe_tick(root: Any, info: Any, topic: str) -> AsyncIterator[dict[str, Any]]:
        """Every event published to ``topic``; counted live until its ``finally`` runs."""
        live.started += 1
        try:
            async for payload in gqlchannels.listen(info, topic, shared=shared):
                yield payload
        finally:
            live.finished += 1

    return subscribe_tick


def resolve_tick(payload: dict[str, Any], info: Any, topic: str) -> dict[str, Any]:
    """The event as it came (a plain dict, read by the default field resolvers)."""
    return payload


def tick_schema(shared: bool) -> GraphQLSchema:
    """The benchmark schema; ``shared`` says whether each event is executed once per process
    (the ``gqlchannels`` server) or once per subscriber (``gqlchannels-unshared``)."""
    return GraphQLSchema(
        query=GraphQLObjectType(
            "Query",
            {
                "hello": GraphQLField(GraphQLNonNull(GraphQLString), resolve=resolve_hello),
                "liveSubscriptions": GraphQLField(
                    GraphQLNonNull(GraphQLInt), resolve=resolve_live_subscriptions
                ),
                "plain": GraphQLField(GraphQLNonNull(GraphQLString), resolve=resolve_plain),
            },
        ),
        subscription=GraphQLObjectType(
            "Subscription",
            {
                "tick": GraphQLField(
                    GraphQLNonNull(tick_type),
                    args={"topic": GraphQLArgument(GraphQLNonNull(GraphQLString))},
                    subscribe=tick_subscriber(shared),
                    resolve=resolve_tick,
                ),
                "spin": GraphQLField(
                    GraphQLNonNull(GraphQLInt),
                    subscribe=subscribe_spin,
                    resolve=resolve_spin,
                ),
            },
        ),
    )


schema = tick_schema(shared=True)
unshared_schema = tick_schema(shared=False)
