"""``graphql-transport-ws``, the protocol of the graphql-ws library.

Every deviation from the message grammar closes the socket with 4400, as the spec demands;
operation-level failures (invalid documents, resolver errors) are ``error`` messages that
leave the socket and every other operation alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..close_codes import CloseCode
from .base import BaseProtocol, ConnectionState, close_reason
from .frames import Payload, ServerMessage
from .messages import OPERATION_ID, OPTIONAL_PAYLOAD, REQUEST_PAYLOAD, operation_request


class TransportWSProtocol(BaseProtocol):
    """State machine of one ``graphql-transport-ws`` connection."""

    name = "graphql-transport-ws"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        # Flow control: operation frames sent, and how many of them the client has proven it
        # read (by answering a ping sent after them). A client that stops reading stops
        # answering, so at most ``send_window`` frames wait in the server's send buffer.
        self._frames_sent = 0
        self._frames_read = 0
        self._ping_in_flight: int | None = None  # _frames_sent when the unanswered ping left
        self._pong_deadline: asyncio.Task[None] | None = None
        self._window_open = asyncio.Event()
        # At most one pong is owed at a time: pings that arrive while the client is not taking
        # what the server sends are answered by one pong, once it proves it reads again.
        self._pong_owed = False

    async def _refuse(self, message: dict[str, Any] | None, reason: str) -> None:
        """Any frame that is not a message the spec defines closes the socket with 4400."""
        await self.transport.close(CloseCode.BAD_REQUEST, close_reason(reason))

    async def _on_connection_init(self, message: dict[str, Any]) -> None:
        if self.state is not ConnectionState.WAITING_FOR_INIT:
            await self.transport.close(
                CloseCode.TOO_MANY_INIT_REQUESTS, "Too many initialisation requests"
            )
        else:
            self.state = ConnectionState.INITIALISING
            self._spawn(self._initialise(message.get("payload") or {}))

    async def _reject(self, message: str) -> None:
        await self.transport.close(CloseCode.FORBIDDEN, close_reason(message or "Forbidden"))

    async def _on_ping(self, message: dict[str, Any]) -> None:
        """Answer at once while the client takes what we send. A client that sends pings but
        leaves our frames unread would have its pongs pile up in the server: instead one pong
        is owed, further pings add nothing, and our own ping asks it to prove it reads."""
        if self._pong_owed:
            return
        if self.transport.client_is_behind():
            self._pong_owed = True
            await self._ping()
        else:
            await self.transport.send_message({"type": "pong"})

    async def _on_pong(self, message: dict[str, Any]) -> None:
        """Only a pong while our ping is unanswered counts as its answer: it proves the client
        read every frame sent before that ping. Any other pong changes nothing."""
        if self._ping_in_flight is None:
            return
        self._frames_read = self._ping_in_flight
        self._ping_in_flight = None
        if self._pong_deadline is not None:
            self._pong_deadline.cancel()
        self._window_open.set()
        if self._pong_owed:
            self._pong_owed = False
            await self.transport.send_message({"type": "pong"})

    async def _on_subscribe(self, message: dict[str, Any]) -> None:
        operation_id = message["id"]
        if self.state is not ConnectionState.ACKNOWLEDGED:
            await self.transport.close(CloseCode.UNAUTHORIZED, "Unauthorized")
        elif operation_id in self.operations:
            await self.transport.close(
                CloseCode.SUBSCRIBER_ALREADY_EXISTS,
                close_reason(f"Subscriber for {operation_id} already exists"),
            )
        else:
            await self._start_operation(operation_id, operation_request(message["payload"]))

    async def _on_complete(self, message: dict[str, Any]) -> None:
        self.operations.cancel(message["id"])

    _handlers = {
        "connection_init": (_on_connection_init, (OPTIONAL_PAYLOAD,)),
        "ping": (_on_ping, (OPTIONAL_PAYLOAD,)),
        "pong": (_on_pong, (OPTIONAL_PAYLOAD,)),
        "subscribe": (_on_subscribe, (OPERATION_ID, REQUEST_PAYLOAD)),
        "complete": (_on_complete, (OPERATION_ID,)),
    }

    async def _keepalive(self, interval: float) -> None:
        """Ping every ``interval`` (unless a ping is already out) to learn the peer is alive."""
        while True:
            await asyncio.sleep(interval)
            await self._ping()

    async def _ping(self) -> None:
        """Send a ping unless one is unanswered; close 3008 if it stays so for ``pong_timeout``."""
        if self._ping_in_flight is not None:
            return
        self._ping_in_flight = self._frames_sent
        if self.options.pong_timeout is not None:
            self._pong_deadline = self._spawn(self._expect_pong(self.options.pong_timeout))
        await self.transport.send_message({"type": "ping"})

    async def _expect_pong(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        await self.transport.close(CloseCode.KEEPALIVE_TIMEOUT, "Keepalive timeout")

    async def _wait_for_send_window(self) -> None:
        """Hold operation frames while ``send_window`` of them are unread; ask for a pong
        half-way so a client that keeps reading never waits."""
        window = self.options.send_window
        while self._frames_sent - self._frames_read >= window:
            self._window_open.clear()
            await self._ping()
            await self._window_open.wait()
        self._frames_sent += 1
        if self._frames_sent - self._frames_read >= window // 2:
            await self._ping()

    def _result_message(self, operation_id: str, payload: Payload) -> ServerMessage:
        return {"id": operation_id, "type": "next", "payload": payload}

    def _error_message(self, operation_id: str, errors: list[dict[str, Any]]) -> ServerMessage:
        return {"id": operation_id, "type": "error", "payload": errors}
