"""Legacy ``graphql-ws``, the protocol of Apollo's subscriptions-transport-ws.

It has no close codes of its own: frames the server cannot use are answered with
``connection_error`` and the socket stays open; a problem with one operation is an ``error``
for that id. The real client pipelines ``start`` right behind ``connection_init``, so
operations that arrive while the init is pending wait for the ack and then run in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..close_codes import CloseCode
from ..execution import MASKED_MESSAGE
from .base import BaseProtocol, ConnectionState, close_reason
from .frames import Payload, ServerMessage
from .messages import (
    OPERATION_ID,
    OPTIONAL_PAYLOAD,
    REQUEST_PAYLOAD,
    is_operation_id,
    message_type,
    operation_request,
)


class LegacyWSProtocol(BaseProtocol):
    """State machine of one legacy ``graphql-ws`` connection."""

    name = "graphql-ws"

    async def _refuse(self, message: dict[str, Any] | None, reason: str) -> None:
        """No close for a bad frame: an ``error`` for the operation it names by a usable id,
        else ``connection_error``. A ``connection_init`` it cannot use ends the connection,
        as a rejected one does."""
        if message is None:
            await self._connection_error(reason)
        elif (
            self.state is ConnectionState.WAITING_FOR_INIT
            and message_type(message) == "connection_init"
        ):
            await self._reject(reason, CloseCode.BAD_REQUEST)
        elif is_operation_id(message.get("id")):
            await self._operation_error(message["id"], reason)
        else:
            await self._connection_error(reason)

    async def internal_error(self) -> None:
        """``connection_error`` first (legacy clients read no close codes), then close 4500."""
        await self._connection_error(MASKED_MESSAGE)
        await super().internal_error()

    async def _connection_error(self, message: str) -> None:
        await self.transport.send_message(
            {"type": "connection_error", "payload": {"message": message}}
        )

    async def _operation_error(self, operation_id: str, message: str) -> None:
        await self.transport.send_message(self._error_message(operation_id, [{"message": message}]))

    async def _on_connection_init(self, message: dict[str, Any]) -> None:
        if self.state is not ConnectionState.WAITING_FOR_INIT:
            await self._connection_error("Connection already initialised")
        else:
            self.state = ConnectionState.INITIALISING
            self._spawn(self._initialise(message.get("payload") or {}))

    async def _reject(self, message: str, code: int = CloseCode.FORBIDDEN) -> None:
        await self._connection_error(message or "Forbidden")
        await self.transport.close(code, close_reason(message or "Forbidden"))

    async def _on_start(self, message: dict[str, Any]) -> None:
        operation_id = message["id"]
        if self.state is ConnectionState.WAITING_FOR_INIT:
            await self._operation_error(operation_id, "connection_init must come before start")
        else:
            # A reused id replaces the operation running under it, as the reference server does.
            self.operations.cancel(operation_id)
            await self._start_operation(operation_id, operation_request(message["payload"]))

    async def _on_stop(self, message: dict[str, Any]) -> None:
        await self.complete_operation(message["id"])

    async def _on_connection_terminate(self, message: dict[str, Any]) -> None:
        await self.transport.close(CloseCode.NORMAL, "")

    _handlers = {
        "connection_init": (_on_connection_init, (OPTIONAL_PAYLOAD,)),
        "start": (_on_start, (OPERATION_ID, REQUEST_PAYLOAD)),
        "stop": (_on_stop, (OPERATION_ID,)),
        "connection_terminate": (_on_connection_terminate, ()),
    }

    async def _after_ack(self) -> None:
        if self.options.keepalive_interval:
            await self.transport.send_message({"type": "ka"})
        await super()._after_ack()

    async def _keepalive(self, interval: float) -> None:
        """Send ``ka`` every ``interval``: the legacy protocol has no way to ask for an answer."""
        while True:
            await asyncio.sleep(interval)
            await self.transport.send_message({"type": "ka"})

    def _result_message(self, operation_id: str, payload: Payload) -> ServerMessage:
        return {"id": operation_id, "type": "data", "payload": payload}

    def _error_message(self, operation_id: str, errors: list[dict[str, Any]]) -> ServerMessage:
        return {"id": operation_id, "type": "error", "payload": errors[0]}
