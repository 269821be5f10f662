"""``gqlchannels.broadcast``: group names, publishing, and the per-process hub, as a specification.

Each test uses a fresh in-memory channel layer (the ``layer`` fixture), so group membership
can be inspected without seeing other tests' groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import importlib
import itertools
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import BaseChannelLayer, InMemoryChannelLayer, channel_layers
from django.test import override_settings

from gqlchannels.broadcast import broadcast, broadcast_sync, group_name, listen
from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.exceptions import BroadcastError, SubscriptionOverflow
from gqlchannels.hub import Listener, get_hub
from gqlchannels.sharing import SharedResults
from gqlchannels.testing import (
    LEGACY_WS,
    TRANSPORT_WS,
    ConnectionClosed,
    GraphQLWSCommunicator,
    OperationError,
)
from tests.narrowing import aclose
from tests.schema import Probe, schema

TIMEOUT = 5.0
POLL_INTERVAL = 0.01

EVENTS = "subscription($topic: String!, $key: String) { events(topic: $topic, key: $key) }"

application = GraphQLWSConsumer.as_asgi(schema=schema)


class SingleThreadLayer(InMemoryChannelLayer):
    """The in-memory layer, refusing calls from any thread but the test's event loop's.

    The in-memory layer's queues are asyncio objects and not thread-safe: a publisher in
    another thread must hand its event to the serving loop (what ``broadcast_sync`` promises),
    not touch the layer itself. Such a call would only corrupt the loop now and then, so it is
    refused here, where a test sees it at once.
    """

    def __init__(self, **config: Any):
        super().__init__(**config)
        self.owner = threading.get_ident()

    def _require_owner(self, operation: str) -> None:
        if threading.get_ident() != self.owner:
            raise RuntimeError(
                f"{operation}() called from thread {threading.current_thread().name}, "
                "not from the event loop serving the subscriptions"
            )

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        self._require_owner("send")
        await super().send(channel, message)

    async def receive(self, channel: str) -> dict[str, Any]:
        self._require_owner("receive")
        return await super().receive(channel)

    async def group_add(self, group: str, channel: str) -> None:
        self._require_owner("group_add")
        await super().group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self._require_owner("group_discard")
        await super().group_discard(group, channel)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        self._require_owner("group_send")
        await super().group_send(group, message)


@pytest.fixture(autouse=True)
def layer() -> Iterator[InMemoryChannelLayer]:
    """A fresh in-memory layer as the default one, so group membership starts empty.

    Created in the thread that runs the test's event loop (pytest-asyncio runs it in the
    main thread, as it runs sync fixtures)."""
    fresh = SingleThreadLayer(capacity=1000)
    previous = channel_layers.set(DEFAULT_CHANNEL_LAYER, fresh)
    yield fresh
    if previous is None:
        channel_layers.backends.pop(DEFAULT_CHANNEL_LAYER, None)
    else:
        channel_layers.set(DEFAULT_CHANNEL_LAYER, previous)


def client(protocol: str = TRANSPORT_WS) -> GraphQLWSCommunicator:
    return GraphQLWSCommunicator(application, protocol=protocol, timeout=TIMEOUT)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` every 10 ms for up to 5 s; fail the test if it never holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"Timed out waiting until {what}")
        await asyncio.sleep(POLL_INTERVAL)


async def listening(*topics: str, listeners: int | None = None) -> None:
    """Wait until this process's hub is in the group of every topic (and, if given, has
    exactly ``listeners`` subscriptions), so an event published next is not missed."""
    groups = {group_name(topic) for topic in topics}
    await until(
        lambda: (
            groups <= set(get_hub().groups())
            and (listeners is None or get_hub().listener_count() == listeners)
        ),
        f"the hub listens to {sorted(topics)}",
    )


def start(subscription: AsyncIterator[dict[str, Any]]) -> asyncio.Future[dict[str, Any]]:
    """Send the subscription and wait for its first result in the background."""
    return asyncio.ensure_future(anext(subscription))


def event(result: dict[str, Any]) -> Any:
    return result["data"]["events"]


async def next_event(subscription: AsyncIterator[dict[str, Any]]) -> Any:
    return event(await anext(subscription))


async def cancelled(reading: asyncio.Future[Any]) -> None:
    """Cancel a pending read; the subscription's iterator then sends complete / stop."""
    reading.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reading


async def settled(future: asyncio.Future[Any]) -> Any:
    return await asyncio.wait_for(future, TIMEOUT)


def members(layer: InMemoryChannelLayer, topic: str) -> list[str]:
    """The channels in ``topic``'s group, as the channel layer itself records them."""
    return list(layer.groups.get(group_name(topic), {}))


# -- group names ------------------------------------------------------------------------------

TOPICS = [
    "news",
    "room:42",
    "room/1",
    "user@example.com",
    "with space",
    "ünïcödé-topic",
    "emoji 🎉",
    "line\nbreak",
    "under_score",
    "a" * 80,
    "a" * 81,
    "x:" * 500,
    "Z" * 5000,
]


@pytest.mark.parametrize("topic", TOPICS)
def test_group_name_is_valid_for_channel_layers(topic: str) -> None:
    assert BaseChannelLayer().require_valid_group_name(group_name(topic))


@pytest.mark.parametrize("topic", ["news", "room-42", "chat.room.7", "Orders-2026"])
def test_group_name_keeps_a_clean_topic_readable(topic: str) -> None:
    assert group_name(topic).endswith(topic)


def test_group_name_keeps_the_safe_part_of_an_unsafe_topic_readable() -> None:
    assert "room_42" in group_name("room:42")


def test_group_name_is_distinct_for_topics_differing_only_in_unsafe_characters() -> None:
    topics = ["room:1", "room_1", "room/1", "room 1", "room1", "room-1", "room.1"]
    assert len({group_name(topic) for topic in topics}) == len(topics)


@pytest.mark.parametrize("topic", ["a" * 99, "b" * 100, "c:" * 200, "d" * 10_000])
def test_group_name_of_a_very_long_topic_is_under_100_characters(topic: str) -> None:
    assert len(group_name(topic)) < 100


def test_group_name_is_distinct_for_long_topics_with_a_common_prefix() -> None:
    prefix = "p" * 300
    assert group_name(prefix + "1") != group_name(prefix + "2")


@pytest.mark.parametrize("topic", ["room:42", "x:" * 500, "emoji 🎉"])
def test_group_name_of_an_unsafe_topic_carries_128_bits_of_its_digest(topic: str) -> None:
    # 64 bits let a client pick two topics sharing a group in minutes (a birthday search).
    suffix = group_name(topic).rsplit("_", 1)[1]
    assert len(suffix) * 4 >= 128
    assert suffix == hashlib.sha256(topic.encode()).hexdigest()[: len(suffix)]


def test_unsafe_topics_whose_digests_agree_on_64_bits_get_different_groups(monkeypatch) -> None:
    class FirstBitsCollide:
        """SHA-256 with its first 64 bits made equal for every input: a found collision."""

        def __init__(self, data: bytes):
            self.real = hashlib.sha256(data).hexdigest()

        def hexdigest(self) -> str:
            return "0" * 16 + self.real[16:]

    # ``gqlchannels.broadcast`` as an attribute is the function; the module is in sys.modules.
    module = importlib.import_module("gqlchannels.broadcast")
    monkeypatch.setattr(module, "hashlib", SimpleNamespace(sha256=FirstBitsCollide))
    # Both topics have the readable part "room_1", so only the digest tells them apart.
    assert group_name("room:1") != group_name("room/1")


def test_group_name_is_the_same_for_the_same_topic() -> None:
    # Every process must derive the same group from a topic, or events would not cross.
    assert group_name("room:42") == group_name("room:" + "42")


def test_group_name_rejects_an_empty_topic() -> None:
    with pytest.raises(ValueError):
        group_name("")


# -- publishing and receiving -----------------------------------------------------------------


async def test_a_subscription_receives_broadcast_events_in_order() -> None:
    async with client() as communicator:
        subscription = communicator.subscribe(EVENTS, {"topic": "ordered"})
        first = start(subscription)
        await listening("ordered")
        for number in range(20):
            await broadcast("ordered", f"event {number}")
        received = [event(await settled(first))]
        received += [await next_event(subscription) for _ in range(19)]
    assert received == [f"event {number}" for number in range(20)]


async def test_a_subscription_does_not_receive_events_of_other_topics() -> None:
    async with client() as communicator:
        subscription = communicator.subscribe(EVENTS, {"topic": "mine"})
        first = start(subscription)
        await listening("mine")
        await broadcast("room:mine", "not for me")
        await broadcast("mine", "for me")
        assert event(await settled(first)) == "for me"


async def test_broadcast_to_a_topic_nobody_listens_to_does_nothing(
    layer: InMemoryChannelLayer,
) -> None:
    await broadcast("nobody-listens", "lost")
    assert layer.groups == {}
    assert layer.channels == {}


async def test_a_listener_of_two_topics_receives_events_of_both() -> None:
    stream = listen(None, "alpha", "room:beta")
    try:
        first = start(stream)
        await listening("alpha", "room:beta")
        await broadcast("alpha", 1)
        await broadcast("room:beta", 2)
        assert await settled(first) == 1
        assert await settled(start(stream)) == 2
    finally:
        await aclose(stream)


async def test_a_listener_given_one_topic_twice_receives_each_event_once() -> None:
    stream = listen(None, "twice", "twice")
    try:
        first = start(stream)
        await listening("twice")
        await broadcast("twice", 1)
        await broadcast("twice", 2)
        assert await settled(first) == 1
        assert await settled(start(stream)) == 2
    finally:
        await aclose(stream)


async def test_leaving_a_listen_loop_leaves_its_groups(layer: InMemoryChannelLayer) -> None:
    stream = listen(None, "alpha", "room:beta")
    first = start(stream)
    await listening("alpha", "room:beta")
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    assert members(layer, "alpha") == members(layer, "room:beta") == []
    assert get_hub().groups() == []


async def test_listen_without_topics_is_refused() -> None:
    with pytest.raises(ValueError):
        await anext(listen(None))


# -- one group membership per process ---------------------------------------------------------


async def test_two_subscriptions_on_one_connection_share_one_group_membership(
    layer: InMemoryChannelLayer,
) -> None:
    async with client() as communicator:
        first = communicator.subscribe(EVENTS, {"topic": "shared", "key": "first"})
        second = communicator.subscribe(EVENTS, {"topic": "shared", "key": "second"})
        pending = [start(first), start(second)]
        await listening("shared", listeners=2)
        assert members(layer, "shared") == [get_hub().channel_name]
        await broadcast("shared", "both")
        assert [event(await settled(result)) for result in pending] == ["both", "both"]


async def test_subscriptions_on_two_connections_share_one_group_membership(
    layer: InMemoryChannelLayer,
) -> None:
    async with client() as one, client(LEGACY_WS) as other:
        pending = [
            start(one.subscribe(EVENTS, {"topic": "shared", "key": "one"})),
            start(other.subscribe(EVENTS, {"topic": "shared", "key": "other"})),
        ]
        await listening("shared", listeners=2)
        assert members(layer, "shared") == [get_hub().channel_name]
        await broadcast("shared", "both")
        assert [event(await settled(result)) for result in pending] == ["both", "both"]


async def test_the_group_is_kept_until_the_last_subscription_completes(
    layer: InMemoryChannelLayer, fresh_probe: Probe
) -> None:
    async with client() as communicator:
        first = start(communicator.subscribe(EVENTS, {"topic": "kept", "key": "first"}))
        second = communicator.subscribe(EVENTS, {"topic": "kept", "key": "second"})
        pending = start(second)
        await listening("kept", listeners=2)

        await cancelled(first)
        await asyncio.wait_for(fresh_probe.finalized["first"].wait(), TIMEOUT)
        assert members(layer, "kept") == [get_hub().channel_name]
        await broadcast("kept", "still here")
        assert event(await settled(pending)) == "still here"

        await second.aclose()
        await asyncio.wait_for(fresh_probe.finalized["second"].wait(), TIMEOUT)
        await until(lambda: members(layer, "kept") == [], "the group is left")
        assert get_hub().groups() == []


async def test_the_group_is_left_when_the_last_subscriber_disconnects_abruptly(
    layer: InMemoryChannelLayer,
) -> None:
    async with client() as one, client(LEGACY_WS) as other:
        vanishing = start(one.subscribe(EVENTS, {"topic": "abrupt", "key": "one"}))
        pending = start(other.subscribe(EVENTS, {"topic": "abrupt", "key": "other"}))
        await listening("abrupt", listeners=2)

        await one.disconnect()  # no complete: the client just vanishes
        with pytest.raises(ConnectionClosed):
            await settled(vanishing)
        assert members(layer, "abrupt") == [get_hub().channel_name]
        await broadcast("abrupt", "to the survivor")
        assert event(await settled(pending)) == "to the survivor"

        await other.disconnect()
        # The consumer awaits every operation's finally before its disconnect returns.
        assert members(layer, "abrupt") == []
        assert get_hub().groups() == []


async def test_a_topic_listened_to_again_after_everyone_left_receives_events() -> None:
    async with client() as communicator:
        first = start(communicator.subscribe(EVENTS, {"topic": "again", "key": "first"}))
        await listening("again")
        await cancelled(first)
        await until(lambda: get_hub().groups() == [], "the hub left every group")

        second = communicator.subscribe(EVENTS, {"topic": "again", "key": "second"})
        pending = start(second)
        await listening("again")
        await broadcast("again", "back")
        assert event(await settled(pending)) == "back"


# -- the bounded buffer -----------------------------------------------------------------------


async def test_a_listener_buffers_up_to_its_size_in_order() -> None:
    listener = Listener(("gqlc.buffer",), size=3)
    for number in range(3):
        listener.put(number, SharedResults())
    assert not listener.overflowed
    assert [await listener.get() for _ in range(3)] == [0, 1, 2]


async def test_a_listener_get_waits_for_the_next_event() -> None:
    listener = Listener(("gqlc.buffer",), size=3)
    pending = asyncio.ensure_future(listener.get())
    await asyncio.sleep(0)
    assert not pending.done()
    listener.put("late", SharedResults())
    assert await settled(pending) == "late"


async def test_a_listener_falling_more_than_its_size_behind_overflows_and_ends() -> None:
    # Ending loudly, not skipping silently: the client learns it missed events.
    listener = Listener(("gqlc.buffer",), size=3)
    for number in range(4):
        listener.put(number, SharedResults())
    assert listener.overflowed
    listener.put("after the overflow", SharedResults())
    with pytest.raises(SubscriptionOverflow):
        await listener.get()


async def test_an_overflowing_listener_wakes_a_waiting_get() -> None:
    listener = Listener(("gqlc.buffer",), size=0)
    pending = asyncio.ensure_future(listener.get())
    await asyncio.sleep(0)
    listener.put("too many", SharedResults())
    with pytest.raises(SubscriptionOverflow):
        await settled(pending)


async def test_a_subscription_that_falls_behind_ends_with_an_error() -> None:
    # A send window of 2 holds the operation while the client reads nothing, so events pile
    # up in its buffer of 3 (graphql-transport-ws only: legacy has no flow control).
    app = GraphQLWSConsumer.as_asgi(schema=schema, send_window=2)
    topic = "overflow"
    with override_settings(GQLCHANNELS={"SUBSCRIPTION_BUFFER_SIZE": 3}):
        async with GraphQLWSCommunicator(app, timeout=TIMEOUT) as communicator:
            subscription = communicator.subscribe(EVENTS, {"topic": topic})
            first = start(subscription)
            await listening(topic)
            listeners = get_hub()._listeners[group_name(topic)]
            for number in range(10):
                await broadcast(topic, str(number))
            await until(
                lambda: any(listener.overflowed for listener in listeners),
                "the subscription overflows",
            )
            received = [event(await settled(first))]
            with pytest.raises(OperationError, match="behind"):
                async for result in subscription:
                    received.append(event(result))
    assert received == [str(number) for number in range(len(received))]
    assert len(received) < 10


# -- broadcast_sync ---------------------------------------------------------------------------


def run_in_thread(target: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    """Start ``target`` in a plain thread; its exceptions are collected, not lost."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    return thread, errors


async def joined(thread: threading.Thread, timeout: float = TIMEOUT) -> None:
    """Wait for ``thread`` without blocking the event loop it may be publishing on."""
    await asyncio.to_thread(thread.join, timeout)
    assert not thread.is_alive(), "the thread did not finish in time"


async def test_broadcast_sync_from_a_plain_thread_delivers() -> None:
    async with client() as communicator:
        pending = start(communicator.subscribe(EVENTS, {"topic": "from-thread"}))
        await listening("from-thread")
        thread, errors = run_in_thread(lambda: broadcast_sync("from-thread", "hello"))
        await joined(thread)
        assert errors == []
        assert event(await settled(pending)) == "hello"


async def test_broadcast_sync_from_async_code_raises_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="await broadcast"):
        broadcast_sync("anything", "payload")


async def test_broadcast_sync_from_many_threads_while_clients_come_and_go(
    layer: InMemoryChannelLayer, fresh_probe: Probe
) -> None:
    """Regression: concurrent sync publishers and churning clients must not lose, repeat or
    reorder any event for the subscribers that stay connected."""
    topic = "regression"
    threads, per_thread, churners = 4, 50, 3
    total = threads * per_thread

    async with client() as first, client(LEGACY_WS) as second:
        stayers = [
            first.subscribe(EVENTS, {"topic": topic, "key": "stay-1"}),
            first.subscribe(EVENTS, {"topic": topic, "key": "stay-2"}),
            second.subscribe(EVENTS, {"topic": topic, "key": "stay-3"}),
        ]

        async def collect(subscription: AsyncIterator[dict[str, Any]]) -> list[Any]:
            return [await next_event(subscription) for _ in range(total + 1)]

        collectors = [asyncio.ensure_future(collect(stayer)) for stayer in stayers]
        await listening(topic, listeners=len(stayers))

        publishers_done = asyncio.Event()
        churning = threading.Event()
        cycles = 0

        async def churn(worker: int) -> None:
            nonlocal cycles
            for cycle in itertools.count():
                if publishers_done.is_set():
                    return
                key = f"churn-{worker}-{cycle}"
                way = cycle % 3
                async with client(LEGACY_WS if worker % 2 else TRANSPORT_WS) as communicator:
                    churn_topic = "regression-other" if way == 2 else topic
                    subscription = communicator.subscribe(
                        EVENTS, {"topic": churn_topic, "key": key}
                    )
                    reading = start(subscription)
                    await asyncio.wait_for(fresh_probe.started[key].wait(), TIMEOUT)
                    churning.set()
                    if way == 0:
                        await cancelled(reading)  # sends complete / stop
                    else:
                        await communicator.disconnect()  # vanishes without complete
                    with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                        await settled(reading)
                await asyncio.wait_for(fresh_probe.finalized[key].wait(), TIMEOUT)
                cycles += 1

        churn_tasks = [asyncio.ensure_future(churn(worker)) for worker in range(churners)]
        barrier = threading.Barrier(threads)

        def publish(thread_index: int) -> None:
            assert churning.wait(TIMEOUT), "no client churned"
            barrier.wait(TIMEOUT)
            for number in range(per_thread):
                broadcast_sync(topic, f"{thread_index}:{number}")

        started = [run_in_thread(functools.partial(publish, index)) for index in range(threads)]
        for thread, _ in started:
            await joined(thread, timeout=30)
        publishers_done.set()
        assert [error for _, errors in started for error in errors] == []
        await asyncio.wait_for(asyncio.gather(*churn_tasks), 30)
        await broadcast(topic, "end")
        received = await asyncio.wait_for(asyncio.gather(*collectors), 30)

        assert cycles >= churners
        for events in received:
            assert events[-1] == "end", "an event arrived more than once"
            by_thread: dict[str, list[int]] = {str(index): [] for index in range(threads)}
            for item in events[:-1]:
                thread_index, number = item.split(":")
                by_thread[thread_index].append(int(number))
            assert by_thread == {str(index): list(range(per_thread)) for index in range(threads)}
        # Churn left nothing behind: the stayers' single membership, no other group.
        assert members(layer, topic) == [get_hub().channel_name]
        assert members(layer, "regression-other") == []
        assert get_hub().listener_count() == len(stayers)


# -- no channel layer -------------------------------------------------------------------------


async def test_broadcast_without_a_channel_layer_raises_broadcast_error() -> None:
    # Changing CHANNEL_LAYERS makes channels drop its cached layers (setting_changed hook).
    with override_settings(CHANNEL_LAYERS={}):
        with pytest.raises(BroadcastError, match="CHANNEL_LAYERS"):
            await broadcast("topic", "payload")


async def test_broadcast_sync_without_a_channel_layer_raises_broadcast_error() -> None:
    with override_settings(CHANNEL_LAYERS={}):
        thread, errors = run_in_thread(lambda: broadcast_sync("topic", "payload"))
        await joined(thread)
    assert len(errors) == 1
    assert isinstance(errors[0], BroadcastError)
