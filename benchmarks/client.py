"""A lean GraphQL-over-WebSocket client for load generation, speaking both subprotocols.

Lean because thousands of them share one process with the measurement: no GraphQL parsing,
no per-message objects beyond the decoded JSON, and a subscription's bookkeeping is a few
integer updates (``Stream``). It answers graphql-transport-ws pings, so servers with flow
control (gqlchannels' ``SEND_WINDOW``) see a client that keeps reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

try:
    import orjson

    def dumps(value: Any) -> str:
        """Encode a frame."""
        return orjson.dumps(value).decode()

    def loads(frame: str | bytes) -> Any:
        """Decode a frame."""
        return orjson.loads(frame)

except ImportError:  # pragma: no cover - orjson is in the project's requirements
    import json

    def dumps(value: Any) -> str:
        """Encode a frame."""
        return json.dumps(value)

    def loads(frame: str | bytes) -> Any:
        """Decode a frame."""
        return json.loads(frame)


TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
PROTOCOLS = (TRANSPORT_WS, LEGACY_WS)
TICK_SUBSCRIPTION = "subscription Tick($topic: String!) { tick(topic: $topic) { seq sentAt pad } }"
#: The frame type that starts an operation, and the one that carries a result, per protocol.
START = {TRANSPORT_WS: "subscribe", LEGACY_WS: "start"}
RESULT = {TRANSPORT_WS: "next", LEGACY_WS: "data"}


class ProtocolFailure(RuntimeError):
    """The server answered something the benchmark did not expect (an error, a close)."""


class Stream:
    """What one subscription received of events ``0 .. expect - 1``.

    Events with a negative ``seq`` are priming events, sent until every subscriber has seen
    one so that the measured events start only once every subscription is listening; they are
    noted (``primed``) and otherwise ignored. A duplicate is a ``seq`` seen before; a
    reordered event is one older than the newest seen so far; lost is what never came.
    """

    __slots__ = (
        "count",
        "duplicates",
        "expect",
        "first_sent",
        "highest",
        "last_received",
        "latencies",
        "on_complete",
        "primed",
        "reordered",
        "seen",
        "unexpected",
    )

    def __init__(self, expect: int, on_complete: Any = None):
        self.expect = expect
        self.seen = bytearray(expect)
        self.count = 0
        self.duplicates = 0
        self.reordered = 0
        self.unexpected = 0
        self.highest = -1
        self.primed = False
        self.latencies: list[float] = []
        self.first_sent = float("inf")
        self.last_received = 0.0
        self.on_complete = on_complete

    def record(self, seq: int, sent_at: float, received_at: float) -> None:
        """Account for one event."""
        if seq < 0:
            self.primed = True
            return
        if seq >= self.expect:
            self.unexpected += 1
            return
        if self.seen[seq]:
            self.duplicates += 1
            return
        self.seen[seq] = 1
        self.count += 1
        if seq < self.highest:
            self.reordered += 1
        else:
            self.highest = seq
        self.latencies.append(received_at - sent_at)
        if sent_at < self.first_sent:
            self.first_sent = sent_at
        self.last_received = received_at
        if self.count == self.expect and self.on_complete is not None:
            self.on_complete()

    @property
    def complete(self) -> bool:
        """Whether every expected event arrived."""
        return self.count >= self.expect


class GraphQLClient:
    """One WebSocket connection: ``open`` (through the ack), ``subscribe`` to ticks,
    ``query``, then ``close`` politely or ``abort`` (TCP reset, no close frame)."""

    def __init__(self, url: str, protocol: str = TRANSPORT_WS):
        if protocol not in PROTOCOLS:
            raise ValueError(f"Unknown subprotocol {protocol!r}")
        self.url = url
        self.protocol = protocol
        self.ws: ClientConnection | None = None
        self.stream: Stream | None = None
        self.errors: list[Any] = []
        self._reader: asyncio.Task[None] | None = None
        self._acked = asyncio.Event()
        self._queries: dict[str, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)

    async def open(self, timeout: float = 30.0) -> float:
        """Connect and complete ``connection_init``; the seconds it took."""
        began = time.perf_counter()
        async with asyncio.timeout(timeout):
            self.ws = await connect(
                self.url,
                subprotocols=[self.protocol],  # type: ignore[list-item]
                compression=None,
                ping_interval=None,
                open_timeout=None,
                close_timeout=2,
                max_size=None,
            )
            self._reader = asyncio.get_running_loop().create_task(self._read())
            await self.ws.send(dumps({"type": "connection_init", "payload": {}}))
            await self._acked.wait()
        return time.perf_counter() - began

    async def subscribe(self, topic: str, stream: Stream, operation_id: str = "tick") -> None:
        """Start the tick subscription on ``topic``; events are accounted in ``stream``."""
        assert self.ws is not None
        self.stream = stream
        await self.ws.send(
            dumps(
                {
                    "id": operation_id,
                    "type": START[self.protocol],
                    "payload": {"query": TICK_SUBSCRIPTION, "variables": {"topic": topic}},
                }
            )
        )

    async def query(self, text: str, timeout: float = 10.0) -> Any:
        """Run a query; its ``data``."""
        assert self.ws is not None
        operation_id = f"q{next(self._ids)}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queries[operation_id] = future
        try:
            await self.ws.send(
                dumps(
                    {"id": operation_id, "type": START[self.protocol], "payload": {"query": text}}
                )
            )
            async with asyncio.timeout(timeout):
                return await future
        finally:
            self._queries.pop(operation_id, None)

    def abort(self) -> None:
        """Vanish: reset the TCP connection without a close frame, as a dropped network does."""
        if self.ws is not None:
            transport = self.ws.transport
            sock = transport.get_extra_info("socket")
            # A connection that failed part-way may have closed its socket already (EBADF).
            with contextlib.suppress(OSError):
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        if self._reader is not None:
            self._reader.cancel()

    def connected(self) -> bool:
        """Whether the connection is open and being read."""
        return self._reader is not None and not self._reader.done()

    async def close(self) -> None:
        """Close politely (close frame, then wait briefly for the server's)."""
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()

    async def _read(self) -> None:
        assert self.ws is not None
        ws = self.ws
        result_type = RESULT[self.protocol]
        try:
            async for raw in ws:
                received_at = time.time()
                message = loads(raw)
                kind = message.get("type")
                if kind == result_type:
                    operation_id = message.get("id")
                    payload = message.get("payload") or {}
                    if operation_id == "tick" and self.stream is not None:
                        tick = (payload.get("data") or {}).get("tick")
                        if tick is None:
                            self.errors.append(payload.get("errors"))
                        else:
                            self.stream.record(tick["seq"], tick["sentAt"], received_at)
                    else:
                        future = self._queries.get(operation_id)
                        if future is not None and not future.done():
                            future.set_result(payload.get("data"))
                elif kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind == "connection_ack":
                    self._acked.set()
                elif kind in ("error", "connection_error"):
                    self.errors.append(message)
                    future = self._queries.get(message.get("id"))
                    if future is not None and not future.done():
                        future.set_exception(ProtocolFailure(str(message)))
        except ConnectionClosed:
            pass
