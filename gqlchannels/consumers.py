"""``GraphQLWSConsumer``: the thin Channels adapter between a WebSocket and a protocol.

It accepts the socket with the negotiated subprotocol, bounds and decodes frames, owns the one
guarded send every outgoing frame goes through, and hands everything else to the protocol's
state machine (``gqlchannels.protocols``).

Its whole life runs inside one ``try``/``finally``: however the connection ends (the client
closes or vanishes, a handler or a user's hook raises, the server cancels the application
on shutdown), the same teardown runs, and it runs once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.utils import await_many_dispatch
from django.core.exceptions import PermissionDenied
from graphql import GraphQLError

from . import conf, control, drain, sessions, signals
from .context import GraphQLWSContext
from .delivery import Delivered
from .execution import Executor, OperationRequest, resolve_schema
from .guarded import GuardedSocket
from .hub import Hub
from .json import MalformedJSON, dumps, loads
from .metrics import counters
from .protocols import (
    PROTOCOLS,
    BaseProtocol,
    CloseCode,
    ConnectionRejected,
    OperationRefused,
    ProtocolOptions,
)
from .protocols.frames import ServerMessage
from .servers import ServerSocket
from .tracking.records import ConnectionRecord, OperationRecord

if TYPE_CHECKING:
    from asgiref.typing import (
        ASGIReceiveCallable,
        ASGISendCallable,
        WebSocketConnectEvent,
        WebSocketDisconnectEvent,
        WebSocketReceiveEvent,
    )
    from channels.consumer import _ChannelScope

logger = logging.getLogger("gqlchannels.consumer")


class GraphQLWSConsumer(AsyncWebsocketConsumer):
    """Serves GraphQL over WebSocket, speaking ``graphql-transport-ws`` and legacy ``graphql-ws``.

    Route it with ``GraphQLWSConsumer.as_asgi(schema=schema, **options)``, or without
    ``schema`` to use ``GQLCHANNELS["SCHEMA"]``. Subclass it to override the hooks
    ``on_connect``, ``on_operation``, ``get_context`` and ``on_disconnect``. The inherited
    ``send()`` goes through the guarded send too: after the socket closed it drops the frame
    quietly, and binary frames are refused (the protocols are text only).
    """

    #: A schema for subclasses to set instead of passing ``schema=`` to ``as_asgi``.
    schema: ClassVar[Any] = None

    def __init__(self, schema: Any = None, **options: Any):
        super().__init__()
        # The options were checked once, by as_asgi: this runs for every connection.
        self._schema_source = schema if schema is not None else self.schema
        self._options = options
        self.protocol: BaseProtocol | None = None
        self.executor: Executor
        #: Names this connection in the hub, tracking rows, admin actions and audit probes.
        self.connection_id = uuid.uuid4().hex
        #: This process's hub, which reaches the connection from other processes.
        self.hub: Hub | None = None
        #: What the registry shows of this connection, as of its last change.
        self.record: ConnectionRecord
        self.socket: GuardedSocket
        self._drain: drain.LoopDrain | None = None
        self._torn_down = False

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> Any:
        """The ASGI application; unknown options, options of the wrong kind and a ``schema``
        that is not a schema fail here, at import, not on first connect."""
        conf.check_options({key: value for key, value in initkwargs.items() if key != "schema"})
        if initkwargs.get("schema") is not None:
            resolve_schema(initkwargs["schema"])
        return super().as_asgi(**initkwargs)

    def option(self, name: str) -> Any:
        """An option's value: from ``as_asgi(...)`` if given there, else from settings."""
        if name in self._options:
            return self._options[name]
        return conf.get(name.upper())

    # -- ASGI plumbing ---------------------------------------------------------------------

    async def __call__(
        self, scope: _ChannelScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Run the connection on the client's frames alone, and tear it down however it ends.

        Broadcast events arrive through the per-process hub, so this consumer does not listen
        on a channel of its own and a channel-layer fault cannot end the connection. Once it
        has sent a close frame itself, it ends without waiting for the server's
        ``websocket.disconnect`` (which some servers send only after the client's answer). A
        cancellation while the socket is open is the server stopping (Daphne cancels every
        application on shutdown and sends no close frame): the client gets 1012 first.
        """
        self.scope = scope
        self.base_send = send
        self.socket = GuardedSocket(ServerSocket(send), self.connection_id, self._closed)
        try:
            # types-channels types the callables as returning receive callables: they return
            # events.
            await await_many_dispatch(
                [receive, self._closed_by_us],  # type: ignore[list-item]
                self.dispatch,
            )
        except StopConsumer:
            pass
        except asyncio.CancelledError:
            if self.socket.is_open:
                # The server gave up on this application: Daphne's shutdown cancels them all,
                # and its checker cancels one still busy 10 s after its client left. Either
                # way only this connection ends; the loop keeps accepting others.
                await self.server_stopping()
                if self._drain is not None:
                    self._drain.hooks_due = True
            raise
        finally:
            await self._teardown()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Route one ASGI event to its handler (without a database round trip per frame).

        An exception from a handler is a fault of ours or of a hook, never of the client: it
        is logged once with its traceback, the connection closes 4500 (legacy sends
        ``connection_error`` first) and the consumer ends, so the teardown runs.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        try:
            await handler(message)
        except StopConsumer:
            raise
        except Exception:
            logger.exception(
                "Internal error handling %s on connection %s", message["type"], self.connection_id
            )
            await self._internal_error()
            raise StopConsumer from None

    async def _closed_by_us(self) -> WebSocketDisconnectEvent:
        """A ``websocket.disconnect`` of our own, once this side has closed the socket."""
        await self.socket.closed_here.wait()
        return {"type": "websocket.disconnect", "code": 1000, "reason": None}

    async def _internal_error(self) -> None:
        try:
            if self.protocol is not None:
                await self.protocol.internal_error()
            else:
                await self.close(CloseCode.INTERNAL_SERVER_ERROR, "Internal server error")
        except Exception:  # the connection ends anyway; the first traceback says why
            logger.debug("Could not report the internal error to the client", exc_info=True)

    async def _teardown(self) -> None:
        """Stop every operation and wait (bounded) for each one's ``finally``, leave the hub,
        close the registry rows and run ``on_disconnect``; once, whatever ended the connection.
        """
        if self._torn_down:
            return
        self._torn_down = True
        self.socket.gone()
        try:
            if self.protocol is not None:
                await self.protocol.stop()
        finally:
            if self.socket.was_opened:
                protocol = self.protocol.name if self.protocol is not None else None
                counters.recorder.connection_closed(protocol, self.socket.close_code)
            control.get_control_plane().detach(self.connection_id)
            if self.protocol is not None:
                signals.send_robust(
                    signals.connection_closed,
                    type(self),
                    consumer=self,
                    connection_id=self.connection_id,
                )
            try:
                await self.on_disconnect()
            except Exception:
                logger.exception("on_disconnect raised on connection %s", self.connection_id)
            if self._drain is not None:
                await self._drain.left(self)

    async def websocket_connect(self, message: WebSocketConnectEvent) -> None:
        """Accept with the client's preferred enabled subprotocol, or accept and close 4406."""
        self.executor = Executor.for_schema(
            resolve_schema(self._schema_source or conf.get("SCHEMA"))
        )
        chosen = self.choose_subprotocol(self.scope.get("subprotocols") or [])
        await self.accept(chosen)
        self.socket.opened(self.option("max_outbound_buffer_bytes"))
        self._drain = drain.watch(self)
        if self._drain.stopping:
            await self.server_stopping()
            return
        if chosen is None:
            await self.close(CloseCode.SUBPROTOCOL_NOT_ACCEPTABLE, "Subprotocol not acceptable")
            return
        self.protocol = PROTOCOLS[chosen](self, self._protocol_options())
        counters.recorder.connection_opened(chosen)
        self.protocol.start()
        self.hub = control.get_control_plane().attach(self.connection_id, self)
        self.record = ConnectionRecord.of(
            self.scope, self.connection_id, await self._hub_channel(), chosen
        )
        signals.send_robust(
            signals.connection_opened, type(self), consumer=self, record=self.record
        )

    async def _hub_channel(self) -> str:
        """The hub channel that reaches this connection from outside ("" when none can)."""
        if self.hub is None:
            return ""
        try:
            return await self.hub.channel()
        except Exception as exc:  # only the admin's Disconnect and the probe cannot reach it
            logger.debug("No hub channel for connection %s: %r", self.connection_id, exc)
            return ""

    def choose_subprotocol(self, offered: Iterable[str]) -> str | None:
        """The first subprotocol in the client's order that is enabled here."""
        enabled = self.option("protocols")
        return next((name for name in offered if name in enabled and name in PROTOCOLS), None)

    def _protocol_options(self) -> ProtocolOptions:
        return ProtocolOptions.from_options(self.option)

    async def websocket_receive(self, message: WebSocketReceiveEvent) -> None:
        """Bound, decode and hand one frame to the protocol."""
        if self.protocol is None or not self.socket.is_open:
            return
        self.socket.server.pace_reading()
        text = message.get("text")
        if text is None:
            await self.protocol.receive_malformed("Binary frames are not supported")
            return
        limit = self.option("max_message_bytes")
        if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
            await self.protocol.receive_malformed(f"Message larger than {limit} bytes")
            return
        try:
            decoded = loads(text, max_depth=self.option("max_frame_depth"))
        except MalformedJSON:
            await self.protocol.receive_malformed("Message is not valid JSON")
            return
        await self.protocol.receive(decoded)

    async def websocket_disconnect(self, message: WebSocketDisconnectEvent) -> None:
        """The socket is gone: end the consumer (its teardown runs in ``__call__``)."""
        self.socket.gone(message.get("code"))
        raise StopConsumer

    def expire_at(self, when: datetime | float) -> None:
        """End this connection when its credentials end, e.g. at a token's ``exp``: at
        ``when`` (an aware datetime, or a UNIX time) it closes 4403, legacy after
        ``connection_error``. Call it from ``on_connect``; a later call moves the moment."""
        moment = when.timestamp() if isinstance(when, datetime) else float(when)
        if self.protocol is not None:
            self.protocol.end_session_in(moment - time.time())

    def identities(self) -> frozenset[str]:
        """Who this connection acts for, as ``gqlchannels.control.disconnect_user`` and the
        session receivers name them: its user and its Django session, as of now."""
        return sessions.identities(self.scope)

    async def end_session(self, reason: str) -> None:
        """Close because the credentials ended (4403; legacy ``connection_error`` first)."""
        if self.protocol is not None:
            await self.protocol.end_session(reason)
        else:
            await self.close(CloseCode.FORBIDDEN, reason)

    async def server_stopping(self) -> None:
        """Close with 1012 (Service Restart): the server is stopping, come back soon."""
        await self.close(CloseCode.SERVICE_RESTART, "Service Restart")

    # -- the Transport port the protocols use -------------------------------------------------

    async def send_message(self, message: ServerMessage) -> None:
        """Send one frame through the guarded send (``gqlchannels.guarded``): dropped quietly
        once the socket is closing or gone, never raised for a client that left. A message
        that cannot be encoded raises UnencodableJSON to the caller, and the socket stays as
        it was."""
        if self.socket.is_open:
            await self.socket.send_text(dumps(message), message.get("type"))

    def client_is_behind(self) -> bool:
        """Whether the server holds unsent bytes for this client (False when it does not say)."""
        return bool(self.socket.server.buffered_bytes())

    async def send(  # type: ignore[override]  # Channels' own override, as its stubs say
        self, text_data: str | None = None, bytes_data: bytes | None = None, close: bool = False
    ) -> None:
        """Channels' familiar ``send``, routed through the same guarded send as every frame
        (a subclass that writes ``await self.send(...)`` gets the same guarantees); GraphQL
        over WebSocket has text frames only."""
        if bytes_data is not None:
            raise TypeError("GraphQL over WebSocket sends text frames only")
        if text_data is not None:
            await self.socket.send_text(text_data)
        if close:
            await self.close()

    async def complete_operation(self, operation_id: str) -> None:
        """End one of this connection's operations from the server's side (the control
        plane's ``complete``): it is cancelled and the client gets ``complete``."""
        if self.protocol is not None:
            await self.protocol.complete_operation(operation_id)

    async def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the socket once, and stop every operation (their frames would be dropped)."""
        await self.socket.close(code, reason)

    def _closed(self) -> None:
        if self.protocol is not None:
            self.protocol.halt()

    async def authorize(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Run ``on_connect``; its False, ConnectionRejected or PermissionDenied rejects."""
        try:
            result = await self.on_connect(payload)
        except (ConnectionRejected, PermissionDenied) as exc:
            raise ConnectionRejected(str(exc) or "Forbidden") from None
        except Exception:
            logger.warning("on_connect raised; rejecting the connection", exc_info=True)
            raise ConnectionRejected("Forbidden") from None
        if result is False:
            raise ConnectionRejected("Forbidden")
        user = self.scope.get("user")
        if user is not self.record.user:
            self.record = dataclasses.replace(self.record, user=user)
            signals.send_robust(
                signals.connection_updated, type(self), consumer=self, record=self.record
            )
        return result if isinstance(result, dict) else None

    async def admit(
        self, operation_id: str, request: OperationRequest, delivered: Delivered
    ) -> Any:
        """Run ``on_operation`` and build this operation's context; the operation's record
        carries ``delivered``, its count of result frames."""
        try:
            allowed = await self.on_operation(operation_id, request)
        except GraphQLError as error:
            raise OperationRefused(error.message) from None
        if allowed is False:
            raise OperationRefused()
        context = await self.get_context(operation_id)
        if signals.operation_started.has_listeners(type(self)):  # else no record is needed
            operation_type, operation_name = await self.executor.describe(request)
            signals.operation_started.send(
                sender=type(self),
                consumer=self,
                operation_id=operation_id,
                request=request,
                context=context,
                record=OperationRecord.of(
                    self.connection_id,
                    operation_id,
                    request,
                    operation_type,
                    operation_name,
                    delivered,
                ),
            )
        return context

    def operation_finished(self, operation_id: str) -> None:
        """Announce the end of an operation that ``admit`` let in."""
        signals.send_robust(
            signals.operation_finished,
            type(self),
            consumer=self,
            connection_id=self.connection_id,
            operation_id=operation_id,
        )

    def operation_listens(self, operation_id: str, topics: frozenset[str]) -> None:
        """Announce that an operation ``admit`` let in listens to new ``topics`` (all so far)."""
        signals.send_robust(
            signals.operation_topics,
            type(self),
            consumer=self,
            connection_id=self.connection_id,
            operation_id=operation_id,
            topics=topics,
        )

    # -- hooks --------------------------------------------------------------------------

    async def on_connect(self, payload: dict[str, Any]) -> bool | dict[str, Any] | None:
        """Decide on ``connection_init``: return False (or raise ConnectionRejected) to refuse
        it, a dict to send as the ``connection_ack`` payload, anything else to accept."""
        return None

    async def on_operation(self, operation_id: str, request: OperationRequest) -> bool | None:
        """Decide on one operation: return False, or raise OperationRefused or a GraphQLError,
        to answer it with an ``error`` message instead of running it."""
        return None

    async def get_context(self, operation_id: str) -> Any:
        """The ``info.context`` of one operation (a GraphQLWSContext unless overridden)."""
        assert self.protocol is not None
        return GraphQLWSContext(
            scope=self.scope,
            connection_params=self.protocol.connection_params,
            consumer=self,
            operation_id=operation_id,
        )

    async def on_disconnect(self) -> None:
        """Called once the socket has closed and every operation has finished."""
