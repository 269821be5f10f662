"""The chat's GraphQL schema, hand-built with graphql-core types.

Queries read rooms and recent messages, ``postMessage`` stores a message, and
``messageAdded`` streams the messages stored in a room: the chat app publishes each stored
message's change event to the topic ``room:<name>`` once its transaction commits
(``gqlchannels.publish_changes``, registered in ``ChatConfig.ready``). Events travel as plain
dicts (the channel layer only carries plain data), so the ``Message`` type resolves its fields
from a model instance or from such a dict alike.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from channels.db import database_sync_to_async
from graphql import (
    GraphQLArgument,
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
)

import gqlchannels
from gqlchannels.change_delivery import PublishFailure

from .models import MESSAGE_MAX_LENGTH, ROOM_NAME_MAX_LENGTH, ROOM_NAME_PATTERN, Message, Room

ROOM_NAME = re.compile(ROOM_NAME_PATTERN)
#: Messages one ``messages`` query returns unless it asks for another number, and the most.
DEFAULT_LAST = 50
MAX_LAST = 200
#: Highest start of ``countdown`` (it runs one second per step).
MAX_COUNTDOWN = 60


# -- input checks ---------------------------------------------------------------------------


def room_topic(room: str) -> str:
    """The broadcast topic of a room: what ``postMessage`` publishes to and
    ``messageAdded`` listens to."""
    return f"room:{room}"


def check_room(name: str) -> str:
    """``name`` if it is a valid room name, else a GraphQLError the client can read."""
    if len(name) > ROOM_NAME_MAX_LENGTH or not ROOM_NAME.match(name):
        raise GraphQLError(
            f"A room name is 1 to {ROOM_NAME_MAX_LENGTH} letters, digits, '_' or '-'."
        )
    return name


def check_text(text: str) -> str:
    """``text`` without surrounding blanks, if there is some and it is not too long."""
    text = text.strip()
    if not text:
        raise GraphQLError("A message cannot be empty.")
    if len(text) > MESSAGE_MAX_LENGTH:
        raise GraphQLError(f"A message is at most {MESSAGE_MAX_LENGTH} characters.")
    return text


def _authenticated_user(info: Any) -> Any | None:
    user = getattr(info.context, "user", None)
    return user if user is not None and user.is_authenticated else None


# -- the Message type, from a model instance or from an event dict ---------------------------

#: How each ``Message`` field is read from a model instance (whose room and author are
#: loaded). An event dict carries the same keys with these values already computed.
MESSAGE_FIELDS: dict[str, Callable[[Message], Any]] = {
    "id": lambda message: message.pk,
    "room": lambda message: message.room.name,
    "author": lambda message: message.author.get_username() if message.author else None,
    "text": lambda message: message.text,
    "createdAt": lambda message: message.created_at.isoformat(),
}


def message_payload(message: Message) -> dict[str, Any]:
    """``message`` as the plain dict ``messageAdded`` subscribers receive: the ``data`` of its
    change events."""
    return {name: read(message) for name, read in MESSAGE_FIELDS.items()}


def message_topic(message: Message) -> str:
    """The topic a stored message's changes are published to: its room's."""
    return room_topic(message.room.name)


def _is_message_change(event: Any) -> bool:
    """Whether ``event`` is a message's change event (else: a message dict published by hand,
    as scripts and the benchmarks do)."""
    return isinstance(event, Mapping) and event.get("model") == Message._meta.label_lower


def _message_field(name: str) -> Callable[..., Any]:
    read = MESSAGE_FIELDS[name]

    # Inline: every instance reaching here has its room and author loaded, so no field
    # touches the database, and a thread hop per field and event would cost more than it does.
    @gqlchannels.inline
    def resolve(source: Message | Mapping[str, Any], info: Any) -> Any:
        if isinstance(source, Mapping):
            return source.get(name)
        return read(source)

    return resolve


message_type = GraphQLObjectType(
    "Message",
    {
        "id": GraphQLField(GraphQLNonNull(GraphQLID), resolve=_message_field("id")),
        "room": GraphQLField(
            GraphQLNonNull(GraphQLString),
            description="The room's name.",
            resolve=_message_field("room"),
        ),
        "author": GraphQLField(
            GraphQLString,
            description="The author's username; null for anonymous messages.",
            resolve=_message_field("author"),
        ),
        "text": GraphQLField(GraphQLNonNull(GraphQLString), resolve=_message_field("text")),
        "createdAt": GraphQLField(
            GraphQLNonNull(GraphQLString),
            description="ISO 8601 timestamp.",
            resolve=_message_field("createdAt"),
        ),
    },
    description="One message posted in a room.",
)

room_type = GraphQLObjectType(
    "Room",
    {
        "name": GraphQLField(GraphQLNonNull(GraphQLString)),
        "createdAt": GraphQLField(
            GraphQLNonNull(GraphQLString),
            description="ISO 8601 timestamp.",
            resolve=gqlchannels.inline(lambda room, info: room.created_at.isoformat()),
        ),
    },
    description="A chat room; rooms are created by their first message.",
)


# -- queries (plain sync resolvers: gqlchannels runs them in Django's database thread) --------


def resolve_rooms(root: Any, info: Any) -> list[Room]:
    """Every room, by name."""
    return list(Room.objects.all())


def resolve_messages(root: Any, info: Any, room: str, last: int | None) -> list[Message]:
    """The ``last`` most recent messages of ``room``, oldest first (none for a new room)."""
    check_room(room)
    last = DEFAULT_LAST if last is None else last
    if not 0 <= last <= MAX_LAST:
        raise GraphQLError(f"'last' must be between 0 and {MAX_LAST}.")
    recent = (
        Message.objects.filter(room__name=room)
        .select_related("room", "author")
        .order_by("-created_at", "-id")[:last]
    )
    return list(reversed(recent))


# -- mutation -----------------------------------------------------------------------------


def _store_message(
    room: str, text: str, author: Any | None
) -> tuple[Message, list[PublishFailure]]:
    with gqlchannels.publish_failures() as failures:
        room_obj, _ = Room.objects.get_or_create(name=room)
        message = Message.objects.create(room=room_obj, author=author, text=text)
    return message, failures


async def resolve_post_message(root: Any, info: Any, room: str, text: str) -> Message:
    """Store a message (creating the room on first use); its commit publishes it to the room.

    When the channel layer cannot take the event (Redis down), the client gets a GraphQL error
    within ``BROADCAST_TIMEOUT`` saying the message is stored but was not delivered live, so
    it can tell its user rather than wait on a hang (gqlchannels logs the failure).
    """
    room = check_room(room)
    text = check_text(text)
    store = database_sync_to_async(_store_message)
    message, failures = await store(room, text, _authenticated_user(info))
    if failures:
        raise GraphQLError(
            "The message was saved but could not be delivered live; subscribers will see it "
            "in the room's history."
        )
    return message


# -- subscriptions --------------------------------------------------------------------------


async def subscribe_message_added(root: Any, info: Any, room: str) -> AsyncIterator[Any]:
    """Every message stored in ``room`` from now on: its ``created`` change event (edits and
    deletions are published too, and skipped here), or a message dict published by hand.

    Shared: no ``Message`` field reads the context, so each event is executed once for every
    subscriber that asked for the same fields. The event is yielded as ``listen`` gave it
    (which sharing needs); ``_message_added`` takes the message out of it."""
    check_room(room)
    async for event in gqlchannels.listen(info, room_topic(room), shared=True):
        if not _is_message_change(event) or event["type"] == "created":
            yield event


def _message_added(event: Any, info: Any, **args: Any) -> Any:
    """The message of a change event, or the message dict published by hand."""
    return event["data"] if _is_message_change(event) else event


async def subscribe_message_feed(
    root: Any, info: Any, room: str, last: int | None
) -> AsyncIterator[Any]:
    """The ``last`` most recent messages of ``room`` first, then each new one: a gap-free
    start (``listen(initial=...)`` reads the history only once the room's group is joined, so
    a message posted meanwhile is in the history or comes after it, never lost)."""

    def history() -> list[Any]:
        return resolve_messages(root, info, room, last)  # sync: in the database thread

    async for value in gqlchannels.listen(info, room_topic(room), initial=history):
        if isinstance(value, list):
            yield value
        elif not _is_message_change(value) or value["type"] == "created":
            yield [value]


def _message_feed(values: list[Any], info: Any, **args: Any) -> list[Any]:
    """Messages (the history's ``Message`` objects) or new messages' events, as messages."""
    return [
        value if isinstance(value, Message) else _message_added(value, info) for value in values
    ]


async def subscribe_countdown(root: Any, info: Any, start: int) -> AsyncIterator[int]:
    """``start``, ``start - 1`` ... ``0``, one a second: a subscription that ends by itself."""
    if not 0 <= start <= MAX_COUNTDOWN:
        raise GraphQLError(f"'from' must be between 0 and {MAX_COUNTDOWN}.")
    for number in range(start, -1, -1):
        yield number
        if number:
            await asyncio.sleep(1)


def _event(event: Any, info: Any, **args: Any) -> Any:
    """A subscription root field's value is the event itself."""
    return event


def _room_argument() -> GraphQLArgument:
    return GraphQLArgument(GraphQLNonNull(GraphQLString))


query_type = GraphQLObjectType(
    "Query",
    {
        "rooms": GraphQLField(
            GraphQLNonNull(GraphQLList(GraphQLNonNull(room_type))), resolve=resolve_rooms
        ),
        "messages": GraphQLField(
            GraphQLNonNull(GraphQLList(GraphQLNonNull(message_type))),
            args={
                "room": _room_argument(),
                "last": GraphQLArgument(GraphQLInt, default_value=DEFAULT_LAST),
            },
            resolve=resolve_messages,
        ),
    },
)

mutation_type = GraphQLObjectType(
    "Mutation",
    {
        "postMessage": GraphQLField(
            GraphQLNonNull(message_type),
            args={
                "room": _room_argument(),
                "text": GraphQLArgument(GraphQLNonNull(GraphQLString)),
            },
            resolve=resolve_post_message,
        )
    },
)

subscription_type = GraphQLObjectType(
    "Subscription",
    {
        "messageAdded": GraphQLField(
            GraphQLNonNull(message_type),
            args={"room": _room_argument()},
            subscribe=subscribe_message_added,
            resolve=_message_added,
        ),
        "messageFeed": GraphQLField(
            GraphQLNonNull(GraphQLList(GraphQLNonNull(message_type))),
            args={
                "room": _room_argument(),
                "last": GraphQLArgument(GraphQLInt, default_value=DEFAULT_LAST),
            },
            subscribe=subscribe_message_feed,
            resolve=_message_feed,
        ),
        "countdown": GraphQLField(
            GraphQLNonNull(GraphQLInt),
            # ``from`` is a Python keyword: the resolver receives it as ``start``.
            args={"from": GraphQLArgument(GraphQLNonNull(GraphQLInt), out_name="start")},
            subscribe=subscribe_countdown,
            resolve=_event,
        ),
    },
)

schema = GraphQLSchema(query=query_type, mutation=mutation_type, subscription=subscription_type)
