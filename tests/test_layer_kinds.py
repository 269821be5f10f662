"""What gqlchannels assumes of the channel layer, checked on each kind channels-redis offers.

channels-redis' ``RedisChannelLayer`` sharded over several hosts reads a process-specific
channel on one host and sends to it on another unless both hashes agree; its
``RedisPubSubChannelLayer`` keeps no group expiry and drops a channel whose receive was
cancelled. The hub and the control plane must work on both (the cross-process behaviour is
in ``test_redis_layers``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer, channel_layers
from channels_redis.core import RedisChannelLayer  # type: ignore[import-untyped]  # no stubs
from django.test import override_settings

from gqlchannels import layer as gqlc_layer
from gqlchannels.broadcast import broadcast, group_name
from gqlchannels.hub import Listener, get_hub
from tests.redis_support import require_redis, unique_prefix

#: Hosts of a sharded layer that is never connected to (its names are made without I/O).
TWO_HOSTS = ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"]
DRAWS = 200
TIMEOUT = 5.0


async def test_channels_of_a_sharded_redis_layer_are_read_on_the_host_sends_write_to() -> None:
    layer = RedisChannelLayer(hosts=TWO_HOSTS)
    for _ in range(DRAWS):
        name = await gqlc_layer.new_channel(layer, "gqlchannels.hub.")
        assert layer.consistent_hash(name) == layer.consistent_hash(layer.non_local_name(name))


async def test_channels_of_an_unsharded_layer_are_taken_as_the_layer_makes_them() -> None:
    name = await gqlc_layer.new_channel(InMemoryChannelLayer(), "gqlchannels.probe.")
    assert name.startswith("gqlchannels.probe.")


def test_group_expiry_is_the_layers_setting_on_redis_channel_layer() -> None:
    assert gqlc_layer.group_expiry(RedisChannelLayer(hosts=TWO_HOSTS, group_expiry=90)) == 90


def test_group_expiry_is_none_on_the_pubsub_layer() -> None:
    from channels_redis.pubsub import RedisPubSubChannelLayer  # type: ignore[import-untyped]

    assert gqlc_layer.group_expiry(RedisPubSubChannelLayer(hosts=TWO_HOSTS)) is None


async def received(listener: Listener, number: int) -> bool:
    """Whether ``number`` arrives within 0.1 s (earlier numbers are skipped)."""
    try:
        async with asyncio.timeout(0.1):
            while (event := await listener.get()) != number:
                assert event < number, event
    except TimeoutError:
        return False
    return True


@pytest.fixture
async def pubsub_layer() -> AsyncIterator[Any]:
    """The default layer is channels-redis' pub/sub layer on the shared Redis."""
    url = require_redis()
    layers = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": url, "socket_timeout": 10}],
                "prefix": unique_prefix(),
            },
        }
    }
    with override_settings(CHANNEL_LAYERS=layers):
        yield channel_layers["default"]
        await channel_layers["default"].flush()


@pytest.mark.redis
async def test_the_hub_takes_subscriptions_again_after_going_idle_on_the_pubsub_layer(
    pubsub_layer: Any,
) -> None:
    """The pub/sub layer forgets a channel whose receive was cancelled (the hub's, when it
    goes idle) and refuses to add it to a group: the hub must come back on a new channel."""
    hub = get_hub()
    for round_ in range(3):
        listener = await hub.add((group_name("idle"),), 10)
        # The join is a SUBSCRIBE the pub/sub layer sent and does not wait on: publish until
        # Redis delivers. Events are numbered by round: a late one of an earlier round
        # (published twice while waiting) is told apart and skipped.
        async with asyncio.timeout(TIMEOUT):
            while not await received(listener, round_):
                await broadcast("idle", round_)
        await hub.remove(listener)
        assert hub.listener_count() == 0 and hub.channel_name is None
