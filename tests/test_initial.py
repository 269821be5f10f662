"""``listen(initial=...)``: a subscription's first value, taken only once its groups are
joined, so an event published at any moment after the subscribe is never lost.

Each trial stands for "read the current state, then follow the changes": a publisher changes
the state and then publishes the change, at a different moment of the subscribe each trial
(from before the join to after it); the subscriber must see the change either in its initial
value or as an event after it. The race runs on the in-memory layer and on a real Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import InMemoryChannelLayer, channel_layers
from django.test import override_settings

import gqlchannels
from tests.redis_support import delete_prefix, require_redis, unique_prefix

TIMEOUT = 10.0
TRIALS = 1000
#: The publisher waits 0 to this many loop turns (or Redis round trips) before it publishes.
LATEST_TURN = 24


@pytest.fixture
def redis_layer() -> Iterator[None]:
    """channels-redis on the suite's Redis, under a key prefix of this test's own."""
    url = require_redis()
    prefix = unique_prefix()
    backend = {"BACKEND": "channels_redis.core.RedisChannelLayer"}
    layers = {"default": {**backend, "CONFIG": {"hosts": [url], "prefix": prefix}}}
    with override_settings(CHANNEL_LAYERS=layers):
        yield
    delete_prefix(url, prefix)


class State:
    """A value that a publisher changes, then announces (as a commit, then its publish)."""

    def __init__(self) -> None:
        self.version = 0

    async def read(self) -> int:
        return self.version

    def read_sync(self) -> int:
        return self.version


async def publish_after(turns: int, topic: str, state: State) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)
    state.version = 1
    await gqlchannels.broadcast(topic, 1)


async def first_values(stream: AsyncIterator[Any], publisher: asyncio.Task[None]) -> list[Any]:
    """The initial value, then (if it predates the change) the next event."""
    seen = [await asyncio.wait_for(anext(stream), TIMEOUT)]
    await publisher
    if seen[0] != 1:
        seen.append(await asyncio.wait_for(anext(stream), TIMEOUT))
    return seen


async def race(trials: int, synchronous: bool = False) -> list[int]:
    """The trials in which the change was neither in the initial value nor delivered."""
    lost = []
    for trial in range(trials):
        topic, state = f"race.{trial}", State()
        stream = gqlchannels.listen(
            None, topic, initial=state.read_sync if synchronous else state.read
        )
        publisher = asyncio.create_task(publish_after(trial % LATEST_TURN, topic, state))
        try:
            seen = await first_values(stream, publisher)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]  # an async generator
        if 1 not in seen:
            lost.append(trial)
    return lost


async def test_the_initial_value_comes_first_then_the_events() -> None:
    stream = gqlchannels.listen(None, "first", initial=lambda: "now")
    assert await asyncio.wait_for(anext(stream), TIMEOUT) == "now"
    await gqlchannels.broadcast("first", "later")
    assert await asyncio.wait_for(anext(stream), TIMEOUT) == "later"
    await stream.aclose()  # type: ignore[attr-defined]  # an async generator


async def test_a_publish_racing_a_subscribe_is_never_lost_on_the_in_memory_layer(
    memory_layer: InMemoryChannelLayer,
) -> None:
    assert await race(TRIALS) == []


async def test_a_publish_racing_a_subscribe_with_a_sync_initial_is_never_lost(
    memory_layer: InMemoryChannelLayer,
) -> None:
    assert await race(TRIALS // 10, synchronous=True) == []


@pytest.mark.redis
async def test_a_publish_racing_a_subscribe_is_never_lost_on_redis(redis_layer: None) -> None:
    try:
        assert await race(TRIALS) == []
    finally:
        await channel_layers[DEFAULT_CHANNEL_LAYER].close_pools()  # type: ignore[attr-defined]  # channels-redis' own
