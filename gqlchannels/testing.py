"""A client for tests: GraphQL over WebSocket against your consumer, without a server.

``GraphQLWSCommunicator`` is channels' ``WebsocketCommunicator`` taught both subprotocols, so a
test says what it means instead of assembling frames::

    async with GraphQLWSCommunicator(application) as communicator:
        assert await communicator.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}
        async for result in communicator.subscribe("subscription { count(to: 3) }"):
            ...

It speaks ``graphql-transport-ws`` (the default) or legacy ``graphql-ws`` with the same calls,
so one test can be parametrized over both protocols.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Mapping
from types import TracebackType
from typing import Any

from channels.testing import WebsocketCommunicator

from .client_frames import Header, as_error_list, decoded_frame, with_origin
from .exceptions import (
    ConnectionClosed,
    ConnectionRefused,
    GraphQLWSError,
    HandshakeRefused,
    OperationError,
    ProtocolError,
)

__all__ = [
    "LEGACY_WS",
    "TRANSPORT_WS",
    "ConnectionClosed",
    "ConnectionRefused",
    "GraphQLWSCommunicator",
    "GraphQLWSError",
    "HandshakeRefused",
    "OperationError",
    "ProtocolError",
    "listening",
]

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"

#: Frames that only keep the connection alive; they are dropped wherever frames are read.
_KEEPALIVE_TYPES = frozenset({"ka", "pong"})

#: Seconds between two looks at the hub while ``listening`` waits.
_LISTENING_POLL = 0.01

#: Queued by ``disconnect`` behind the application's last event, to wake waiting readers.
_DISCONNECTED = "gqlchannels.testing.disconnected"


class GraphQLWSCommunicator(WebsocketCommunicator):
    """A GraphQL over WebSocket client for tests, on channels' ``WebsocketCommunicator``.

    Why a subclass rather than a separate client: everything channels' communicator offers
    (``send_json_to``, ``receive_nothing``, ``disconnect`` ...) stays available for tests that
    need to step outside the protocol, and the ASGI application runs in the test's own event
    loop, so server-side effects can be awaited directly.

    ``async with`` opens the socket offering ``protocol``, sends ``connection_init`` with
    ``connection_params`` and waits for ``connection_ack``; leaving the block disconnects.
    Frames are read by one reader at a time and routed by operation id, so several operations
    can run at once and their frames may interleave. Keep-alive frames (legacy ``ka``, and
    ``pong``) are dropped wherever they arrive, and server ``ping`` is answered with ``pong``,
    so the keep-alive settings of the server under test never change what a test sees (and
    graphql-transport-ws flow control, which waits for those pongs, never stalls a reader).
    Every wait is bounded by ``timeout`` seconds.

    ``application`` is the ASGI app (``GraphQLWSConsumer.as_asgi(...)``, or the project's
    router); ``path`` is the URL path routed to it. ``headers`` are ASGI header pairs (bytes
    or str); unless one of them is an Origin, the first host of ``ALLOWED_HOSTS`` is sent as
    the Origin (``http://testserver`` in a new project under pytest-django), which both
    Channels' ``AllowedHostsOriginValidator`` and gqlchannels' ``OriginValidator`` admit.
    """

    def __init__(
        self,
        application: Any,
        path: str = "/graphql/",
        *,
        protocol: str = TRANSPORT_WS,
        connection_params: Mapping[str, Any] | None = None,
        headers: Iterable[Header] | None = None,
        timeout: float = 5.0,
    ):
        if protocol not in (TRANSPORT_WS, LEGACY_WS):
            raise ValueError(
                f"protocol must be {TRANSPORT_WS!r} or {LEGACY_WS!r}, not {protocol!r}"
            )
        super().__init__(application, path, headers=with_origin(headers), subprotocols=[protocol])
        self.protocol = protocol
        self.connection_params = connection_params
        self.timeout = timeout
        #: The ``connection_ack`` payload, once acknowledged (None when it carried none).
        self.ack_payload: dict[str, Any] | None = None
        self._ids = itertools.count(1)
        # Frames read but not yet consumed, per active operation id; a frame for an id not in
        # here belongs to an operation already finished and is dropped, as the spec allows.
        self._inbox: dict[str, deque[dict[str, Any]]] = {}
        self._connection_frames: deque[dict[str, Any]] = deque()
        self._read_lock = asyncio.Lock()
        self._acknowledged = False
        self._close: tuple[int | None, str] | None = None
        self._disconnected = False

    # -- connection lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> GraphQLWSCommunicator:
        """Connect and initialise, so the block starts on an acknowledged connection.

        Raises ConnectionRefused (with the close code) when the server picks another
        subprotocol or closes instead of acknowledging, and HandshakeRefused (a
        ConnectionRefused) when the application refuses the socket before accepting it (HTTP
        403); the socket is disconnected before raising, so the application never outlives
        the test.
        """
        try:
            await self._open()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.disconnect()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Disconnect, which makes the server cancel every operation still running."""
        await self.disconnect()

    async def _open(self) -> None:
        accepted, detail = await self.connect(timeout=self.timeout)
        if not accepted:
            raise HandshakeRefused()
        if detail != self.protocol:
            raise ConnectionRefused(
                self._queued_close_code(),
                f"The server accepted subprotocol {detail!r} instead of {self.protocol!r}",
            )
        init: dict[str, Any] = {"type": "connection_init"}
        if self.connection_params is not None:
            init["payload"] = dict(self.connection_params)
        await self.send_json_to(init)
        try:
            frame = await self._next_frame(None, "connection_ack")
        except ConnectionRefused:
            raise
        except ConnectionClosed as closed:
            raise ConnectionRefused(closed.code, closed.reason) from None
        if frame["type"] == "connection_error" and self.protocol == LEGACY_WS:
            payload = frame.get("payload")
            code = None
            try:  # the server closes right after connection_error; report its code
                await self._next_frame(None, "the close after connection_error")
            except ConnectionClosed as closed:
                code = closed.code
            except TimeoutError:
                pass
            message = payload.get("message", "") if isinstance(payload, dict) else str(payload)
            raise ConnectionRefused(code, message, payload)
        if frame["type"] != "connection_ack":
            raise ProtocolError(f"Expected connection_ack, got {frame!r}")
        self.ack_payload = frame.get("payload")
        self._acknowledged = True

    def _queued_close_code(self) -> int | None:
        """The code of a close frame already waiting in the output, without waiting for one."""
        with contextlib.suppress(asyncio.QueueEmpty):
            event = self.output_queue.get_nowait()
            if event.get("type") == "websocket.close":
                return int(event.get("code", 1000))
        return None

    async def disconnect(self, code: int = 1000, timeout: float | None = None) -> None:
        """Close the socket from the client side and wait until the application has finished.

        Idempotent, so a test may disconnect abruptly inside ``async with`` (to check what
        the server does when a client vanishes) and the block's exit stays harmless. Waits up
        to ``timeout`` (default: the communicator's) because the consumer awaits every
        operation's ``finally`` before it ends.
        """
        if self._disconnected:
            return
        self._disconnected = True
        try:
            if self.future.done():
                # Nothing left to tell; but an application that crashed says so here, so a
                # crash after the test's last read does not go unnoticed.
                if not self.future.cancelled():
                    self.future.result()
                return
            await super().disconnect(
                code=code, timeout=self.timeout if timeout is None else timeout
            )
        finally:
            # Wake a reader still waiting (say, a subscription iterated in another task):
            # nothing else will arrive, and it should say so rather than time out.
            self.output_queue.put_nowait({"type": _DISCONNECTED, "code": code})

    # -- operations ---------------------------------------------------------------------------

    async def execute(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> dict[str, Any]:
        """Run a query or mutation and return its result payload (``{"data": ..., ...}``).

        A result with resolver errors is returned as is (``data`` next to ``errors``), because
        that is a successful GraphQL response; an ``error`` message (invalid document, refused
        operation) raises OperationError, because there is no result to return. The operation
        is awaited up to its ``complete``, so nothing of it is left unread afterwards.
        """
        operation_id = await self._start(query, variables, operation_name)
        result: dict[str, Any] | None = None
        try:
            while True:
                frame = await self._next_frame(operation_id, f"the result of {operation_id}")
                kind = frame["type"]
                if kind == self._result_type:
                    if result is not None:
                        raise ProtocolError(
                            f"Operation {operation_id} sent more than one result: "
                            "use subscribe() for subscriptions"
                        )
                    result = frame.get("payload")
                elif kind == "complete":
                    self._inbox.pop(operation_id, None)
                    if result is None:
                        raise ProtocolError(f"Operation {operation_id} completed without a result")
                    return result
                else:
                    self._end_with_error(operation_id, frame)
        finally:
            await self._stop(operation_id)

    def subscribe(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Start an operation on first iteration and yield each result payload until
        ``complete``; an ``error`` message raises OperationError.

        The operation is sent lazily, when the iterator is first advanced, so creating the
        iterator has no effect of its own. Leaving early, by ``aclose()`` or by breaking out of
        ``async for``, sends ``complete`` (graphql-transport-ws) or ``stop`` (legacy) for the
        operation, which is what a real client does when a component unmounts. ``aclose()``
        (or ``contextlib.aclosing``) does it at once; a bare ``break`` relies on the event
        loop's finaliser for async generators, which runs it on the next loop iteration.
        """
        return self._subscription(query, variables, operation_name)

    async def _subscription(
        self,
        query: str,
        variables: Mapping[str, Any] | None,
        operation_name: str | None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        # This frame must not be referenced by the communicator (no stored exceptions, no
        # stored generator), so that dropping the iterator finalises it at once.
        operation_id = await self._start(query, variables, operation_name)
        try:
            while True:
                frame = await self._next_frame(operation_id, f"a result of {operation_id}")
                kind = frame["type"]
                if kind == self._result_type:
                    yield frame.get("payload")  # type: ignore[misc]
                elif kind == "complete":
                    self._inbox.pop(operation_id, None)
                    return
                else:
                    self._end_with_error(operation_id, frame)
        finally:
            await self._stop(operation_id)

    @property
    def _result_type(self) -> str:
        return "next" if self.protocol == TRANSPORT_WS else "data"

    def _end_with_error(self, operation_id: str, frame: dict[str, Any]) -> None:
        """Finish ``operation_id`` on an ``error`` frame (raise OperationError), or complain."""
        self._inbox.pop(operation_id, None)
        if frame["type"] == "error":
            raise OperationError(operation_id, as_error_list(frame.get("payload")))
        raise ProtocolError(f"Unexpected {frame['type']!r} frame for operation {operation_id}")

    async def _start(
        self,
        query: str,
        variables: Mapping[str, Any] | None,
        operation_name: str | None,
    ) -> str:
        if not self._acknowledged:
            raise GraphQLWSError("Use 'async with communicator:' before running operations")
        if self._disconnected or self._close is not None:
            raise ConnectionClosed(*(self._close or (None, "The test disconnected")))
        operation_id = str(next(self._ids))
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = dict(variables)
        if operation_name is not None:
            payload["operationName"] = operation_name
        # Registered before sending, so that no frame of it can arrive unrouted.
        self._inbox[operation_id] = deque()
        message_type = "subscribe" if self.protocol == TRANSPORT_WS else "start"
        await self.send_json_to({"id": operation_id, "type": message_type, "payload": payload})
        return operation_id

    async def _stop(self, operation_id: str) -> None:
        """Tell the server the client stops listening, unless the operation already ended."""
        if self._inbox.pop(operation_id, None) is None:
            return
        if self._disconnected or self._close is not None or self.future.done():
            return
        message_type = "complete" if self.protocol == TRANSPORT_WS else "stop"
        await self.send_json_to({"id": operation_id, "type": message_type})

    # -- reading and routing ------------------------------------------------------------------

    async def _next_frame(self, operation_id: str | None, waiting_for: str) -> dict[str, Any]:
        """The next frame of ``operation_id`` (None: a connection-level frame).

        Only one coroutine reads from the application at a time (the lock); it files frames
        of other operations in their inboxes and releases the lock after each frame, so a
        coroutine waiting for another id finds its frame on its next turn.
        """
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    frame = self._take(operation_id)
                    if frame is not None:
                        return frame
                    async with self._read_lock:
                        frame = self._take(operation_id)
                        if frame is not None:
                            return frame
                        await self._read_one()
        except TimeoutError:
            if self.future.done():
                self.future.result()  # the application crashed: show that, not a timeout
            raise TimeoutError(
                f"Nothing received for {waiting_for} within {self.timeout} s"
            ) from None

    def _take(self, operation_id: str | None) -> dict[str, Any] | None:
        queue = self._connection_frames if operation_id is None else self._inbox.get(operation_id)
        if queue:
            return queue.popleft()
        if self._close is not None:
            raise ConnectionClosed(*self._close)
        if operation_id is not None and queue is None:
            raise GraphQLWSError(f"Operation {operation_id} is not running")
        return None

    async def _read_one(self) -> None:
        """Read one event from the application and file it where it belongs."""
        if self.output_queue.empty() and self.future.done():
            self.future.result()  # re-raise the application's exception, if any
            self._close = (None, "The application has finished")
            raise ConnectionClosed(*self._close)
        event = await self.output_queue.get()
        if event["type"] == _DISCONNECTED:
            self._close = (event["code"], "The test disconnected")
            raise ConnectionClosed(*self._close)
        if event["type"] == "websocket.close":
            self._close = (event.get("code", 1000), event.get("reason") or "")
            raise ConnectionClosed(*self._close)
        frame = decoded_frame(event)
        kind = frame["type"]
        if kind in _KEEPALIVE_TYPES:
            return
        if kind == "ping" and self.protocol == TRANSPORT_WS:
            await self.send_json_to({"type": "pong"})
            return
        operation_id = frame.get("id")
        if isinstance(operation_id, str):
            inbox = self._inbox.get(operation_id)
            if inbox is not None:
                inbox.append(frame)
            return
        if self._acknowledged:
            raise ProtocolError(f"Unexpected connection-level frame {frame!r}")
        self._connection_frames.append(frame)


async def listening(*topics: str, timeout: float = 5.0) -> None:
    """Wait until subscriptions of this process listen to every one of ``topics``.

    A subscription joins its topics after its operation started, and an event broadcast
    before that is not delivered to it: a test that subscribes and then broadcasts waits here
    in between. Raises TimeoutError after ``timeout`` seconds.
    """
    from .broadcast import group_name
    from .hub import get_hub

    groups = {group_name(topic) for topic in topics}
    try:
        async with asyncio.timeout(timeout):
            # The hub offers no event for a join; its group list is cheap to read.
            while not groups <= set(get_hub().groups()):  # noqa: ASYNC110
                await asyncio.sleep(_LISTENING_POLL)
    except TimeoutError:
        raise TimeoutError(f"No subscription listens to {topics!r} after {timeout} s") from None
