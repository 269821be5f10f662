"""The channel layer as gqlchannels meets it: which layer, the message types sent over it,
and the bridge that lets synchronous code (views, signals, threads, commands) use it.

The hub (fan-out), the control plane and ``broadcast`` all reach the layer through here, and
every call they make goes through the one fault policy of ``gqlchannels.faults``.
"""

from __future__ import annotations

import asyncio
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
