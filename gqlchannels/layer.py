"""The channel layer as gqlchannels meets it: which layer, the message types sent over it,
and the bridge that lets synchronous code (views, signals, threads, commands) use it.

The hub (fan-out), the control plane and ``broadcast`` all reach the layer through here, and
every call they make goes through the one fault policy of ``gqlchannels.faults``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import async_to_sync

from . import conf
from .exceptions import LayerMissing
from .loops import PerLoop

if TYPE_CHECKING:
    from channels.layers import BaseChannelLayer

T = TypeVar("T")

#: A broadcast event, sent to a topic's group (``{"group", "payload"}``).
EVENT_TYPE = "gqlchannels.event"
#: Close these connections (``{"connections", "code", "reason"}``), sent to a hub channel.
DISCONNECT_TYPE = "gqlchannels.disconnect"
#: End these operations (``{"operations": {connection_id: [operation_id, ...]}}``), sent to a
#: hub channel: each gets ``complete``, its connection stays open.
COMPLETE_TYPE = "gqlchannels.complete"
#: Which connections do you hold? (``{"reply_to", "token"}``), sent to a hub channel.
PROBE_TYPE = "gqlchannels.probe"
#: The answer to a probe (``{"token", "channel", "connections"}``).
PROBE_REPLY_TYPE = "gqlchannels.probe_reply"
#: Close the connections of one identity (``{"identity", "reason"}``), sent to the control
#: group, so every process's hub receives it once.
END_SESSIONS_TYPE = "gqlchannels.end_sessions"
#: The group every hub that holds connections is in (not a topic's: those start ``gqlc.``).
CONTROL_GROUP = "gqlchannels.control"


def channel_layer() -> BaseChannelLayer:
    """The layer named by ``GQLCHANNELS['CHANNEL_LAYER']``; LayerMissing if there is none."""
    from channels.layers import get_channel_layer  # on first use: importing stays cheap

    alias = conf.get("CHANNEL_LAYER")
    layer = get_channel_layer(alias)
    if layer is None:
        raise LayerMissing(f"No channel layer {alias!r}: configure CHANNEL_LAYERS")
    return layer


async def new_channel(layer: BaseChannelLayer, prefix: str) -> str:
    """A new process-specific channel of ``layer`` that messages sent to it reach.

    channels-redis' ``RedisChannelLayer`` sharded over several hosts receives such a channel
    (``prefix.<client>!<random>``) on the host its non-local part (up to the ``!``) hashes
    to, but ``send`` writes to the host its full name hashes to (channels_redis PR 220, still
    open in 4.3), so a direct message (the admin's disconnect, a probe, a probe's reply)
    reaches it only when both agree. Names are drawn until they do: about as many draws as
    there are hosts, made without I/O. Other layers take the first name.
    """
    while True:
        # types-channels lacks new_channel's prefix argument.
        name: str = await layer.new_channel(prefix=prefix)  # type: ignore[call-arg]
        if _sends_reach(layer, name):
            return name


def _sends_reach(layer: Any, name: str) -> bool:
    """Whether ``send(name, ...)`` writes where ``receive(name)`` reads (see ``new_channel``)."""
    # getattr_static: the pub/sub layer answers any other attribute through its loop's layer.
    ring_size = inspect.getattr_static(layer, "ring_size", 1)
    if not isinstance(ring_size, int) or ring_size <= 1 or "!" not in name:
        return True
    return bool(layer.consistent_hash(name) == layer.consistent_hash(layer.non_local_name(name)))


def group_expiry(layer: BaseChannelLayer) -> float | None:
    """Seconds a group membership lives on ``layer`` unless renewed; None when memberships
    never lapse (channels-redis' pub/sub layer keeps them in the process, not in Redis)."""
    expiry = inspect.getattr_static(layer, "group_expiry", None)
    return float(expiry) if isinstance(expiry, int | float) else None


#: The event loops that serve WebSockets in this process (each marks itself with ``serving``).
_serving: PerLoop[bool] = PerLoop(lambda: True)


def serving() -> None:
    """Mark the running loop as one that serves WebSockets (the hub does, when it is made)."""
    _serving.get()


def run_from_sync(coroutine: Coroutine[Any, Any, T], name: str, async_name: str) -> T:
    """Run a channel-layer coroutine for synchronous code and return its result.

    When this process serves WebSockets it runs on the server's event loop (the in-memory
    layer is not thread-safe); elsewhere on a loop of its own. ``name`` and ``async_name``
    word the error for a sync function called from async code.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coroutine.close()
        raise RuntimeError(f"{name}() was called from async code: use 'await {async_name}()'")
    loops = _serving.running_loops()
    if not loops:

        async def awaited() -> T:
            return await coroutine

        return async_to_sync(awaited)()
    return asyncio.run_coroutine_threadsafe(coroutine, loops[-1]).result()
