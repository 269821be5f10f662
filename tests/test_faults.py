"""The fault policy every channel-layer call goes through: one retry on a stale connection, one
log line when the layer starts failing and one when it answers again, one shared backoff."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer  # type: ignore[import-untyped]  # no stubs

from gqlchannels.faults import RETRY_DELAYS, LayerFaults
from tests.narrowing import as_layer
from tests.redis_support import RedisServer


class Switchable:
    """A layer (a new in-memory one by default) whose calls that would reach Redis raise
    ConnectionError while ``down`` is set, as with a Redis that is down or restarting."""

    NETWORK_CALLS = ("send", "receive", "group_add", "group_discard", "group_send")

    def __init__(self, layer: Any = None) -> None:
        self._layer = layer or InMemoryChannelLayer()
        self.down = False

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._layer, name)
        if name not in self.NETWORK_CALLS:
            return found

        async def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise ConnectionError("layer unreachable")
            return await found(*args, **kwargs)

        return call


async def fail(faults: LayerFaults, layer: Switchable, times: int) -> None:
    """Make ``times`` calls through ``faults`` that fail (``layer`` is down)."""
    layer.down = True
    for _ in range(times):
        with pytest.raises(ConnectionError):
            await faults.call(as_layer(layer), "group_add", "g", "channel")
    layer.down = False


@pytest.mark.redis
async def test_a_call_on_a_stale_pooled_connection_is_retried_once_and_succeeds(
    tmp_path: Path,
) -> None:
    """After a Redis restart every pooled connection is closed on the server's side; the
    first call on one fails although Redis answers. The policy retries it at once."""
    with RedisServer(tmp_path) as redis:
        layer = RedisChannelLayer(hosts=[{"address": redis.url, "socket_timeout": 10}])
        faults = LayerFaults()
        try:
            await asyncio.gather(*(layer.group_add(f"g{n}", "channel") for n in range(3)))
            await asyncio.to_thread(redis.restart)
            await faults.call(layer, "group_add", "g0", "channel")
            assert faults.failures == 0
        finally:
            await layer.close_pools()


async def test_calls_that_fail_are_logged_once_and_the_recovery_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    layer, starts = Switchable(), []
    faults = LayerFaults(on_failure=lambda: starts.append("failing"))
    with caplog.at_level(logging.WARNING, logger="gqlchannels.faults"):
        await fail(faults, layer, times=5)
        await faults.call(as_layer(layer), "group_add", "g", "channel")
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith("Channel layer failing (group_add: ConnectionError: layer")
    assert messages[1].startswith("Channel layer answers again (group_add), after 5 failed")
    assert starts == ["failing"]  # once per outage, not per failed call


async def test_a_retry_waiting_in_backoff_goes_on_as_soon_as_another_call_succeeds() -> None:
    layer = Switchable()
    faults = LayerFaults()
    await fail(faults, layer, times=len(RETRY_DELAYS))
    waiting = asyncio.create_task(faults.pause())  # the longest backoff: RETRY_DELAYS[-1]
    await asyncio.sleep(0)
    assert not waiting.done()
    await faults.call(as_layer(layer), "group_add", "g", "channel")
    await asyncio.wait_for(waiting, timeout=RETRY_DELAYS[-1] / 2)
