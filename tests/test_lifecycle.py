"""Whatever ends a connection, the same teardown runs, once.

A fault of ours or of a user's hook while handling a frame closes 4500 (legacy says so in a
``connection_error`` first); a server that cancels the application (Daphne's shutdown) gets
1012 sent to the client; a result the encoder refuses is an ``error`` for that operation and
nothing else. In every case each operation's ``finally`` runs and the registry forgets the
connection. (Real servers stopped by SIGTERM: ``tests/test_drain.py``.)
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import pytest
from channels.testing import WebsocketCommunicator

from gqlchannels import drain, tracking
from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.models import Connection
from tests.helpers import (
    LEGACY,
    TIMEOUT,
    TRANSPORT,
    closed_with,
    open_connection,
    open_socket,
    receive,
    result_type,
    start,
)

if TYPE_CHECKING:
    from asgiref.typing import WebSocketReceiveEvent

both_protocols = pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
HELD = 'subscription { waitForever(key: "held") }'


class FaultyConsumer(GraphQLWSConsumer):
    """A subclass whose own code raises on one frame, as a bug in a user's override would."""

    async def websocket_receive(self, message: WebSocketReceiveEvent) -> None:
        if message.get("text") == '"explode"':
            raise RuntimeError("a bug in the subclass")
        await super().websocket_receive(message)


class UnencodableAckConsumer(GraphQLWSConsumer):
    """``on_connect`` returns an ack payload the JSON encoder refuses."""

    async def on_connect(self, payload: dict[str, Any]) -> Any:
        return {"when": object()}


class FailingDisconnectConsumer(GraphQLWSConsumer):
    """``on_disconnect`` raises."""

    async def on_disconnect(self) -> None:
        raise RuntimeError("on_disconnect exploded")


class GreetingConsumer(GraphQLWSConsumer):
    """Uses the inherited ``send()``, before and after the socket closed."""

    async def on_connect(self, payload: dict[str, Any]) -> None:
        await self.send(text_data='{"type":"hello"}')

    async def on_disconnect(self) -> None:
        await self.send(text_data='{"type":"too late"}')


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """ERROR records of gqlchannels' loggers."""
    return [
        record
        for record in caplog.records
        if record.levelno >= logging.ERROR and record.name.startswith("gqlchannels")
    ]


async def registry_rows() -> int:
    """How many connection rows the registry holds after writing what is pending."""
    await tracking.get_tracker().flush()
    return await Connection.objects.acount()


async def holding(protocol: str, consumer: type[GraphQLWSConsumer] = GraphQLWSConsumer) -> Any:
    """An acknowledged connection with a live subscription whose row has been written."""
    communicator = await open_connection(protocol, consumer)
    await start(communicator, protocol, "held", HELD)
    await _started()
    assert await registry_rows() == 1
    return communicator


async def _started() -> None:
    from tests.schema import probe

    await asyncio.wait_for(probe.started["held"].wait(), TIMEOUT)


async def ended(communicator: WebsocketCommunicator) -> None:
    """Wait until the consumer's application has returned (it must not raise)."""
    await asyncio.wait_for(asyncio.shield(communicator.future), TIMEOUT)


@both_protocols
async def test_a_fault_while_handling_a_frame_closes_4500_and_runs_the_teardown(
    protocol, fresh_probe, caplog
):
    communicator = await holding(protocol, FaultyConsumer)

    await communicator.send_to(text_data='"explode"')

    if protocol == LEGACY:
        assert await receive(communicator) == {
            "type": "connection_error",
            "payload": {"message": "Internal server error"},
        }
    assert (await closed_with(communicator))[0] == 4500
    await ended(communicator)
    assert fresh_probe.finalized["held"].is_set()
    assert await registry_rows() == 0
    [logged] = errors_logged(caplog)
    assert logged.exc_info is not None and "a bug in the subclass" in str(logged.exc_info[1])


@both_protocols
async def test_a_hook_whose_ack_cannot_be_encoded_closes_4500(protocol, caplog):
    communicator = await open_socket(protocol, UnencodableAckConsumer)

    await communicator.send_json_to({"type": "connection_init"})

    if protocol == LEGACY:
        assert (await receive(communicator))["type"] == "connection_error"
    assert (await closed_with(communicator))[0] == 4500
    assert len(errors_logged(caplog)) == 1


@both_protocols
async def test_on_disconnect_that_raises_is_logged_and_every_operation_still_finished(
    protocol, fresh_probe, caplog
):
    communicator = await holding(protocol, FailingDisconnectConsumer)

    await communicator.disconnect()

    assert fresh_probe.finalized["held"].is_set()
    assert await registry_rows() == 0
    assert any("on_disconnect raised" in record.getMessage() for record in errors_logged(caplog))


@both_protocols
async def test_a_consumer_cancelled_by_its_server_closes_1012_and_runs_the_teardown(
    protocol, fresh_probe
):
    communicator = await holding(protocol)

    communicator.future.cancel()

    assert (await closed_with(communicator))[0] == 1012
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(communicator.future, TIMEOUT)
    assert fresh_probe.finalized["held"].is_set()
    assert await Connection.objects.acount() == 0  # written by the drain hook, not by us


async def test_a_connection_cancelled_by_its_server_does_not_close_the_others(fresh_probe):
    cancelled = await holding(TRANSPORT)
    kept = await open_connection(LEGACY)

    cancelled.future.cancel()
    assert (await closed_with(cancelled))[0] == 1012
    newcomer = await open_connection(TRANSPORT)  # acknowledged, not closed 1012

    await newcomer.send_json_to({"type": "ping"})
    assert await receive(newcomer) == {"type": "pong"}
    await start(kept, LEGACY, "still", "{ hello }")
    assert (await receive(kept))["type"] == "data"
    await newcomer.disconnect()
    await kept.disconnect()


async def test_the_drain_closes_every_connection_with_1012_and_deletes_their_rows(fresh_probe):
    communicators = [await holding(TRANSPORT), await open_connection(LEGACY)]

    await asyncio.wait_for(drain.get_drain().drain(window=0), TIMEOUT)

    for communicator in communicators:
        assert (await closed_with(communicator))[0] == 1012
    assert fresh_probe.finalized["held"].is_set()
    assert await Connection.objects.acount() == 0


async def test_a_connection_accepted_while_the_server_drains_is_closed_1012():
    drain.get_drain().stopping = True

    communicator = await open_socket(TRANSPORT)

    assert (await closed_with(communicator))[0] == 1012


@pytest.mark.parametrize(
    "query", ["{ nested(levels: 300) }", "{ hugeInteger }"], ids=["300-levels", "over-64-bits"]
)
@both_protocols
async def test_a_result_the_encoder_refuses_is_an_error_and_the_connection_lives_on(
    protocol, query, caplog
):
    communicator = await open_connection(protocol)

    await start(communicator, protocol, "bad", query)

    answer = await receive(communicator)
    assert answer["type"] == "error" and answer["id"] == "bad"
    assert "cannot be encoded as JSON" in str(answer["payload"])
    await start(communicator, protocol, "good", "{ hello }")
    assert (await receive(communicator))["type"] == result_type(protocol)
    assert any("cannot be encoded" in record.getMessage() for record in errors_logged(caplog))
    await communicator.disconnect()


async def test_the_inherited_send_goes_through_the_guarded_send(caplog):
    communicator = await open_socket(TRANSPORT, GreetingConsumer)

    await communicator.send_json_to({"type": "connection_init"})
    assert await receive(communicator) == {"type": "hello"}
    assert (await receive(communicator))["type"] == "connection_ack"
    await communicator.disconnect()

    await ended(communicator)  # the late send in on_disconnect was dropped, not raised
    assert not errors_logged(caplog)
