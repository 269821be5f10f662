"""The benchmark schema for gqlchannels, hand-built with graphql-core.

Strawberry's server declares the same fields in Strawberry's own way
(``strawberry_schema.py``); the floor answers the same operations by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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


async def subscribe_tick(root: Any, info: Any, topic: str) -> AsyncIterator[dict[str, Any]]:
    """Every event published to ``topic``; counted live until its ``finally`` runs."""
    live.started += 1
    try:
        async for payload in gqlchannels.listen(info, topic, shared=True):
            yield payload
    finally:
        live.finished += 1


def resolve_tick(payload: dict[str, Any], info: Any, topic: str) -> dict[str, Any]:
    """The event as it came (a plain dict, read by the default field resolvers)."""
    return payload


schema = GraphQLSchema(
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
                subscribe=subscribe_tick,
                resolve=resolve_tick,
            )
        },
    ),
)
