"""What both subprotocols share: the transport port they run on, the per-connection
set of operation tasks, and the state machine skeleton (init timer, ack, operations).

Nothing here imports Channels: a protocol is driven by feeding it decoded messages, and talks
back through the small ``Transport`` port, so each protocol can be tested on its own.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol

from .. import conf
from ..close_codes import CloseCode
from ..delivery import Delivered
from ..exceptions import ConnectionRejected, OperationRefused
from ..execution import MASKED_MESSAGE, Executor, OperationFailed, OperationRequest
from ..json import UnencodableJSON
from ..metrics import counters
from ..operation_scope import OperationScope
from ..operation_watch import OperationWatch
from .frames import ConnectionAck, Payload, ServerMessage
from .messages import Field, message_type, mistyped_field

logger = logging.getLogger("gqlchannels.protocols")

#: A close reason must fit the 123 bytes a close frame leaves for it.
MAX_CLOSE_REASON_BYTES = 123
#: Results an operation sends before it gives the event loop a turn, whatever its source does.
RESULTS_PER_TURN = 16


def _default(option: str) -> Any:
    """The default of the per-route option ``option``, from the settings table."""
    setting = conf.TABLE[option.upper()]
    assert setting.route, f"{setting.name} is not a per-route option"
    return setting.default


class Transport(Protocol):
    """What a protocol needs from the transport under it (the consumer implements this)."""

    executor: Executor

    async def send_message(self, message: ServerMessage) -> None:
        """Send one frame; must never raise, whatever state the socket is in."""

    async def close(self, code: int, reason: str = "") -> None:
        """Close the socket (at most once) and stop the protocol."""

    def client_is_behind(self) -> bool:
        """Whether the server still holds bytes for the client that its socket has not taken
        (the client is not reading, or not yet)."""

    async def authorize(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Run ``on_connect``; return the ack payload or raise ConnectionRejected."""

    async def admit(
        self, operation_id: str, request: OperationRequest, delivered: Delivered
    ) -> Any:
        """Run ``on_operation`` and build the context; raise OperationRefused to refuse.
        ``delivered`` counts the operation's result frames as they go out."""

    def operation_finished(self, operation_id: str) -> None:
        """Called once for every admitted operation, however it ended."""

    def operation_listens(self, operation_id: str, topics: frozenset[str]) -> None:
        """Called when an operation listens to new topics, with all its topics so far."""


@dataclass(frozen=True)
class ProtocolOptions:
    """Timing and limits of one connection: per-route options of the settings table
    (``gqlchannels.conf``), which gives their defaults; ``from_options`` fills every field."""

    connection_init_wait_timeout: float | None = _default("connection_init_wait_timeout")
    keepalive_interval: float | None = _default("keepalive_interval")
    pong_timeout: float | None = _default("pong_timeout")
    max_operations_per_connection: int = _default("max_operations_per_connection")
    max_document_chars_per_connection: int = _default("max_document_chars_per_connection")
    disconnect_timeout: float = _default("disconnect_timeout")
    send_window: int = _default("send_window")
    max_operation_id_length: int = _default("max_operation_id_length")

    @classmethod
    def from_options(cls, option: Callable[[str], Any]) -> ProtocolOptions:
        """The options of one connection, each field's value from ``option(name)``."""
        return cls(**{field.name: option(field.name) for field in fields(cls)})


class OperationTasks:
    """Every task of one connection's operations, by operation id.

    A task is registered as it is created, before its first await, and stays known until it
    has finished, including after it was cancelled, so ``cancel_all`` can await every
    ``finally`` however the connection ended.
    """

    def __init__(self) -> None:
        self._active: dict[str, asyncio.Task[None]] = {}
        self._unfinished: set[asyncio.Task[None]] = set()

    def __contains__(self, operation_id: object) -> bool:
        return operation_id in self._active

    def __len__(self) -> int:
        return len(self._active)

    def start(self, operation_id: str, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` as the task of ``operation_id``."""
        task = asyncio.get_running_loop().create_task(
            coroutine, name=f"gqlchannels-op-{operation_id}"
        )
        self._active[operation_id] = task
        self._unfinished.add(task)
        task.add_done_callback(lambda done: self._forget(operation_id, done))
        return task

    def owns(self, operation_id: str, task: asyncio.Task[Any] | None) -> bool:
        """Whether ``task`` is still the live task of ``operation_id`` (not stopped or replaced)."""
        return task is not None and self._active.get(operation_id) is task

    def cancel(self, operation_id: str) -> bool:
        """Stop one operation without waiting for it; return whether it was active."""
        task = self._active.pop(operation_id, None)
        if task is None:
            return False
        task.cancel()
        return True

    def cancel_all(self) -> None:
        """Cancel every operation, including ones stopped earlier that have not finished."""
        self._active.clear()
        for task in self._unfinished:
            task.cancel()

    async def wait_all(self, timeout: float) -> int:
        """Wait (up to ``timeout``) until every task has finished; return how many had not."""
        tasks = list(self._unfinished)
        if not tasks:
            return 0
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            logger.warning(
                "%d operation(s) still running %ss after disconnect", len(pending), timeout
            )
        return len(pending)

    def _forget(self, operation_id: str, task: asyncio.Task[None]) -> None:
        self._unfinished.discard(task)
        if self._active.get(operation_id) is task:
            del self._active[operation_id]
        if not task.cancelled() and task.exception() is not None:
            # The operation catches its own errors; this is a fault in our code or a hook.
            logger.error(
                "Operation %s ended with an exception", operation_id, exc_info=task.exception()
            )


#: A protocol's handler of one message type, called with a message whose fields are checked.
Handler = Callable[[Any, dict[str, Any]], Awaitable[None]]


class ConnectionState(enum.Enum):
    """Where a connection is in its ``connection_init`` handshake."""

    WAITING_FOR_INIT = "waiting"
    INITIALISING = "initialising"
    ACKNOWLEDGED = "acknowledged"
    CLOSED = "closed"


class BaseProtocol(ABC):
    """The state machine both subprotocols share; subclasses map it to their messages."""

    name: ClassVar[str]
    #: Each client message type: its handler, and the fields the handler reads, which
    #: ``receive`` checks first.
    _handlers: ClassVar[dict[str, tuple[Handler, tuple[Field, ...]]]]

    def __init__(self, transport: Transport, options: ProtocolOptions):
        self.transport = transport
        self.options = options
        self.state = ConnectionState.WAITING_FOR_INIT
        self.operations = OperationTasks()
        self.connection_params: dict[str, Any] = {}
        self._acknowledged = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._expiry: asyncio.Task[None] | None = None
        #: Characters of the documents of the operations running now.
        self._document_chars = 0

    # -- lifecycle, driven by the transport -------------------------------------------------

    def start(self) -> None:
        """Start the ``connection_init`` timer; call only after the socket was accepted."""
        timeout = self.options.connection_init_wait_timeout
        if timeout is not None:
            self._spawn(self._expire_init(timeout))

    async def receive(self, message: Any) -> None:
        """Handle one decoded frame (any JSON value): check the JSON type of every field its
        type's handler reads, then run the handler; refuse anything else the protocol's way."""
        if not isinstance(message, dict):
            await self._refuse(None, "Message must be a JSON object")
            return
        kind = message_type(message)
        if kind is None:
            await self._refuse(message, "Message type must be a string")
            return
        known = self._handlers.get(kind)
        if known is None:
            await self._refuse(message, f"Invalid message type {kind!r}")
            return
        handler, fields = known
        problem = mistyped_field(message, fields)
        if problem is not None:
            await self._refuse(message, f"Invalid {kind} message: {problem}")
            return
        operation_id = message.get("id")
        limit = self.options.max_operation_id_length
        if isinstance(operation_id, str) and len(operation_id) > limit:
            # Refused as a frame without a usable id: echoing it would cost its size again.
            await self._refuse(None, f"Operation id longer than {limit} characters")
            return
        await handler(self, message)

    async def receive_malformed(self, reason: str) -> None:
        """Handle a frame that could not be decoded, was binary, or was too large."""
        await self._refuse(None, reason)

    @abstractmethod
    async def _refuse(self, message: dict[str, Any] | None, reason: str) -> None:
        """Answer a frame the protocol cannot use; ``message`` is the frame when it is a JSON
        object (its fields may have any JSON type), None when it is not."""

    async def internal_error(self) -> None:
        """Close 4500 after a fault of the server's own (legacy first says so in a frame)."""
        await self.transport.close(CloseCode.INTERNAL_SERVER_ERROR, MASKED_MESSAGE)

    async def end_session(self, reason: str) -> None:
        """The connection's credentials ended (logout, expiry): refused as a rejected
        ``connection_init`` is, 4403 (legacy ``connection_error`` first), so a client that
        reconnects must bring fresh credentials."""
        await self._reject(reason)

    def end_session_in(self, seconds: float) -> None:
        """End the session ``seconds`` from now (a token's expiry); a later call replaces it."""
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = self._spawn(self._end_session_after(seconds))

    async def _end_session_after(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))
        await self.end_session("Credentials expired")

    def halt(self) -> None:
        """Cancel timers and every operation without waiting (the socket is closing)."""
        self.state = ConnectionState.CLOSED
        for task in self._background:
            task.cancel()
        self.operations.cancel_all()

    async def stop(self) -> int:
        """Halt, then wait (bounded by ``disconnect_timeout``) until every operation's
        ``finally`` has run and every timer has ended, so nothing of the connection outlives
        it (a cancelled timer's frame would keep the whole connection alive until it wakes).
        Idempotent; returns how many operations were still running at the deadline."""
        self.halt()
        timers = [task for task in self._background if task is not asyncio.current_task()]
        unfinished = await self.operations.wait_all(self.options.disconnect_timeout)
        if timers:
            await asyncio.wait(timers, timeout=self.options.disconnect_timeout)
        return unfinished

    # -- connection_init ----------------------------------------------------------------

    async def _initialise(self, payload: dict[str, Any]) -> None:
        """Run ``on_connect`` off the receive loop, then acknowledge (or reject)."""
        self.connection_params = payload
        try:
            ack_payload = await self.transport.authorize(payload)
        except ConnectionRejected as rejection:
            await self._reject(rejection.message)
            return
        if self.state is not ConnectionState.INITIALISING:
            return
        self.state = ConnectionState.ACKNOWLEDGED
        ack: ConnectionAck = {"type": "connection_ack"}
        if ack_payload:
            ack["payload"] = ack_payload
        await self.transport.send_message(ack)
        await self._after_ack()
        # Released only now, so operations pipelined before the ack answer after it.
        self._acknowledged.set()

    @abstractmethod
    async def _reject(self, message: str) -> None:
        """Refuse ``connection_init`` the way the protocol says."""

    async def _after_ack(self) -> None:
        interval = self.options.keepalive_interval
        if interval:
            self._spawn(self._keepalive(interval))

    @abstractmethod
    async def _keepalive(self, interval: float) -> None:
        """Run for the life of the connection, keeping it (and our view of the peer) alive."""

    async def _expire_init(self, timeout: float) -> None:
        await asyncio.sleep(timeout)
        if self.state is ConnectionState.WAITING_FOR_INIT:
            await self.transport.close(
                CloseCode.CONNECTION_INIT_TIMEOUT, "Connection initialisation timeout"
            )

    # -- operations ---------------------------------------------------------------------

    async def complete_operation(self, operation_id: str) -> bool:
        """End one running operation from the server's side (the admin's "Stop the selected
        operations"): cancel it, so its ``finally`` runs, and send the client ``complete``,
        which both subprotocols take as the end of that operation alone. False when no
        operation runs under ``operation_id``."""
        if not self.operations.cancel(operation_id):
            return False
        await self.transport.send_message({"id": operation_id, "type": "complete"})
        return True

    async def _start_operation(self, operation_id: str, request: OperationRequest) -> None:
        """Register and start one operation (it runs on the next loop turn), or refuse it
        with an ``error`` when the connection already runs as many as it may, or documents
        as large as it may (each running operation keeps its document parsed)."""
        limit = self.options.max_operations_per_connection
        size, size_limit = len(request.query), self.options.max_document_chars_per_connection
        if len(self.operations) >= limit:
            refusal = f"Too many operations on this connection (limit {limit})"
        elif self._document_chars + size > size_limit and operation_id not in self.operations:
            refusal = (
                f"The documents of this connection's operations would pass {size_limit} "
                "characters: complete some first"
            )
        else:
            task = self.operations.start(operation_id, self._run_operation(operation_id, request))
            self._document_chars += size
            task.add_done_callback(lambda _: self._document_done(size))
            return
        counters.recorder.operation_ended(
            self.name, counters.UNKNOWN, counters.REFUSED, started=False
        )
        await self.transport.send_message(self._error_message(operation_id, [{"message": refusal}]))

    def _document_done(self, size: int) -> None:
        self._document_chars -= size

    async def _run_operation(self, operation_id: str, request: OperationRequest) -> None:
        await self._acknowledged.wait()
        admitted = False
        delivered = Delivered()
        watch = OperationWatch(self.name)
        try:
            await watch.begin(self.transport.executor, request)
            context = await self.transport.admit(operation_id, request, delivered)
            admitted = True
            watch.admitted()
            scope = OperationScope(
                operation_id, functools.partial(self.transport.operation_listens, operation_id)
            )
            async for result in self.transport.executor.run(request, context, scope=scope):
                message = self._result_message(operation_id, result)
                if await self._send_for(operation_id, message) and watch.counts_deliveries:
                    watch.recorder.delivered(scope.event_sent_at())
                delivered.count += 1
                if delivered.count % RESULTS_PER_TURN == 0:
                    # A source that never suspends (and a server whose send never waits)
                    # would otherwise keep the loop from every other connection.
                    await asyncio.sleep(0)
        except OperationRefused as refusal:
            watch.refused()
            errors = [{"message": refusal.message}]
            await self._send_for(operation_id, self._error_message(operation_id, errors))
        except OperationFailed as failure:
            watch.failed(failure.errors)
            await self._send_for(operation_id, self._error_message(operation_id, failure.errors))
        except UnencodableJSON as refusal:
            logger.error(
                "A result of operation %s cannot be encoded as JSON: %s", operation_id, refusal
            )
            errors = [{"message": "The result cannot be encoded as JSON"}]
            watch.failed(errors)
            await self._send_for(operation_id, self._error_message(operation_id, errors))
        except Exception:
            logger.exception("Operation %s failed unexpectedly", operation_id)
            errors = [{"message": MASKED_MESSAGE}]
            watch.failed(errors)
            await self._send_for(operation_id, self._error_message(operation_id, errors))
        else:
            watch.completed()
            await self._send_for(operation_id, {"id": operation_id, "type": "complete"})
        finally:
            watch.end()
            if admitted:
                self.transport.operation_finished(operation_id)

    async def _send_for(self, operation_id: str, message: ServerMessage) -> bool:
        """Send a frame of one operation, unless the client stopped it or the id was reused;
        return whether it was handed to the transport.

        Waits first while the protocol's flow control says the client is behind.
        """
        await self._wait_for_send_window()
        if self.operations.owns(operation_id, asyncio.current_task()):
            await self.transport.send_message(message)
            return True
        return False

    async def _wait_for_send_window(self) -> None:  # noqa: B027 - a hook, a no-op by default
        """Return when the client may be sent one more operation frame (no limit here)."""

    @abstractmethod
    def _result_message(self, operation_id: str, payload: Payload) -> ServerMessage:
        """The message that carries one execution result."""

    @abstractmethod
    def _error_message(self, operation_id: str, errors: list[dict[str, Any]]) -> ServerMessage:
        """The message that ends an operation with errors."""

    # -- helpers -------------------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a connection-level task (timer, keepalive, init) that ``stop`` cancels; a fault
        in it (our code, or a hook such as ``on_connect``'s ack payload) closes 4500."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        logger.error("Internal error on a %s connection", self.name, exc_info=task.exception())
        if self.state is not ConnectionState.CLOSED:
            self._spawn(self.internal_error())


def close_reason(text: str) -> str:
    """``text`` cut to what fits in a close frame, on a character boundary."""
    encoded = text.encode()
    if len(encoded) <= MAX_CLOSE_REASON_BYTES:
        return text
    return encoded[: MAX_CLOSE_REASON_BYTES - 3].decode(errors="ignore") + "..."


#: The names these had before 0.2 (the port was ``Connection``, the task set a "registry").
Connection = Transport
OperationRegistry = OperationTasks
