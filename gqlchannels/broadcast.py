"""Publish events to topics and listen to them, on Channels channel-layer groups.

Fan-out goes through the per-process hub (``gqlchannels.hub``): one channel-layer message
per process per event, not one per subscriber, and events reach each subscription in the
order the hub received them.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
import time
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any

from asgiref.sync import sync_to_async

from . import conf
from .exceptions import BroadcastError, LayerMissing
from .hub import get_hub
from .layer import EVENT_TYPE, channel_layer, run_from_sync
from .operation_scope import scope_of

GROUP_PREFIX = "gqlc."
_CLEAN_TOPIC = re.compile(r"[A-Za-z0-9.-]{1,80}")
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")
#: Hex digits of the topic's SHA-256 in an unsafe topic's group name: 128 bits, so no one
#: can pick two topics that share a group (64 bits fell to a birthday search in minutes).
DIGEST_HEX_DIGITS = 32
#: Characters of an unsafe topic's readable part: with the prefix, the underscore and the
#: digest, the name stays under the 100 characters channel layers allow.
_READABLE_PART = 60


def group_name(topic: str) -> str:
    """The channel-layer group of ``topic``: readable, valid, and distinct for distinct topics.

    Topics made only of letters, digits, dots and dashes keep their text (``gqlc.news``); any
    other topic is made safe and given a suffix of 128 bits of its SHA-256
    (``room:42`` -> ``gqlc.room_42_<32 hex digits>``), so distinct topics never share a group.
    """
    if not isinstance(topic, str) or not topic:
        raise ValueError("A topic is a non-empty string")
    if _CLEAN_TOPIC.fullmatch(topic):
        return GROUP_PREFIX + topic
    digest = hashlib.sha256(topic.encode()).hexdigest()[:DIGEST_HEX_DIGITS]
    return f"{GROUP_PREFIX}{_UNSAFE.sub('_', topic)[:_READABLE_PART]}_{digest}"


async def broadcast(topic: str, payload: Any) -> None:
    """Publish ``payload`` (plain JSON-like data) to every subscription listening to ``topic``,
    in every process that shares the channel layer.

    The message carries the time of publishing next to the payload (``sent_at``), from which
    each delivery's lag is measured (``gqlchannels_delivery_lag_seconds``); the payload that
    subscriptions receive is untouched."""
    group = group_name(topic)
    message = {"type": EVENT_TYPE, "group": group, "payload": payload, "sent_at": time.time()}
    try:
        layer = channel_layer()
    except LayerMissing as exc:
        raise BroadcastError(str(exc)) from None
    timeout = conf.get("BROADCAST_TIMEOUT")
    try:
        async with asyncio.timeout(timeout):
            # The hub's fault policy: a stale pooled connection is retried once at once.
            await get_hub().faults.call(layer, "group_send", group, message)
    except TimeoutError:
        raise BroadcastError(f"Could not publish to {topic!r} within {timeout}s") from None
    except Exception as exc:
        raise BroadcastError(f"Could not publish to {topic!r}: {exc}") from exc


def broadcast_sync(topic: str, payload: Any) -> None:
    """``broadcast`` for synchronous code: views, signal handlers, threads, management commands.

    When this process serves WebSockets, the event is published on the server's event loop
    (the in-memory layer is not thread-safe); elsewhere it runs on a loop of its own.
    """
    run_from_sync(broadcast(topic, payload), "broadcast_sync", "broadcast")


async def listen(
    info: Any,
    *topics: str,
    shared: bool | Callable[[Any], Hashable] | None = None,
    filter: Callable[[Any], bool] | None = None,
    buffer_size: int | None = None,
    initial: Callable[[], Any] | None = None,
) -> AsyncIterator[Any]:
    """Yield every event published to any of ``topics``, for a subscription resolver.

    ``info`` is the resolver's ``GraphQLResolveInfo``: through it ``listen`` finds the
    operation's scope (``gqlchannels.operation_scope``), where the topics are recorded (the
    admin and the audit show them), whatever object the context is. Leaving the loop, by the
    client's ``complete``/``stop`` or by a disconnect, leaves the groups.

    ``shared=True`` promises that the subscription's result depends only on the event, the
    document, the operation name and the variables, never on the context (the user, the
    connection): each event is then executed and encoded once for all the subscriptions in
    this process that sent the same operation, instead of once per subscriber. A function
    of the context instead (``shared=lambda context: context.user.is_staff``) promises the
    result depends on that key too: subscriptions with equal keys share. ``shared=None`` (the
    default) shares when every resolver the selection can call is pure
    (``gqlchannels.purity``); ``shared=False`` never shares. The event must reach graphql-core
    as the object ``listen`` yielded (yielding it from a wrapping generator is fine; a
    transformed event is executed per subscriber).

    ``filter(event)`` runs on each event before anything else: an event it refuses is
    skipped, costing this subscription no execution and leaving the others' sharing intact.

    ``initial`` (a function, sync or async) gives the subscription its first value, for
    example the current state from the database, shaped like an event. It is called only
    once this process is in every topic's group, so an event published at any moment after
    the subscribe is in that value or delivered after it, never lost (it may be both: an
    event published while ``initial`` runs). A sync ``initial`` runs in Django's database
    thread, like a sync resolver.
    """
    if not topics:
        raise ValueError("listen() needs at least one topic")
    groups = tuple(dict.fromkeys(group_name(topic) for topic in topics))
    scope = scope_of(info)
    if scope is not None:
        scope.listens_to(topics)
    hub = get_hub()
    listener = await hub.add(groups, buffer_size or conf.get("SUBSCRIPTION_BUFFER_SIZE"))
    if scope is not None:
        scope.event_source = listener
    key = sharing_key(info, shared) if scope is not None else None
    sharing = scope if key is not None else None
    if sharing is not None:
        sharing.share(listener, key)
    try:
        if initial is not None:
            yield await initial_value(initial)
        while True:
            event = await listener.get()
            if filter is None or filter(event):
                yield event
    finally:
        if scope is not None and scope.event_source is listener:
            scope.event_source = None
        if sharing is not None and sharing.shared_source is listener:
            sharing.share(None)
        await hub.remove(listener)


async def initial_value(initial: Callable[[], Any]) -> Any:
    """What ``initial`` gives: awaited when it is async, else run in the database thread
    (it usually reads the ORM, which must not run on the event loop)."""
    if inspect.iscoroutinefunction(initial):
        return await initial()
    value = await sync_to_async(initial)()
    return await value if inspect.isawaitable(value) else value


def sharing_key(info: Any, shared: bool | Callable[[Any], Hashable] | None) -> Hashable | None:
    """What a subscription shares its results under, besides its operation (None: it does
    not share): ``()`` for ``shared=True`` and for a pure selection, the key of its context
    for a key function."""
    if shared is True:
        return ()
    if shared is None:
        from .purity import pure_subscription  # graphql-core's types: only once listening

        return () if pure_subscription(info) else None
    if shared is False:
        return None
    return ("key", shared(getattr(info, "context", None)))
