"""The benchmark schema for gqlchannels, hand-built with graphql-core.

Strawberry's server declares the same fields in Strawberry's own way
(``strawberry_schema.py``); the floor answers the same operations by hand.
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
                )
            },
        ),
    )


schema = tick_schema(shared=True)
unshared_schema = tick_schema(shared=False)
