"""The chat schema with Graphene 3 (which needs graphql-core 3.2): a query, a mutation that
broadcasts, and a subscription that receives what is broadcast."""

from collections.abc import AsyncGenerator
from typing import Any

import graphene

import gqlchannels


class Message(graphene.ObjectType):
    """A chat message, as sent to a room (Graphene resolves its fields from a dict too)."""

    room = graphene.String(required=True)
    text = graphene.String(required=True)


class Query(graphene.ObjectType):
    """A query, to see the connection work."""

    hello = graphene.String(required=True, name=graphene.String(default_value="world"))

    def resolve_hello(root: Any, info: graphene.ResolveInfo, name: str) -> str:
        """Greet ``name``."""
        return f"Hello, {name}!"


class Mutation(graphene.ObjectType):
    """Publishing."""

    post_message = graphene.Field(
        Message,
        required=True,
        room=graphene.String(required=True),
        text=graphene.String(required=True),
    )

    async def resolve_post_message(
        root: Any, info: graphene.ResolveInfo, room: str, text: str
    ) -> Any:
        """Publish a message to its room's subscribers (in every process) and return it."""
        message = {"room": room, "text": text}
        await gqlchannels.broadcast(f"room:{room}", message)
        return message


class Subscription(graphene.ObjectType):
    """Receiving: Graphene resolves a subscription field to the event itself."""

    message_added = graphene.Field(Message, required=True, room=graphene.String(required=True))

    async def subscribe_message_added(
        root: Any, info: graphene.ResolveInfo, room: str
    ) -> AsyncGenerator[Any, None]:
        """Yield each message broadcast to ``room`` for as long as the client subscribes."""
        async for message in gqlchannels.listen(info, f"room:{room}"):
            yield message


schema = graphene.Schema(query=Query, mutation=Mutation, subscription=Subscription)
