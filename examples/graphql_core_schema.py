"""A chat schema built by hand with graphql-core: a query, a mutation that broadcasts, and a
subscription that receives what is broadcast."""

from collections.abc import AsyncGenerator
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLSchema,
    GraphQLString,
)

import gqlchannels

Message = GraphQLObjectType(
    "Message",
    {
        "room": GraphQLField(GraphQLNonNull(GraphQLString)),
        "text": GraphQLField(GraphQLNonNull(GraphQLString)),
    },
)


def resolve_hello(root: Any, info: GraphQLResolveInfo, name: str = "world") -> str:
    """Greet ``name``: a query, to see the connection work."""
    return f"Hello, {name}!"


async def post_message(root: Any, info: GraphQLResolveInfo, room: str, text: str) -> Any:
    """Publish a message to its room's subscribers (in every process) and return it."""
    message = {"room": room, "text": text}
    await gqlchannels.broadcast(f"room:{room}", message)
    return message


async def subscribe_message_added(
    root: Any, info: GraphQLResolveInfo, room: str
) -> AsyncGenerator[Any, None]:
    """Yield each message broadcast to ``room`` for as long as the client subscribes."""
    async for message in gqlchannels.listen(info, f"room:{room}"):
        yield message


def resolve_message_added(message: Any, info: GraphQLResolveInfo, room: str) -> Any:
    """The field's value for one event: the event itself. Without ``resolve=``, graphql-core
    would look up ``message["messageAdded"]`` and every event would arrive as null."""
    return message


ROOM = {"room": GraphQLArgument(GraphQLNonNull(GraphQLString))}

schema = GraphQLSchema(
    query=GraphQLObjectType(
        "Query",
        {
            "hello": GraphQLField(
                GraphQLNonNull(GraphQLString),
                args={"name": GraphQLArgument(GraphQLString, default_value="world")},
                resolve=resolve_hello,
            )
        },
    ),
    mutation=GraphQLObjectType(
        "Mutation",
        {
            "postMessage": GraphQLField(
                GraphQLNonNull(Message),
                args={**ROOM, "text": GraphQLArgument(GraphQLNonNull(GraphQLString))},
                resolve=post_message,
            )
        },
    ),
    subscription=GraphQLObjectType(
        "Subscription",
        {
            "messageAdded": GraphQLField(
                GraphQLNonNull(Message),
                args=ROOM,
                subscribe=subscribe_message_added,
                resolve=resolve_message_added,
            )
        },
    ),
)
