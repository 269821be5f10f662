"""The control plane: reach live connections in any process, through each process's hub
channel.

The sending side (``disconnect``, ``complete``, ``probe``, ``disconnect_user``) is used by
the admin's actions ("Disconnect selected", "Stop the selected operations"), the audit's
``--probe`` and the receivers that end sessions (``gqlchannels.sessions``); it is safe from
any thread, because it only sends channel-layer messages and never touches a consumer. The
receiving side is one ``ControlPlane`` per event loop: it keeps the loop's live connections,
registers its message handlers on the loop's hub, keeps the hub in the control group while it
holds connections, and closes or lists connections, or ends one of their operations, when
asked.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from .close_codes import CloseCode
from .exceptions import LayerMissing
from .hub import Hub, get_hub
from .layer import (
    COMPLETE_TYPE,
    CONTROL_GROUP,
    DISCONNECT_TYPE,
    END_SESSIONS_TYPE,
    PROBE_REPLY_TYPE,
    PROBE_TYPE,
    channel_layer,
    new_channel,
    run_from_sync,
)
from .loops import PerLoop

logger = logging.getLogger("gqlchannels.control")


class Controllable(Protocol):
    """What the control plane needs of a live connection."""

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the socket with ``code``."""

    async def complete_operation(self, operation_id: str) -> None:
        """End the operation ``operation_id`` (the client gets ``complete``)."""

    def identities(self) -> frozenset[str]:
        """Who the connection acts for (``user:<pk>``, ``session:<key>``), as of now."""

    async def end_session(self, reason: str) -> None:
        """Close the connection because its credentials ended (4403)."""


class ControlPlane:
    """One event loop's live connections, reachable from other processes through its hub."""

    def __init__(self) -> None:
        self.connections: dict[str, Controllable] = {}
        self._hub: Hub | None = None

    def attach(self, connection_id: str, connection: Controllable) -> Hub | None:
        """Make a live connection reachable, by id at once and by identity once the hub is
        in the control group (joined in the background by the first connection, so a slow
        layer never holds a connection up); return the hub that reaches it (None without a
        channel layer: then nothing outside this process can reach it)."""
        if self._hub is None:
            try:
                self._hub = get_hub()
            except LayerMissing:
                logger.debug(
                    "No channel layer: connection %s takes no control messages", connection_id
                )
                return None
            self._hub.handle(DISCONNECT_TYPE, self._on_disconnect)
            self._hub.handle(COMPLETE_TYPE, self._on_complete)
            self._hub.handle(PROBE_TYPE, self._on_probe)
            self._hub.handle(END_SESSIONS_TYPE, self._on_end_sessions)
        self.connections[connection_id] = connection
        self._hub.hold(self)
        if not self._hub.joined(CONTROL_GROUP):
            self._hub.spawn(self._hub.join(CONTROL_GROUP))
        return self._hub

    def detach(self, connection_id: str) -> None:
        """Forget a connection that has closed."""
        self.connections.pop(connection_id, None)
        if not self.connections and self._hub is not None:
            self._hub.release(self)

    def _on_disconnect(self, message: dict[str, Any]) -> None:
        assert self._hub is not None
        for connection_id in message.get("connections", ()):
            connection = self.connections.get(connection_id)
            if connection is not None:
                self._hub.spawn(connection.close(message.get("code"), message.get("reason")))

    def _on_end_sessions(self, message: dict[str, Any]) -> None:
        assert self._hub is not None
        identity, reason = message.get("identity"), message.get("reason")
        if not isinstance(identity, str) or not isinstance(reason, str):
            return
        for connection in list(self.connections.values()):
            if identity in connection.identities():
                self._hub.spawn(connection.end_session(reason))

    def _on_complete(self, message: dict[str, Any]) -> None:
        assert self._hub is not None
        operations = message.get("operations")
        if not isinstance(operations, dict):
            return
        for connection_id, operation_ids in operations.items():
            connection = self.connections.get(connection_id)
            if connection is None or not isinstance(operation_ids, list):
                continue
            for operation_id in operation_ids:
                if isinstance(operation_id, str):
                    self._hub.spawn(connection.complete_operation(operation_id))

    def _on_probe(self, message: dict[str, Any]) -> None:
        assert self._hub is not None
        reply = {
            "type": PROBE_REPLY_TYPE,
            "token": message.get("token"),
            "channel": self._hub.channel_name,
            "connections": list(self.connections),
        }
        self._hub.spawn(self._reply(message.get("reply_to"), reply))

    async def _reply(self, channel: Any, reply: dict[str, Any]) -> None:
        if not isinstance(channel, str) or self._hub is None:
            return
        try:
            await self._hub.send(channel, reply)
        except Exception:  # the prober counts this hub as not answering
            pass


_planes: PerLoop[ControlPlane] = PerLoop(ControlPlane)


def get_control_plane() -> ControlPlane:
    """The control plane of the running event loop."""
    return _planes.get()


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


async def complete(targets: Mapping[str, Mapping[str, Iterable[str]]]) -> None:
    """End operations, leaving their connections open: ``targets`` maps a hub channel to
    ``{connection_id: operation ids}`` of the connections it holds."""
    layer = channel_layer()
    for hub_channel, connections in targets.items():
        operations = {connection: list(ids) for connection, ids in connections.items()}
        await layer.send(hub_channel, {"type": COMPLETE_TYPE, "operations": operations})


def complete_sync(targets: Mapping[str, Mapping[str, Iterable[str]]]) -> None:
    """``complete`` for synchronous code (the admin's "Stop the selected operations")."""
    run_from_sync(complete(targets), "complete_sync", "complete")


def user_identity(user: Any) -> str:
    """The identity of ``user``'s connections (what ``disconnect_user`` matches)."""
    return f"user:{user.pk}"


def session_identity(session_key: str) -> str:
    """The identity of the connections opened with Django session ``session_key``."""
    return f"session:{session_key}"


async def end_sessions(identity: str, reason: str = "Session ended") -> None:
    """Close every connection that acts for ``identity``, in every process on the channel
    layer (4403; legacy ``connection_error`` first): one message to the control group, which
    each process's hub receives once, whatever number of connections it holds."""
    message = {"type": END_SESSIONS_TYPE, "identity": identity, "reason": reason}
    await channel_layer().group_send(CONTROL_GROUP, message)


async def disconnect_user(user: Any, reason: str = "Signed out") -> None:
    """Close every connection of ``user`` in every process (see ``end_sessions``): for a
    logout, a deactivation, a password change or a ban that must take effect at once."""
    await end_sessions(user_identity(user), reason)


def disconnect_user_sync(user: Any, reason: str = "Signed out") -> None:
    """``disconnect_user`` for synchronous code (views, signal receivers, commands)."""
    run_from_sync(disconnect_user(user, reason), "disconnect_user_sync", "disconnect_user")


async def probe(hub_channels: Iterable[str], timeout: float = 5.0) -> dict[str, list[str]]:
    """Ask each hub which connections it holds; return the answers that came within
    ``timeout`` (a hub that did not answer, e.g. of a crashed process, is missing)."""
    layer = channel_layer()
    reply_to = await new_channel(layer, "gqlchannels.probe.")
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
