"""The chat schema with Ariadne, schema first: a query, a mutation that broadcasts, and a
subscription that receives what is broadcast."""

from collections.abc import AsyncGenerator
from typing import Any

from ariadne import MutationType, QueryType, SubscriptionType, make_executable_schema
from graphql import GraphQLResolveInfo

import gqlchannels

type_defs = """
    type Message {
        room: String!
        text: String!
    }

    type Query {
        hello(name: String = "world"): String!
    }

    type Mutation {
        postMessage(room: String!, text: String!): Message!
    }

    type Subscription {
        messageAdded(room: String!): Message!
    }
"""

query = QueryType()
mutation = MutationType()
subscription = SubscriptionType()


@query.field("hello")
def resolve_hello(root: Any, info: GraphQLResolveInfo, name: str) -> str:
    """Greet ``name``: a query, to see the connection work."""
    return f"Hello, {name}!"


@mutation.field("postMessage")
async def resolve_post_message(root: Any, info: GraphQLResolveInfo, room: str, text: str) -> Any:
    """Publish a message to its room's subscribers (in every process) and return it."""
    message = {"room": room, "text": text}
    await gqlchannels.broadcast(f"room:{room}", message)
    return message


@subscription.source("messageAdded")
async def message_added_source(
    root: Any, info: GraphQLResolveInfo, room: str
) -> AsyncGenerator[Any, None]:
    """Yield each message broadcast to ``room`` for as long as the client subscribes."""
    async for message in gqlchannels.listen(info, f"room:{room}"):
        yield message


@subscription.field("messageAdded")
def resolve_message_added(message: Any, info: GraphQLResolveInfo, room: str) -> Any:
    """The field's value for one event: the event itself (else each event arrives as null)."""
    return message


schema = make_executable_schema(type_defs, query, mutation, subscription)
