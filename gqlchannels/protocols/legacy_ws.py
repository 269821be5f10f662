"""Legacy ``graphql-ws``, the protocol of Apollo's subscriptions-transport-ws.

It has no close codes of its own: frames the server cannot use are answered with
``connection_error`` and the socket stays open; a problem with one operation is an ``error``
for that id. The real client pipelines ``start`` right behind ``connection_init``, so
operations that arrive while the init is pending wait for the ack and then run in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..execution import MASKED_MESSAGE
from .base import (
    BaseProtocol,
    CloseCode,
    ConnectionState,
    close_reason,
    optional_object,
    parse_request,
)


class LegacyWSProtocol(BaseProtocol):
    """State machine of one legacy ``graphql-ws`` connection."""

    name = "graphql-ws"

    async def receive(self, message: Any) -> None:
        """Handle one decoded frame."""
        if not isinstance(message, dict):
            await self._connection_error("Message must be a JSON object")
            return
        handler = self._handlers.get(message.get("type"))  # type: ignore[arg-type]
        if handler is not None:
            await handler(self, message)
        elif isinstance(message.get("id"), str):
            await self._operation_error(
                message["id"], f"Invalid message type {message.get('type')!r}"
            )
        else:
            await self._connection_error(f"Invalid message type {message.get('type')!r}")

    async def receive_malformed(self, reason: str) -> None:
        """A frame that cannot be parsed gets ``connection_error``; the socket stays open."""
        await self._connection_error(reason)

    async def internal_error(self) -> None:
        """``connection_error`` first (legacy clients read no close codes), then close 4500."""
        await self._connection_error(MASKED_MESSAGE)
        await super().internal_error()

    async def _connection_error(self, message: str) -> None:
        await self.connection.send_message(
            {"type": "connection_error", "payload": {"message": message}}
        )

    async def _operation_error(self, operation_id: str, message: str) -> None:
        await self.connection.send_message(
            self._error_message(operation_id, [{"message": message}])
        )

    async def _on_connection_init(self, message: dict[str, Any]) -> None:
        payload = message.get("payload")
        if self.state is not ConnectionState.WAITING_FOR_INIT:
            await self._connection_error("Connection already initialised")
        elif not optional_object(payload):
            await self._reject("connection_init payload must be an object", CloseCode.BAD_REQUEST)
        else:
            self.state = ConnectionState.INITIALISING
            self._spawn(self._initialise(payload or {}))

    async def _reject(self, message: str, code: int = CloseCode.FORBIDDEN) -> None:
        await self._connection_error(message or "Forbidden")
        await self.connection.close(code, close_reason(message or "Forbidden"))

    async def _on_start(self, message: dict[str, Any]) -> None:
        operation_id = message.get("id")
        if not isinstance(operation_id, str) or not operation_id:
            await self._connection_error("start needs a string id")
            return
        request = parse_request(message.get("payload"))
        if request is None:
            await self._operation_error(operation_id, "start needs a payload with a string query")
        elif self.state is ConnectionState.WAITING_FOR_INIT:
            await self._operation_error(operation_id, "connection_init must come before start")
        else:
            # A reused id replaces the operation running under it, as the reference server does.
            self.operations.cancel(operation_id)
            await self._start_operation(operation_id, request)

    async def _on_stop(self, message: dict[str, Any]) -> None:
        operation_id = message.get("id")
        if not isinstance(operation_id, str):
            await self._connection_error("stop needs a string id")
        elif self.operations.cancel(operation_id):
            await self.connection.send_message({"id": operation_id, "type": "complete"})

    async def _on_connection_terminate(self, message: dict[str, Any]) -> None:
        await self.connection.close(CloseCode.NORMAL, "")

    _handlers = {
        "connection_init": _on_connection_init,
        "start": _on_start,
        "stop": _on_stop,
        "connection_terminate": _on_connection_terminate,
    }

    async def _after_ack(self) -> None:
        if self.options.keepalive_interval:
            await self.connection.send_message({"type": "ka"})
        await super()._after_ack()

    async def _keepalive(self, interval: float) -> None:
        """Send ``ka`` every ``interval``: the legacy protocol has no way to ask for an answer."""
        while True:
            await asyncio.sleep(interval)
            await self.connection.send_message({"type": "ka"})

    def _result_message(self, operation_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {"id": operation_id, "type": "data", "payload": payload}

    def _error_message(self, operation_id: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": operation_id, "type": "error", "payload": errors[0]}
