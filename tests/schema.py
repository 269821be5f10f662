"""A hand-built graphql-core schema that exercises every path the consumer has.

Subscriptions report through ``probe`` when they start and when their ``finally`` runs, so
tests can wait on those events (with timeouts) instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import defaultdict
from typing import Any

from django.contrib.auth import get_user_model
from graphql import (
    GraphQLArgument,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
)

import gqlchannels


class Probe:
    """Events a test can await: a subscription started, a subscription's ``finally`` ran."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget every event, so that a test sees only its own subscriptions'."""
        self.started: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.finalized: defaultdict[str, asyncio.Event] = defaultdict(asyncio.Event)

    def running(self) -> list[str]:
        """Keys that started and whose ``finally`` has not run yet."""
        return [key for key, event in self.started.items() if not self.finalized[key].is_set()]


probe = Probe()


async def _count(root: Any, info: Any, to: int, key: str = "count", pause: float = 0.0) -> Any:
    probe.started[key].set()
    try:
        for number in range(1, to + 1):
            yield number
            if pause:
                await asyncio.sleep(pause)
    finally:
        probe.finalized[key].set()


async def _wait_forever(root: Any, info: Any, key: str) -> Any:
    probe.started[key].set()
    try:
        await asyncio.Event().wait()
        yield "never"
    finally:
        probe.finalized[key].set()


async def _events(root: Any, info: Any, topic: str, key: str = "events") -> Any:
    probe.started[key].set()
    try:
        async for payload in gqlchannels.listen(info, topic):
            yield payload
    finally:
        probe.finalized[key].set()


async def _fails_after_one(root: Any, info: Any) -> Any:
    yield 1
    raise ValueError("source exploded")


async def _slow(root: Any, info: Any, seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "slow done"


def _boom(root: Any, info: Any) -> str:
    raise ValueError("secret internals")


def _refused(root: Any, info: Any) -> str:
    raise GraphQLError("Not allowed")


def _user_count(root: Any, info: Any) -> int:
    return get_user_model().objects.count()


def _context_user(root: Any, info: Any) -> str:
    user = info.context.user
    return "anonymous" if user is None or not user.is_authenticated else user.get_username()


def _identity(event: Any, info: Any, **args: Any) -> Any:
    return event


def _nested(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


class Hops:
    """Counts the database-thread hops that sync resolvers ran in.

    Each hop runs its work in a fresh copy of the caller's context, so a context variable set
    by the first resolver of a hop is seen by the others of the same hop and by no other.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Count from zero, with a context variable no hop has set yet."""
        self.count = 0
        self._seen: contextvars.ContextVar[bool] = contextvars.ContextVar("hop", default=False)

    def resolve(self, root: Any, info: Any) -> str:
        if not self._seen.get():
            self._seen.set(True)
            self.count += 1
        return "hopped"


hops = Hops()


def _sync_failure(root: Any, info: Any) -> str:
    raise GraphQLError("this field failed")


async def _async_object(root: Any, info: Any) -> dict[str, Any]:
    return {}


#: An object type whose fields are plain sync resolvers (each one may need the ORM).
sync_object: GraphQLObjectType = GraphQLObjectType(
    "SyncObject",
    lambda: {
        "hop": GraphQLField(GraphQLString, resolve=hops.resolve),
        "child": GraphQLField(sync_object, resolve=lambda root, info: {}),
        "fails": GraphQLField(GraphQLString, resolve=_sync_failure),
    },
)


#: A scalar serialised as the resolver returned it, so a resolver can hand the JSON encoder
#: what it refuses (nesting deeper than it encodes, an integer over 64 bits).
raw = GraphQLScalarType("Raw", serialize=lambda value: value)


query = GraphQLObjectType(
    "Query",
    {
        "hello": GraphQLField(
            GraphQLString,
            args={"name": GraphQLArgument(GraphQLString, default_value="world")},
            resolve=lambda root, info, name: f"Hello, {name}!",
        ),
        "boom": GraphQLField(GraphQLString, resolve=_boom),
        "refused": GraphQLField(GraphQLString, resolve=_refused),
        "slow": GraphQLField(
            GraphQLString, args={"seconds": GraphQLArgument(GraphQLFloat)}, resolve=_slow
        ),
        "userCount": GraphQLField(GraphQLInt, resolve=_user_count),
        "nested": GraphQLField(
            raw,
            args={"levels": GraphQLArgument(GraphQLNonNull(GraphQLInt))},
            resolve=lambda root, info, levels: _nested(levels),
        ),
        "hugeInteger": GraphQLField(raw, resolve=lambda root, info: 2**70),
        "hop": GraphQLField(GraphQLString, resolve=hops.resolve),
        "syncObject": GraphQLField(sync_object, resolve=lambda root, info: {}),
        "asyncObject": GraphQLField(sync_object, resolve=_async_object),
        "whoami": GraphQLField(GraphQLString, resolve=_context_user),
        "connectionParam": GraphQLField(
            GraphQLString,
            args={"name": GraphQLArgument(GraphQLNonNull(GraphQLString))},
            resolve=lambda root, info, name: info.context.connection_params.get(name),
        ),
    },
)

mutation = GraphQLObjectType(
    "Mutation",
    {
        "echo": GraphQLField(
            GraphQLString,
            args={"text": GraphQLArgument(GraphQLNonNull(GraphQLString))},
            resolve=lambda root, info, text: text,
        )
    },
)

subscription = GraphQLObjectType(
    "Subscription",
    {
        "count": GraphQLField(
            GraphQLInt,
            args={
                "to": GraphQLArgument(GraphQLNonNull(GraphQLInt)),
                "key": GraphQLArgument(GraphQLString, default_value="count"),
                "pause": GraphQLArgument(GraphQLFloat, default_value=0.0),
            },
            subscribe=_count,
            resolve=_identity,
        ),
        "waitForever": GraphQLField(
            GraphQLString,
            args={"key": GraphQLArgument(GraphQLNonNull(GraphQLString))},
            subscribe=_wait_forever,
            resolve=_identity,
        ),
        "events": GraphQLField(
            GraphQLString,
            args={
                "topic": GraphQLArgument(GraphQLNonNull(GraphQLString)),
                "key": GraphQLArgument(GraphQLString, default_value="events"),
            },
            subscribe=_events,
            resolve=_identity,
        ),
        "failsAfterOne": GraphQLField(GraphQLInt, subscribe=_fails_after_one, resolve=_identity),
        "counted": GraphQLField(
            GraphQLObjectType("Counted", {"n": GraphQLField(GraphQLInt)}),
            args={"to": GraphQLArgument(GraphQLNonNull(GraphQLInt))},
            subscribe=_count,
            resolve=lambda number, info, to: {"n": number},
        ),
    },
)

schema = GraphQLSchema(query=query, mutation=mutation, subscription=subscription)
