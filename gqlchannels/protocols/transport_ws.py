"""``graphql-transport-ws``, the protocol of the graphql-ws library.

Every deviation from the message grammar closes the socket with 4400, as the spec demands;
operation-level failures (invalid documents, resolver errors) are ``error`` messages that
leave the socket and every other operation alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .base import (
    BaseProtocol,
    CloseCode,
    ConnectionState,
    close_reason,
    optional_object,
    parse_request,
)


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

    async def receive(self, message: Any) -> None:
        """Handle one decoded frame."""
        if not isinstance(message, dict):
            await self._bad_request("Message must be a JSON object")
            return
        handler = self._handlers.get(message.get("type"))  # type: ignore[arg-type]
        if handler is None:
            await self._bad_request(f"Invalid message type {message.get('type')!r}")
            return
        await handler(self, message)

    async def receive_malformed(self, reason: str) -> None:
        """Any frame that is not a JSON text object closes the socket with 4400."""
        await self._bad_request(reason)

    async def _bad_request(self, reason: str) -> None:
        await self.connection.close(CloseCode.BAD_REQUEST, close_reason(reason))

    async def _on_connection_init(self, message: dict[str, Any]) -> None:
        payload = message.get("payload")
        if not optional_object(payload):
            await self._bad_request("connection_init payload must be an object")
        elif self.state is not ConnectionState.WAITING_FOR_INIT:
            await self.connection.close(
                CloseCode.TOO_MANY_INIT_REQUESTS, "Too many initialisation requests"
            )
        else:
            self.state = ConnectionState.INITIALISING
            self._spawn(self._initialise(payload or {}))

    async def _reject(self, message: str) -> None:
        await self.connection.close(CloseCode.FORBIDDEN, close_reason(message or "Forbidden"))

    async def _on_ping(self, message: dict[str, Any]) -> None:
        if not optional_object(message.get("payload")):
            await self._bad_request("ping payload must be an object")
        else:
            await self.connection.send_message({"type": "pong"})

    async def _on_pong(self, message: dict[str, Any]) -> None:
        if not optional_object(message.get("payload")):
            await self._bad_request("pong payload must be an object")
        elif self._ping_in_flight is not None:
            self._frames_read = self._ping_in_flight
            self._ping_in_flight = None
            if self._pong_deadline is not None:
                self._pong_deadline.cancel()
            self._window_open.set()

    async def _on_subscribe(self, message: dict[str, Any]) -> None:
        operation_id = message.get("id")
        request = parse_request(message.get("payload"))
        if not isinstance(operation_id, str) or not operation_id or request is None:
            await self._bad_request("subscribe needs a string id and a payload with a string query")
        elif self.state is not ConnectionState.ACKNOWLEDGED:
            await self.connection.close(CloseCode.UNAUTHORIZED, "Unauthorized")
        elif operation_id in self.operations:
            await self.connection.close(
                CloseCode.SUBSCRIBER_ALREADY_EXISTS,
                close_reason(f"Subscriber for {operation_id} already exists"),
            )
        else:
            await self._start_operation(operation_id, request)

    async def _on_complete(self, message: dict[str, Any]) -> None:
        operation_id = message.get("id")
        if not isinstance(operation_id, str):
            await self._bad_request("complete needs a string id")
        else:
            self.operations.cancel(operation_id)

    _handlers = {
        "connection_init": _on_connection_init,
        "ping": _on_ping,
        "pong": _on_pong,
        "subscribe": _on_subscribe,
        "complete": _on_complete,
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
        await self.connection.send_message({"type": "ping"})

    async def _expect_pong(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        await self.connection.close(CloseCode.KEEPALIVE_TIMEOUT, "Keepalive timeout")

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

    def _result_message(self, operation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"id": operation_id, "type": "next", "payload": payload}

    def _error_message(self, operation_id: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": operation_id, "type": "error", "payload": errors}
