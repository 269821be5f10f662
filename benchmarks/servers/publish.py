"""How each server's subscribers are reached: gqlchannels through ``gqlchannels.broadcast``
(one channel-layer message per process, fanned out by its hub), Strawberry and the floor by
``group_send`` to the group every subscriber's own channel joined (one message per subscriber).

Imported by the servers (the in-process HTTP endpoint) and by the separate publisher process.
"""

from __future__ import annotations

from typing import Any

from channels.layers import get_channel_layer

from benchmarks.servers.common import TICK_TYPE, Publish, tick_group


async def publish_gqlchannels(topic: str, payload: dict[str, Any]) -> None:
    """Publish one event the way a gqlchannels user does."""
    import gqlchannels  # needs configured settings, so not at import time

    await gqlchannels.broadcast(topic, payload)


async def publish_group(topic: str, payload: dict[str, Any]) -> None:
    """Publish one event the way a Strawberry or bare-Channels user does."""
    layer = get_channel_layer()
    assert layer is not None, "no channel layer configured"
    await layer.group_send(tick_group(topic), {"type": TICK_TYPE, "topic": topic, **payload})


PUBLISHERS: dict[str, Publish] = {
    "gqlchannels": publish_gqlchannels,
    "gqlchannels-unshared": publish_gqlchannels,
    "gqlchannels-nometrics": publish_gqlchannels,
    "strawberry": publish_group,
    "floor": publish_group,
}
