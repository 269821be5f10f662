"""The chat schema with Strawberry: a query, a mutation that broadcasts, and a subscription
that receives what is broadcast."""

from collections.abc import AsyncGenerator

import strawberry

import gqlchannels


@strawberry.type
class Message:
    """A chat message, as sent to a room."""

    room: str
    text: str


@strawberry.type
class Query:
    """A query, to see the connection work."""

    @strawberry.field
    def hello(self, name: str = "world") -> str:
        """Greet ``name``."""
        return f"Hello, {name}!"


@strawberry.type
class Mutation:
    """Publishing: broadcasts carry plain data (dicts), never Strawberry objects."""

    @strawberry.mutation
    async def post_message(self, room: str, text: str) -> Message:
        """Publish a message to its room's subscribers (in every process) and return it."""
        await gqlchannels.broadcast(f"room:{room}", {"room": room, "text": text})
        return Message(room=room, text=text)


@strawberry.type
class Subscription:
    """Receiving: each broadcast dict is turned back into the type the field declares."""

    @strawberry.subscription
    async def message_added(
        self, info: strawberry.Info, room: str
    ) -> AsyncGenerator[Message, None]:
        """Yield each message broadcast to ``room`` for as long as the client subscribes."""
        async for event in gqlchannels.listen(info, f"room:{room}"):
            yield Message(**event)


schema = strawberry.Schema(query=Query, mutation=Mutation, subscription=Subscription)
