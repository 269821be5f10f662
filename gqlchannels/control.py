"""Reach live connections in any process, through each process's hub channel.

Used by the admin's "Disconnect selected" action and the audit's ``--probe``; safe from any
thread, because it only sends channel-layer messages and never touches a consumer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping

from .close_codes import CloseCode
from .hub import DISCONNECT_TYPE, PROBE_REPLY_TYPE, PROBE_TYPE, channel_layer, run_from_sync


async def disconnect(
    targets: Mapping[str, Iterable[str]],
    code: int = CloseCode.DISCONNECTED_BY_SERVER,
    reason: str = "Disconnected by the server",
) -> None:
    """Close connections: ``targets`` maps a hub channel to the ids of its connections."""
    layer = channel_layer()
    for hub_channel, connection_ids in targets.items():
        message = {
            "type": DISCONNECT_TYPE,
            "connections": list(connection_ids),
            "code": int(code),
            "reason": reason,
        }
        await layer.send(hub_channel, message)


def disconnect_sync(
    targets: Mapping[str, Iterable[str]],
    code: int = CloseCode.DISCONNECTED_BY_SERVER,
    reason: str = "Disconnected by the server",
) -> None:
    """``disconnect`` for synchronous code (admin actions, management commands, threads)."""
    run_from_sync(disconnect(targets, code, reason), "disconnect_sync", "disconnect")


async def probe(hub_channels: Iterable[str], timeout: float = 5.0) -> dict[str, list[str]]:
    """Ask each hub which connections it holds; return the answers that came within
    ``timeout`` (a hub that did not answer, e.g. of a crashed process, is missing)."""
    layer = channel_layer()
    reply_to = await layer.new_channel(prefix="gqlchannels.probe.")
    token = uuid.uuid4().hex
    pending = set(hub_channels)
    for hub_channel in pending:
        await layer.send(hub_channel, {"type": PROBE_TYPE, "reply_to": reply_to, "token": token})
    answers: dict[str, list[str]] = {}
    try:
        async with asyncio.timeout(timeout):
            while pending - answers.keys():
                reply = await layer.receive(reply_to)
                if reply.get("type") == PROBE_REPLY_TYPE and reply.get("token") == token:
                    answers[reply["channel"]] = list(reply.get("connections", []))
    except TimeoutError:
        pass
    return answers


def probe_sync(hub_channels: Iterable[str], timeout: float = 5.0) -> dict[str, list[str]]:
    """``probe`` for synchronous code."""
    return run_from_sync(probe(hub_channels, timeout), "probe_sync", "probe")
