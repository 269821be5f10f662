"""Legacy graphql-ws (subscriptions-transport-ws): every message type, and our choices where
the spec is silent (PROTOCOLS.md section 4)."""

from __future__ import annotations

import asyncio

import pytest

from gqlchannels import CloseCode, ConnectionRejected
from gqlchannels.consumers import GraphQLWSConsumer
from tests.helpers import LEGACY, closed_with, open_connection, open_socket, receive, start


async def send_start(communicator, operation_id, query, **kw):
    await start(communicator, LEGACY, operation_id, query, **kw)


async def test_connection_init_gets_ack_then_ka():
    communicator = await open_socket(LEGACY)
    await communicator.send_json_to({"type": "connection_init", "payload": {}})
    assert await receive(communicator) == {"type": "connection_ack"}
    assert await receive(communicator) == {"type": "ka"}
    await communicator.disconnect()


async def test_ka_repeats_every_keepalive_interval():
    communicator = await open_connection(LEGACY, keepalive_interval=0.05)
    for _ in range(3):
        assert await receive(communicator) == {"type": "ka"}
    await communicator.disconnect()


async def test_no_ka_when_keepalive_is_off():
    communicator = await open_connection(LEGACY, keepalive_interval=None)
    await send_start(communicator, "q", "{ hello }")
    assert (await receive(communicator))["type"] == "data"
    await communicator.disconnect()


async def test_query_gets_data_then_complete():
    communicator = await open_connection(LEGACY)
    await send_start(communicator, "1", "{ hello }")
    assert await receive(communicator) == {
        "id": "1",
        "type": "data",
        "payload": {"data": {"hello": "Hello, world!"}},
    }
    assert await receive(communicator) == {"id": "1", "type": "complete"}
    await communicator.disconnect()


async def test_mutation_gets_data_then_complete():
    communicator = await open_connection(LEGACY)
    await send_start(communicator, "1", 'mutation { echo(text: "hi") }')
    assert (await receive(communicator))["payload"] == {"data": {"echo": "hi"}}
    assert await receive(communicator) == {"id": "1", "type": "complete"}
    await communicator.disconnect()


async def test_subscription_streams_data_then_complete():
    communicator = await open_connection(LEGACY)
    await send_start(communicator, "1", "subscription { count(to: 2) }")
    assert (await receive(communicator))["payload"] == {"data": {"count": 1}}
    assert (await receive(communicator))["payload"] == {"data": {"count": 2}}
    assert await receive(communicator) == {"id": "1", "type": "complete"}
    await communicator.disconnect()


async def test_stop_cancels_the_subscription_and_is_answered_by_complete(fresh_probe):
    communicator = await open_connection(LEGACY)
    await send_start(communicator, "1", 'subscription { waitForever(key: "w") }')
    await asyncio.wait_for(fresh_probe.started["w"].wait(), 5)
    await communicator.send_json_to({"type": "stop", "id": "1"})
    assert await receive(communicator) == {"id": "1", "type": "complete"}
    await asyncio.wait_for(fresh_probe.finalized["w"].wait(), 5)
    await communicator.disconnect()


async def test_stop_for_an_unknown_id_is_ignored():
    communicator = await open_connection(LEGACY)
    await communicator.send_json_to({"type": "stop", "id": "nope"})
    await send_start(communicator, "q", "{ hello }")
    assert (await receive(communicator))["id"] == "q"
    await communicator.disconnect()


async def test_start_pipelined_before_the_ack_runs_after_the_ack():
    communicator = await open_socket(LEGACY)
    await communicator.send_json_to({"type": "connection_init"})
    await send_start(communicator, "1", 'mutation { echo(text: "first") }')
    await send_start(communicator, "2", 'mutation { echo(text: "second") }')
    assert await receive(communicator) == {"type": "connection_ack"}
    assert await receive(communicator) == {"type": "ka"}
    frames = [await receive(communicator) for _ in range(4)]
    data = {
        frame["id"]: frame["payload"]["data"]["echo"] for frame in frames if frame["type"] == "data"
    }
    assert data == {"1": "first", "2": "second"}
    assert sorted(frame["id"] for frame in frames if frame["type"] == "complete") == ["1", "2"]
    await communicator.disconnect()


async def test_start_before_connection_init_gets_an_error():
    communicator = await open_socket(LEGACY)
    await send_start(communicator, "1", "{ hello }")
    message = await receive(communicator)
    assert message["type"] == "error" and message["id"] == "1"
    assert "connection_init" in message["payload"]["message"]
    await communicator.disconnect()


async def test_invalid_document_gets_a_single_error_object():
    communicator = await open_connection(LEGACY)
    await send_start(communicator, "1", "{ nope }")
    message = await receive(communicator)
    assert message["type"] == "error" and message["id"] == "1"
    assert "Cannot query field 'nope'" in message["payload"]["message"]
    await communicator.disconnect()


async def test_resolver_errors_are_in_the_data_payload():
    communicator = await open_connection(LEGACY)
    await send_start(communicator, "1", "{ hello refused }")
    payload = (await receive(communicator))["payload"]
    assert payload["data"] == {"hello": "Hello, world!", "refused": None}
    assert payload["errors"][0]["message"] == "Not allowed"
    await communicator.disconnect()


async def test_start_with_a_malformed_payload_gets_an_error_for_that_id():
    communicator = await open_connection(LEGACY)
    await communicator.send_json_to({"type": "start", "id": "1", "payload": {"query": 3}})
    message = await receive(communicator)
    assert message["type"] == "error" and message["id"] == "1"
    await communicator.disconnect()


async def test_a_reused_start_id_replaces_the_running_operation(fresh_probe):
    communicator = await open_connection(LEGACY)
    await send_start(communicator, "1", 'subscription { waitForever(key: "old") }')
    await asyncio.wait_for(fresh_probe.started["old"].wait(), 5)
    await send_start(communicator, "1", "{ hello }")
    await asyncio.wait_for(fresh_probe.finalized["old"].wait(), 5)
    assert (await receive(communicator))["payload"] == {"data": {"hello": "Hello, world!"}}
    assert await receive(communicator) == {"id": "1", "type": "complete"}
    await communicator.disconnect()


async def test_second_connection_init_gets_connection_error_and_the_socket_stays():
    communicator = await open_connection(LEGACY)
    await communicator.send_json_to({"type": "connection_init"})
    message = await receive(communicator)
    assert message == {
        "type": "connection_error",
        "payload": {"message": "Connection already initialised"},
    }
    await send_start(communicator, "q", "{ hello }")
    assert (await receive(communicator))["type"] == "data"
    await communicator.disconnect()


async def test_connection_terminate_closes_normally():
    communicator = await open_connection(LEGACY)
    await communicator.send_json_to({"type": "connection_terminate"})
    assert (await closed_with(communicator))[0] == CloseCode.NORMAL


class RaiseRejection(GraphQLWSConsumer):
    async def on_connect(self, payload):
        raise ConnectionRejected("Bad token")


async def test_rejected_init_gets_connection_error_then_close_4403():
    communicator = await open_socket(LEGACY, consumer=RaiseRejection)
    await communicator.send_json_to({"type": "connection_init"})
    assert await receive(communicator) == {
        "type": "connection_error",
        "payload": {"message": "Bad token"},
    }
    assert (await closed_with(communicator)) == (CloseCode.FORBIDDEN, "Bad token")


async def test_connection_init_with_a_non_object_payload_is_rejected():
    communicator = await open_socket(LEGACY)
    await communicator.send_json_to({"type": "connection_init", "payload": [1]})
    assert (await receive(communicator))["type"] == "connection_error"
    assert (await closed_with(communicator))[0] == CloseCode.BAD_REQUEST


async def test_no_connection_init_within_the_timeout_closes_4408():
    communicator = await open_socket(LEGACY, connection_init_wait_timeout=0.05)
    assert (await closed_with(communicator))[0] == CloseCode.CONNECTION_INIT_TIMEOUT


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("{not json", id="invalid-json"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="nested-too-deep"),
        pytest.param("[1, 2]", id="array"),
        pytest.param("17", id="number"),
        pytest.param("{}", id="no-type"),
        pytest.param('{"type": "unknown"}', id="unknown-type"),
        pytest.param('{"type": "ka"}', id="server-only-ka"),
        pytest.param('{"type": "start", "payload": {"query": "{hello}"}}', id="start-no-id"),
        pytest.param('{"type": "stop", "id": 5}', id="stop-numeric-id"),
    ],
)
async def test_unusable_frame_gets_connection_error_and_the_socket_stays_open(frame):
    communicator = await open_connection(LEGACY)
    await communicator.send_to(text_data=frame)
    message = await receive(communicator)
    assert message["type"] == "connection_error" and message["payload"]["message"]
    await send_start(communicator, "after", "{ hello }")
    assert (await receive(communicator))["id"] == "after"
    await communicator.disconnect()


async def test_unknown_type_with_an_id_gets_an_error_for_that_id():
    communicator = await open_connection(LEGACY)
    await communicator.send_json_to({"type": "subscribe", "id": "7"})
    message = await receive(communicator)
    assert message["type"] == "error" and message["id"] == "7"
    await communicator.disconnect()


async def test_binary_frame_gets_connection_error():
    communicator = await open_connection(LEGACY)
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert (await receive(communicator))["payload"]["message"] == "Binary frames are not supported"
    await communicator.disconnect()


async def test_frame_over_max_message_bytes_gets_connection_error():
    communicator = await open_connection(LEGACY, max_message_bytes=100)
    await send_start(communicator, "big", "{ hello }" + " " * 200)
    message = await receive(communicator)
    assert message == {
        "type": "connection_error",
        "payload": {"message": "Message larger than 100 bytes"},
    }
    await communicator.disconnect()


async def test_an_operation_whose_document_would_pass_the_connections_budget_gets_an_error(
    fresh_probe,
):
    held = 'subscription { waitForever(key: "held") }'
    communicator = await open_connection(LEGACY, max_document_chars_per_connection=len(held))
    await send_start(communicator, "held", held)
    await asyncio.wait_for(fresh_probe.started["held"].wait(), 5)
    await send_start(communicator, "more", "{ hello }")
    message = await receive(communicator)
    assert message["type"] == "error" and "characters" in message["payload"]["message"]
    assert fresh_probe.running() == ["held"]
    await communicator.disconnect()


async def test_operations_over_the_limit_get_an_error(fresh_probe):
    communicator = await open_connection(LEGACY, max_operations_per_connection=1)
    await send_start(communicator, "a", 'subscription { waitForever(key: "a") }')
    await asyncio.wait_for(fresh_probe.started["a"].wait(), 5)
    await send_start(communicator, "b", "{ hello }")
    message = await receive(communicator)
    assert message["type"] == "error" and "limit 1" in message["payload"]["message"]
    assert fresh_probe.running() == ["a"]
    await communicator.disconnect()
