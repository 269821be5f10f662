"""Publish events to topics and listen to them, on Channels channel-layer groups.

Fan-out goes through one *hub* per process (per running event loop): the hub owns a single
channel-layer channel, joins each topic's group once however many local subscriptions listen
to it (reference-counted), and hands every event to each local subscription's bounded buffer.
One event therefore costs one channel-layer message per process, not one per subscriber, and
events reach each subscription in the order the hub received them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, get_channel_layer
from graphql import GraphQLError

from . import conf

logger = logging.getLogger("gqlchannels.broadcast")

EVENT_TYPE = "gqlchannels.event"
GROUP_PREFIX = "gqlc."
_CLEAN_TOPIC = re.compile(r"[A-Za-z0-9.-]{1,80}")
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]")
#: Backoff bounds, in seconds, while the channel layer's receive keeps failing.
_RETRY_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)


class BroadcastError(RuntimeError):
    """Publishing failed: no channel layer is configured, or the layer did not take the event
    within ``BROADCAST_TIMEOUT`` (Redis down, say)."""


class SubscriptionOverflow(GraphQLError):
    """A subscription fell more than ``SUBSCRIPTION_BUFFER_SIZE`` events behind.

    It ends with this error (an ``error`` message to its client) rather than skipping events
    silently: the client learns it missed some and can subscribe again and refetch.
    """


def group_name(topic: str) -> str:
    """The channel-layer group of ``topic``: readable, valid, and distinct for distinct topics.

    Topics made only of letters, digits, dots and dashes keep their text (``gqlc.news``); any
    other topic is made safe and given a hash suffix (``room:42`` -> ``gqlc.room_42_<hash>``).
    """
    if not isinstance(topic, str) or not topic:
        raise ValueError("A topic is a non-empty string")
    if _CLEAN_TOPIC.fullmatch(topic):
        return GROUP_PREFIX + topic
    digest = hashlib.sha256(topic.encode()).hexdigest()[:16]
    return f"{GROUP_PREFIX}{_UNSAFE.sub('_', topic)[:60]}_{digest}"


def _layer() -> BaseChannelLayer:
    layer = get_channel_layer(conf.get("CHANNEL_LAYER"))
    if layer is None:
        raise BroadcastError(
            f"No channel layer {conf.get('CHANNEL_LAYER')!r}: configure CHANNEL_LAYERS to broadcast"
        )
    return layer


async def broadcast(topic: str, payload: Any) -> None:
    """Publish ``payload`` (plain JSON-like data) to every subscription listening to ``topic``,
    in every process that shares the channel layer."""
    group = group_name(topic)
    message = {"type": EVENT_TYPE, "group": group, "payload": payload}
    layer = _layer()
    timeout = conf.get("BROADCAST_TIMEOUT")
    try:
        async with asyncio.timeout(timeout):
            await layer.group_send(group, message)
    except TimeoutError:
        raise BroadcastError(f"Could not publish to {topic!r} within {timeout}s") from None
    except Exception as exc:
        raise BroadcastError(f"Could not publish to {topic!r}: {exc}") from exc


def broadcast_sync(topic: str, payload: Any) -> None:
    """``broadcast`` for synchronous code: views, signal handlers, threads, management commands.

    When this process serves WebSockets, the event is published on the server's event loop
    (the in-memory layer is not thread-safe); elsewhere it runs on a loop of its own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("broadcast_sync() was called from async code: use 'await broadcast()'")
    loop = _serving_loop()
    if loop is None:
        async_to_sync(broadcast)(topic, payload)
    else:
        asyncio.run_coroutine_threadsafe(broadcast(topic, payload), loop).result()


class Listener:
    """One subscription's bounded buffer of events between the hub and its resolver."""

    def __init__(self, groups: tuple[str, ...], size: int):
        self.groups = groups
        self.size = size
        self.overflowed = False
        self._events: deque[Any] = deque()
        self._ready = asyncio.Event()

    def put(self, payload: Any) -> None:
        """Buffer one event (never blocks: the hub feeds every listener in turn). Past
        ``size`` waiting events the listener overflows and takes no more."""
        if self.overflowed:
            return
        if len(self._events) >= self.size:
            self.overflowed = True
            self._events.clear()
            logger.warning("A subscription fell %d events behind and was ended", self.size)
        else:
            self._events.append(payload)
        self._ready.set()

    async def get(self) -> Any:
        """The next event, waiting for one; raise SubscriptionOverflow once overflowed."""
        while not self._events:
            if self.overflowed:
                raise SubscriptionOverflow(
                    f"Subscription ended: it fell more than {self.size} events behind"
                )
            self._ready.clear()
            await self._ready.wait()
        return self._events.popleft()


class Hub:
    """The fan-out point of one process: one layer channel, reference-counted group membership.

    While anything listens, two tasks run: one receives events and hands them to listeners,
    the other re-joins every group periodically (channels-redis forgets members after
    ``group_expiry``, and everything after a restart without persistence) and, after a layer
    fault, retries until the layer takes the memberships again.
    """

    def __init__(self, layer: BaseChannelLayer):
        self.layer = layer
        self.channel_name: str | None = None
        self._listeners: dict[str, set[Listener]] = {}
        self._membership = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._rejoin_now = asyncio.Event()

    def listener_count(self) -> int:
        """How many subscriptions in this process listen to at least one topic."""
        return len({listener for group in self._listeners.values() for listener in group})

    def groups(self) -> list[str]:
        """The groups this process is a member of."""
        return list(self._listeners)

    async def add(self, groups: tuple[str, ...], size: int) -> Listener:
        """Register a listener on ``groups``, joining each group this process is not yet in."""
        listener = Listener(groups, size)
        async with self._membership:
            if self.channel_name is None:
                self.channel_name = await self.layer.new_channel(prefix="gqlchannels.hub.")
            if not self._tasks:
                loop = asyncio.get_running_loop()
                self._tasks = [
                    loop.create_task(self._receive_events()),
                    loop.create_task(self._maintain_membership()),
                ]
            try:
                for group in groups:
                    if group not in self._listeners:
                        await self.layer.group_add(group, self.channel_name)
                        self._listeners[group] = set()
                    self._listeners[group].add(listener)
            except BaseException:
                await self._remove_locked(listener)
                raise
        return listener

    async def remove(self, listener: Listener) -> None:
        """Unregister ``listener``; leave each group it was the last local listener of."""
        async with self._membership:
            await self._remove_locked(listener)

    async def _remove_locked(self, listener: Listener) -> None:
        for group in listener.groups:
            members = self._listeners.get(group)
            if members is None or listener not in members:
                continue
            members.discard(listener)
            if not members:
                del self._listeners[group]
                await self._leave(group)
        if not self._listeners:
            for task in self._tasks:
                task.cancel()
            self._tasks = []

    async def _leave(self, group: str) -> None:
        try:
            await self.layer.group_discard(group, self.channel_name)
        except Exception as exc:  # the membership expires on its own; nothing else to do
            logger.warning("Could not leave group %s: %s", group, exc)

    async def _receive_events(self) -> None:
        failures = 0
        while True:
            try:
                message = await self.layer.receive(self.channel_name)
            except Exception as exc:
                if failures == 0:
                    logger.warning("Channel layer receive failed (%r); retrying", exc)
                    self._rejoin_now.set()
                failures += 1
                await asyncio.sleep(_retry_delay(failures))
                continue
            if failures:
                logger.warning("Channel layer receive recovered after %d failure(s)", failures)
                failures = 0
            self._dispatch(message)

    async def _maintain_membership(self) -> None:
        interval = min(
            conf.get("GROUP_REJOIN_INTERVAL"), getattr(self.layer, "group_expiry", 86400) / 3
        )
        failures = 0
        while True:
            wait = interval if failures == 0 else _retry_delay(failures)
            try:
                async with asyncio.timeout(wait):
                    await self._rejoin_now.wait()
            except TimeoutError:
                pass
            self._rejoin_now.clear()
            error = await self._rejoin_all()
            if error is None:
                if failures:
                    logger.warning("Re-joined every group after %d failed attempt(s)", failures)
                failures = 0
            else:
                if failures == 0:
                    logger.warning("Could not re-join groups (%r); retrying", error)
                failures += 1

    async def _rejoin_all(self) -> Exception | None:
        """Join every group again (refreshing its expiry); return the error if the layer failed."""
        async with self._membership:
            try:
                for group in list(self._listeners):
                    await self.layer.group_add(group, self.channel_name)
            except Exception as exc:
                return exc
        return None

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") != EVENT_TYPE:
            return
        for listener in self._listeners.get(message.get("group"), ()):  # type: ignore[arg-type]
            listener.put(message.get("payload"))


def _retry_delay(failures: int) -> float:
    return _RETRY_DELAYS[min(failures, len(_RETRY_DELAYS)) - 1]


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()
_hubs_lock = threading.Lock()


def get_hub() -> Hub:
    """The hub of the running event loop (each loop, e.g. each test or forked worker, has one)."""
    loop = asyncio.get_running_loop()
    with _hubs_lock:
        hub = _hubs.get(loop)
        if hub is None:
            hub = _hubs[loop] = Hub(_layer())
    return hub


def _serving_loop() -> asyncio.AbstractEventLoop | None:
    with _hubs_lock:
        loops = [loop for loop in _hubs if loop.is_running() and not loop.is_closed()]
    return loops[-1] if loops else None


async def listen(info: Any, *topics: str, buffer_size: int | None = None) -> AsyncIterator[Any]:
    """Yield every event published to any of ``topics``, for a subscription resolver.

    ``info`` is the resolver's ``GraphQLResolveInfo``; when its context is gqlchannels', the
    topics are recorded on it (the admin and the audit show them). Leaving the loop, by the
    client's ``complete``/``stop`` or by a disconnect, leaves the groups.
    """
    if not topics:
        raise ValueError("listen() needs at least one topic")
    groups = tuple(dict.fromkeys(group_name(topic) for topic in topics))
    record = getattr(getattr(info, "context", None), "topics", None)
    if isinstance(record, set):
        record.update(topics)
    hub = get_hub()
    listener = await hub.add(groups, buffer_size or conf.get("SUBSCRIPTION_BUFFER_SIZE"))
    try:
        while True:
            yield await listener.get()
    finally:
        await hub.remove(listener)
