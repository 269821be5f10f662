"""The protocol state machines on their own: fed decoded messages, no Channels, no socket."""

from __future__ import annotations

import asyncio
from typing import Any

from gqlchannels.delivery import Delivered
from gqlchannels.execution import Executor, OperationRequest
from gqlchannels.protocols import (
    CloseCode,
    LegacyWSProtocol,
    ProtocolOptions,
    TransportWSProtocol,
)
from gqlchannels.protocols.base import OperationTasks, Transport
from gqlchannels.protocols.frames import ServerMessage
from tests.schema import schema


class FakeTransport:
    """Records what a protocol sends and closes with (a ``Transport``, checked by mypy below)."""

    def __init__(self) -> None:
        self.executor = Executor(schema, offload_sync=False)
        self.sent: list[ServerMessage] = []
        self.closed: tuple[int, str] | None = None
        self.new_frame = asyncio.Event()
        self.finished: list[str] = []
        self.behind = False

    async def send_message(self, message: ServerMessage) -> None:
        self.sent.append(message)
        self.new_frame.set()

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)

    async def authorize(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        return None

    async def admit(
        self, operation_id: str, request: OperationRequest, delivered: Delivered
    ) -> Any:
        return None

    def client_is_behind(self) -> bool:
        return self.behind

    def operation_finished(self, operation_id: str) -> None:
        self.finished.append(operation_id)

    def operation_listens(self, operation_id: str, topics: frozenset[str]) -> None:
        pass

    async def frames(self, count: int) -> list[ServerMessage]:
        async with asyncio.timeout(5):
            while len(self.sent) < count:
                self.new_frame.clear()
                await self.new_frame.wait()
        return self.sent[:count]


def fake_transport() -> FakeTransport:
    """A fake that type-checks as the port it fakes, so it cannot drift from it silently."""
    transport: Transport = FakeTransport()
    assert isinstance(transport, FakeTransport)
    return transport


async def test_ping_is_answered_by_pong():
    connection = fake_transport()
    protocol = TransportWSProtocol(connection, ProtocolOptions())
    await protocol.receive({"type": "ping"})
    assert connection.sent == [{"type": "pong"}]


async def test_pings_from_a_client_that_is_behind_owe_one_pong_and_ask_for_proof_of_reading():
    connection = fake_transport()
    protocol = TransportWSProtocol(connection, ProtocolOptions(pong_timeout=None))
    connection.behind = True
    for _ in range(100):
        await protocol.receive({"type": "ping"})
    assert connection.sent == [{"type": "ping"}]


async def test_the_owed_pong_goes_out_once_the_client_answers_the_servers_ping():
    connection = fake_transport()
    protocol = TransportWSProtocol(connection, ProtocolOptions(pong_timeout=None))
    connection.behind = True
    for _ in range(3):
        await protocol.receive({"type": "ping"})
    connection.behind = False
    await protocol.receive({"type": "pong"})
    await protocol.receive({"type": "ping"})
    assert connection.sent == [{"type": "ping"}, {"type": "pong"}, {"type": "pong"}]


async def test_an_unsolicited_pong_releases_no_owed_pong():
    connection = fake_transport()
    protocol = TransportWSProtocol(connection, ProtocolOptions(pong_timeout=None))
    await protocol.receive({"type": "pong"})
    connection.behind = True
    await protocol.receive({"type": "ping"})
    await protocol.receive({"type": "pong"})  # answers the server's ping: releases the pong
    await protocol.receive({"type": "pong"})  # unsolicited: nothing more
    assert connection.sent == [{"type": "ping"}, {"type": "pong"}]


async def test_transport_ws_closes_4400_on_a_non_object_message():
    connection = fake_transport()
    protocol = TransportWSProtocol(connection, ProtocolOptions())
    await protocol.receive(["connection_init"])
    assert connection.closed == (CloseCode.BAD_REQUEST, "Message must be a JSON object")


async def test_legacy_answers_a_non_object_message_with_connection_error():
    connection = fake_transport()
    protocol = LegacyWSProtocol(connection, ProtocolOptions())
    await protocol.receive(3)
    assert connection.sent == [
        {"type": "connection_error", "payload": {"message": "Message must be a JSON object"}}
    ]
    assert connection.closed is None


async def test_a_query_runs_to_completion_after_the_ack():
    connection = fake_transport()
    protocol = TransportWSProtocol(connection, ProtocolOptions(keepalive_interval=None))
    await protocol.receive({"type": "connection_init"})
    assert await connection.frames(1) == [{"type": "connection_ack"}]
    await protocol.receive({"type": "subscribe", "id": "1", "payload": {"query": "{ hello }"}})
    assert await connection.frames(3) == [
        {"type": "connection_ack"},
        {"id": "1", "type": "next", "payload": {"data": {"hello": "Hello, world!"}}},
        {"id": "1", "type": "complete"},
    ]
    await protocol.stop()


async def test_without_an_init_timeout_no_timer_is_started():
    protocol = TransportWSProtocol(
        fake_transport(), ProtocolOptions(connection_init_wait_timeout=None)
    )
    protocol.start()
    assert protocol._background == set()


async def test_stop_waits_for_every_operation_to_finish(fresh_probe):
    connection = fake_transport()
    protocol = LegacyWSProtocol(connection, ProtocolOptions(keepalive_interval=None))
    await protocol.receive({"type": "connection_init"})
    query = 'subscription { waitForever(key: "w") }'
    await protocol.receive({"type": "start", "id": "1", "payload": {"query": query}})
    await asyncio.wait_for(fresh_probe.started["w"].wait(), 5)
    assert await protocol.stop() == 0
    assert fresh_probe.finalized["w"].is_set()


async def test_registry_knows_an_operation_before_it_first_runs():
    registry = OperationTasks()
    ran = asyncio.Event()

    async def operation() -> None:
        ran.set()

    registry.start("1", operation())
    assert "1" in registry and not ran.is_set()
    await registry.wait_all(5)
    assert "1" not in registry and ran.is_set()


async def test_registry_waits_for_operations_stopped_earlier():
    registry = OperationTasks()
    cleaned = asyncio.Event()
    entered = asyncio.Event()

    async def operation() -> None:
        try:
            entered.set()
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # a finally that itself awaits
            cleaned.set()

    registry.start("1", operation())
    await entered.wait()
    registry.cancel("1")
    assert "1" not in registry
    assert await registry.wait_all(5) == 0
    assert cleaned.is_set()
