"""graphql-transport-ws: every message type and close code, as the spec and PROTOCOLS.md say."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from gqlchannels import CloseCode, ConnectionRejected
from gqlchannels.consumers import GraphQLWSConsumer
from tests.helpers import (
    LEGACY,
    TRANSPORT,
    app,
    closed_with,
    open_connection,
    open_socket,
    receive,
    start,
)


async def subscribe(communicator: WebsocketCommunicator, operation_id: str, query: str, **kw: Any):
    await start(communicator, TRANSPORT, operation_id, query, **kw)


# -- subprotocol negotiation ------------------------------------------------------------------


async def test_accepts_graphql_transport_ws_when_offered():
    communicator = WebsocketCommunicator(app(), "/graphql/", subprotocols=[TRANSPORT])
    connected, subprotocol = await communicator.connect()
    assert connected and subprotocol == TRANSPORT
    await communicator.disconnect()


async def test_takes_the_clients_first_preference_among_enabled_protocols():
    communicator = WebsocketCommunicator(
        app(), "/graphql/", subprotocols=["unknown", LEGACY, TRANSPORT]
    )
    _, subprotocol = await communicator.connect()
    assert subprotocol == LEGACY
    await communicator.disconnect()


async def test_without_a_known_subprotocol_accepts_then_closes_4406():
    communicator = WebsocketCommunicator(app(), "/graphql/", subprotocols=["graphql-subscriptions"])
    connected, subprotocol = await communicator.connect()
    assert connected and subprotocol is None
    assert (await closed_with(communicator))[0] == CloseCode.SUBPROTOCOL_NOT_ACCEPTABLE


async def test_a_protocol_disabled_by_option_is_not_negotiated():
    communicator = WebsocketCommunicator(
        app(protocols=[TRANSPORT]), "/graphql/", subprotocols=[LEGACY]
    )
    await communicator.connect()
    assert (await closed_with(communicator))[0] == CloseCode.SUBPROTOCOL_NOT_ACCEPTABLE


@override_settings(GQLCHANNELS={"PROTOCOLS": ["graphql-ws"]})
async def test_a_protocol_disabled_in_settings_is_not_negotiated():
    communicator = WebsocketCommunicator(app(), "/graphql/", subprotocols=[TRANSPORT, LEGACY])
    _, subprotocol = await communicator.connect()
    assert subprotocol == LEGACY
    await communicator.disconnect()


def test_unknown_consumer_option_fails_at_routing_time():
    with pytest.raises(TypeError, match="keepalive"):
        GraphQLWSConsumer.as_asgi(keepalive=3)


# -- connection_init ---------------------------------------------------------------------------


async def test_connection_init_is_acknowledged():
    communicator = await open_socket()
    await communicator.send_json_to({"type": "connection_init", "payload": {"a": 1}})
    assert await receive(communicator) == {"type": "connection_ack"}
    await communicator.disconnect()


async def test_connection_init_with_null_payload_is_acknowledged():
    communicator = await open_socket()
    await communicator.send_json_to({"type": "connection_init", "payload": None})
    assert await receive(communicator) == {"type": "connection_ack"}
    await communicator.disconnect()


class AckWithPayload(GraphQLWSConsumer):
    async def on_connect(self, payload):
        return {"server": "gqlchannels", "echo": payload.get("token")}


async def test_on_connect_dict_becomes_the_ack_payload():
    communicator = await open_socket(consumer=AckWithPayload)
    await communicator.send_json_to({"type": "connection_init", "payload": {"token": "t"}})
    ack = await receive(communicator)
    assert ack == {"type": "connection_ack", "payload": {"server": "gqlchannels", "echo": "t"}}
    await communicator.disconnect()


class RefuseAll(GraphQLWSConsumer):
    async def on_connect(self, payload):
        return False


class RaiseRejection(GraphQLWSConsumer):
    async def on_connect(self, payload):
        raise ConnectionRejected("Bad token")


class Crashes(GraphQLWSConsumer):
    async def on_connect(self, payload):
        raise KeyError("internal detail")


async def test_on_connect_false_closes_4403():
    communicator = await open_socket(consumer=RefuseAll)
    await communicator.send_json_to({"type": "connection_init"})
    assert (await closed_with(communicator)) == (CloseCode.FORBIDDEN, "Forbidden")


async def test_on_connect_rejection_closes_4403_with_its_message():
    communicator = await open_socket(consumer=RaiseRejection)
    await communicator.send_json_to({"type": "connection_init"})
    assert (await closed_with(communicator)) == (CloseCode.FORBIDDEN, "Bad token")


async def test_on_connect_crash_closes_4403_without_leaking_the_error():
    communicator = await open_socket(consumer=Crashes)
    await communicator.send_json_to({"type": "connection_init"})
    assert (await closed_with(communicator)) == (CloseCode.FORBIDDEN, "Forbidden")


async def test_second_connection_init_closes_4429():
    communicator = await open_connection()
    await communicator.send_json_to({"type": "connection_init"})
    assert (await closed_with(communicator))[0] == CloseCode.TOO_MANY_INIT_REQUESTS


class SlowToAuthorize(GraphQLWSConsumer):
    release: asyncio.Event

    async def on_connect(self, payload):
        await asyncio.Event().wait()


async def test_second_connection_init_while_the_first_is_pending_closes_4429():
    communicator = await open_socket(consumer=SlowToAuthorize)
    await communicator.send_json_to({"type": "connection_init"})
    await communicator.send_json_to({"type": "connection_init"})
    assert (await closed_with(communicator))[0] == CloseCode.TOO_MANY_INIT_REQUESTS


async def test_ping_is_answered_while_connection_init_is_pending():
    communicator = await open_socket(consumer=SlowToAuthorize)
    await communicator.send_json_to({"type": "connection_init"})
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_no_connection_init_within_the_timeout_closes_4408():
    communicator = await open_socket(connection_init_wait_timeout=0.05)
    assert (await closed_with(communicator))[0] == CloseCode.CONNECTION_INIT_TIMEOUT


async def test_connection_init_in_time_cancels_the_init_timer():
    communicator = await open_connection(connection_init_wait_timeout=0.2)
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    # Past the timeout, the connection still answers.
    await asyncio.sleep(0.3)
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


# -- operations -----------------------------------------------------------------------------


async def test_query_gets_next_then_complete():
    communicator = await open_connection()
    await subscribe(communicator, "q", "{ hello }")
    assert await receive(communicator) == {
        "id": "q",
        "type": "next",
        "payload": {"data": {"hello": "Hello, world!"}},
    }
    assert await receive(communicator) == {"id": "q", "type": "complete"}
    await communicator.disconnect()


async def test_query_variables_and_operation_name_are_used():
    communicator = await open_connection()
    query = "query A { hello } query B($n: String) { hello(name: $n) }"
    await communicator.send_json_to(
        {
            "type": "subscribe",
            "id": "q",
            "payload": {"query": query, "operationName": "B", "variables": {"n": "Ada"}},
        }
    )
    assert (await receive(communicator))["payload"] == {"data": {"hello": "Hello, Ada!"}}
    await communicator.disconnect()


async def test_mutation_gets_next_then_complete():
    communicator = await open_connection()
    await subscribe(communicator, "m", 'mutation { echo(text: "hi") }')
    assert (await receive(communicator))["payload"] == {"data": {"echo": "hi"}}
    assert await receive(communicator) == {"id": "m", "type": "complete"}
    await communicator.disconnect()


async def test_subscription_streams_next_messages_then_complete():
    communicator = await open_connection()
    await subscribe(communicator, "s", "subscription { count(to: 3) }")
    values = [(await receive(communicator))["payload"]["data"]["count"] for _ in range(3)]
    assert values == [1, 2, 3]
    assert await receive(communicator) == {"id": "s", "type": "complete"}
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_sync_resolver_using_the_orm_runs():
    communicator = await open_connection()
    await subscribe(communicator, "q", "{ userCount }")
    assert (await receive(communicator))["payload"] == {"data": {"userCount": 0}}
    await communicator.disconnect()


async def test_document_that_does_not_parse_gets_an_error_and_the_socket_stays_open():
    communicator = await open_connection()
    await subscribe(communicator, "bad", "{ hello")
    message = await receive(communicator)
    assert message["type"] == "error" and message["id"] == "bad"
    assert "Syntax Error" in message["payload"][0]["message"]
    await subscribe(communicator, "good", "{ hello }")
    assert (await receive(communicator))["id"] == "good"
    await communicator.disconnect()


async def test_document_that_does_not_validate_gets_an_error_list():
    communicator = await open_connection()
    await subscribe(communicator, "bad", "{ nope alsoNope }")
    message = await receive(communicator)
    assert message["type"] == "error"
    assert len(message["payload"]) == 2
    assert "Cannot query field 'nope'" in message["payload"][0]["message"]
    await communicator.disconnect()


async def test_unknown_operation_name_gets_an_error():
    communicator = await open_connection()
    await communicator.send_json_to(
        {
            "type": "subscribe",
            "id": "q",
            "payload": {"query": "query A { hello }", "operationName": "Z"},
        }
    )
    message = await receive(communicator)
    assert (
        message["type"] == "error"
        and "Unknown operation named 'Z'" in message["payload"][0]["message"]
    )
    await communicator.disconnect()


async def test_resolver_graphql_error_reaches_the_client():
    communicator = await open_connection()
    await subscribe(communicator, "q", "{ refused }")
    payload = (await receive(communicator))["payload"]
    assert payload["data"] == {"refused": None}
    assert payload["errors"][0]["message"] == "Not allowed"
    await communicator.disconnect()


async def test_unexpected_resolver_exception_is_masked(caplog):
    communicator = await open_connection()
    await subscribe(communicator, "q", "{ boom }")
    payload = (await receive(communicator))["payload"]
    assert payload["errors"][0]["message"] == "Internal server error"
    assert "secret internals" not in str(payload)
    await communicator.disconnect()


@override_settings(GQLCHANNELS={"DEBUG_ERRORS": True})
async def test_unexpected_resolver_exception_is_shown_when_debugging():
    from gqlchannels.execution import _executors
    from tests.schema import schema

    _executors.pop(schema, None)
    try:
        communicator = await open_connection()
        await subscribe(communicator, "q", "{ boom }")
        error = (await receive(communicator))["payload"]["errors"][0]
        assert error["message"] == "secret internals"
        assert error["extensions"]["exception"]["type"] == "ValueError"
        await communicator.disconnect()
    finally:
        _executors.pop(schema, None)


async def test_subscription_source_error_mid_stream_is_an_error_message():
    communicator = await open_connection()
    await subscribe(communicator, "s", "subscription { failsAfterOne }")
    assert (await receive(communicator))["payload"] == {"data": {"failsAfterOne": 1}}
    message = await receive(communicator)
    assert message == {
        "id": "s",
        "type": "error",
        "payload": [{"message": "Internal server error"}],
    }
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_client_complete_stops_the_subscription(fresh_probe):
    communicator = await open_connection()
    await subscribe(communicator, "s", 'subscription { waitForever(key: "w") }')
    await asyncio.wait_for(fresh_probe.started["w"].wait(), 5)
    await communicator.send_json_to({"type": "complete", "id": "s"})
    await asyncio.wait_for(fresh_probe.finalized["w"].wait(), 5)
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_nothing_is_sent_for_an_operation_after_the_client_completes_it(fresh_probe):
    communicator = await open_connection()
    await subscribe(communicator, "s", 'subscription { count(to: 100000, key: "c", pause: 0.001) }')
    assert (await receive(communicator))["type"] == "next"
    await communicator.send_json_to({"type": "complete", "id": "s"})
    await asyncio.wait_for(fresh_probe.finalized["c"].wait(), 5)
    await communicator.send_json_to({"type": "ping"})
    while (message := await receive(communicator))["type"] != "pong":
        assert message["type"] in ("next", "ping")  # sent before the complete arrived
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_complete_for_an_unknown_id_is_ignored():
    communicator = await open_connection()
    await communicator.send_json_to({"type": "complete", "id": "never-started"})
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_subscribe_with_an_active_id_closes_4409(fresh_probe):
    communicator = await open_connection()
    await subscribe(communicator, "dup", 'subscription { waitForever(key: "w") }')
    await asyncio.wait_for(fresh_probe.started["w"].wait(), 5)
    await subscribe(communicator, "dup", "{ hello }")
    code, reason = await closed_with(communicator)
    assert (
        code == CloseCode.SUBSCRIBER_ALREADY_EXISTS
        and reason == "Subscriber for dup already exists"
    )


async def test_an_id_may_be_reused_once_its_operation_completed():
    communicator = await open_connection()
    for _ in range(2):
        await subscribe(communicator, "same", "{ hello }")
        assert (await receive(communicator))["type"] == "next"
        assert (await receive(communicator))["type"] == "complete"
    await communicator.disconnect()


async def test_subscribe_before_the_ack_closes_4401():
    communicator = await open_socket()
    await subscribe(communicator, "early", "{ hello }")
    assert (await closed_with(communicator)) == (CloseCode.UNAUTHORIZED, "Unauthorized")


async def test_subscribe_while_connection_init_is_pending_closes_4401():
    communicator = await open_socket(consumer=SlowToAuthorize)
    await communicator.send_json_to({"type": "connection_init"})
    await subscribe(communicator, "early", "{ hello }")
    assert (await closed_with(communicator))[0] == CloseCode.UNAUTHORIZED


async def test_operations_over_the_limit_get_an_error_and_the_others_continue(fresh_probe):
    communicator = await open_connection(max_operations_per_connection=2)
    for key in ("a", "b"):
        await subscribe(communicator, key, f'subscription {{ waitForever(key: "{key}") }}')
        await asyncio.wait_for(fresh_probe.started[key].wait(), 5)
    await subscribe(communicator, "c", "{ hello }")
    message = await receive(communicator)
    assert message["type"] == "error" and message["id"] == "c"
    assert "limit 2" in message["payload"][0]["message"]
    assert fresh_probe.running() == ["a", "b"]
    await communicator.send_json_to({"type": "complete", "id": "a"})
    await asyncio.wait_for(fresh_probe.finalized["a"].wait(), 5)
    await subscribe(communicator, "c", "{ hello }")
    assert (await receive(communicator))["type"] == "next"
    await communicator.disconnect()


async def test_an_operation_whose_document_would_pass_the_connections_budget_gets_an_error(
    fresh_probe,
):
    held = 'subscription { waitForever(key: "held") }'
    communicator = await open_connection(max_document_chars_per_connection=len(held) + 20)
    await subscribe(communicator, "held", held)
    await asyncio.wait_for(fresh_probe.started["held"].wait(), 5)
    await subscribe(communicator, "more", 'subscription { waitForever(key: "more") }')
    message = await receive(communicator)
    assert message["type"] == "error" and message["id"] == "more"
    assert "characters" in message["payload"][0]["message"]
    await communicator.send_json_to({"type": "complete", "id": "held"})
    await asyncio.wait_for(fresh_probe.finalized["held"].wait(), 5)
    await subscribe(communicator, "after", "{ hello }")  # the budget came back
    assert (await receive(communicator))["type"] == "next"
    await communicator.disconnect()


class RefusesMutations(GraphQLWSConsumer):
    async def on_operation(self, operation_id, request):
        return "mutation" not in request.query


async def test_on_operation_can_refuse_an_operation():
    communicator = await open_connection(consumer=RefusesMutations)
    await subscribe(communicator, "m", 'mutation { echo(text: "x") }')
    assert await receive(communicator) == {
        "id": "m",
        "type": "error",
        "payload": [{"message": "Operation refused"}],
    }
    await subscribe(communicator, "q", "{ hello }")
    assert (await receive(communicator))["type"] == "next"
    await communicator.disconnect()


async def test_context_carries_the_connection_params():
    communicator = await open_connection(payload={"locale": "fr"})
    await subscribe(communicator, "q", '{ connectionParam(name: "locale") }')
    assert (await receive(communicator))["payload"] == {"data": {"connectionParam": "fr"}}
    await communicator.disconnect()


async def test_context_user_is_none_without_auth_middleware():
    communicator = await open_connection()
    await subscribe(communicator, "q", "{ whoami }")
    assert (await receive(communicator))["payload"] == {"data": {"whoami": "anonymous"}}
    await communicator.disconnect()


# -- ping / pong and keepalive ------------------------------------------------------------------


async def test_ping_gets_pong_even_before_connection_init():
    communicator = await open_socket()
    await communicator.send_json_to({"type": "ping", "payload": {"t": 1}})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_unsolicited_pong_is_ignored():
    communicator = await open_connection()
    await communicator.send_json_to({"type": "pong"})
    await communicator.send_json_to({"type": "ping"})
    assert await receive(communicator) == {"type": "pong"}
    await communicator.disconnect()


async def test_server_pings_every_keepalive_interval_and_pongs_keep_the_connection():
    communicator = await open_connection(keepalive_interval=0.05, pong_timeout=1.0)
    for _ in range(3):
        assert await receive(communicator) == {"type": "ping"}
        await communicator.send_json_to({"type": "pong"})
    await communicator.disconnect()


async def test_silent_peer_is_closed_after_keepalive_interval_plus_pong_timeout():
    communicator = await open_connection(keepalive_interval=0.05, pong_timeout=0.05)
    assert await receive(communicator) == {"type": "ping"}
    code, reason = await closed_with(communicator)
    assert (code, reason) == (CloseCode.KEEPALIVE_TIMEOUT, "Keepalive timeout")


# -- flow control -----------------------------------------------------------------------------


async def test_a_client_that_does_not_answer_pings_gets_at_most_send_window_frames():
    communicator = await open_connection(send_window=4, pong_timeout=None)
    await subscribe(communicator, "s", "subscription { count(to: 20) }")
    frames = [await receive(communicator) for _ in range(5)]
    assert [f["payload"]["data"]["count"] for f in frames if f["type"] == "next"] == [1, 2, 3, 4]
    assert {"type": "ping"} in frames
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


async def test_answering_the_ping_lets_the_stream_continue_in_order():
    communicator = await open_connection(send_window=4, pong_timeout=None)
    await subscribe(communicator, "s", "subscription { count(to: 20) }")
    values = []
    while (message := await receive(communicator))["type"] != "complete":
        if message["type"] == "ping":
            await communicator.send_json_to({"type": "pong"})
        else:
            values.append(message["payload"]["data"]["count"])
    assert values == list(range(1, 21))
    await communicator.disconnect()


async def test_a_client_that_stops_reading_is_closed_after_pong_timeout():
    communicator = await open_connection(send_window=4, keepalive_interval=None, pong_timeout=0.05)
    await subscribe(communicator, "s", "subscription { count(to: 20) }")
    while (output := await communicator.receive_output(timeout=5))["type"] == "websocket.send":
        pass
    assert output["code"] == CloseCode.KEEPALIVE_TIMEOUT


# -- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param("{not json", id="invalid-json"),
        pytest.param("[" * 100_000 + "]" * 100_000, id="nested-too-deep"),
        pytest.param("[]", id="array"),
        pytest.param('"text"', id="string"),
        pytest.param("42", id="number"),
        pytest.param("null", id="null"),
        pytest.param("{}", id="no-type"),
        pytest.param('{"type": 7}', id="non-string-type"),
        pytest.param('{"type": "unknown"}', id="unknown-type"),
        pytest.param('{"type": "next", "id": "1", "payload": {}}', id="server-only-next"),
        pytest.param('{"type": "connection_ack"}', id="server-only-ack"),
        pytest.param(
            '{"type": "start", "id": "1", "payload": {"query": "{hello}"}}', id="legacy-start"
        ),
        pytest.param(
            '{"type": "subscribe", "payload": {"query": "{hello}"}}', id="subscribe-no-id"
        ),
        pytest.param(
            '{"type": "subscribe", "id": 1, "payload": {"query": "{hello}"}}', id="numeric-id"
        ),
        pytest.param('{"type": "subscribe", "id": "1"}', id="subscribe-no-payload"),
        pytest.param(
            '{"type": "subscribe", "id": "1", "payload": {"query": 5}}', id="non-string-query"
        ),
        pytest.param(
            '{"type": "subscribe", "id": "1", "payload": {"query": "{hello}", "variables": []}}',
            id="non-object-variables",
        ),
        pytest.param(
            '{"type": "subscribe", "id": "1", "payload": {"query": "{hello}", "operationName": 3}}',
            id="non-string-operation-name",
        ),
        pytest.param('{"type": "ping", "payload": "x"}', id="non-object-ping-payload"),
        pytest.param('{"type": "complete"}', id="complete-no-id"),
    ],
)
async def test_malformed_frame_after_ack_closes_4400(frame):
    communicator = await open_connection()
    await communicator.send_to(text_data=frame)
    assert (await closed_with(communicator))[0] == CloseCode.BAD_REQUEST


async def test_connection_init_with_non_object_payload_closes_4400():
    communicator = await open_socket()
    await communicator.send_json_to({"type": "connection_init", "payload": "token"})
    assert (await closed_with(communicator))[0] == CloseCode.BAD_REQUEST


async def test_binary_frame_closes_4400():
    communicator = await open_connection()
    await communicator.send_to(bytes_data=b'{"type": "ping"}')
    assert (await closed_with(communicator)) == (
        CloseCode.BAD_REQUEST,
        "Binary frames are not supported",
    )


async def test_frame_over_max_message_bytes_closes_4400():
    communicator = await open_connection(max_message_bytes=1000)
    query = "{ hello }" + " " * 1000
    await subscribe(communicator, "big", query)
    assert (await closed_with(communicator)) == (
        CloseCode.BAD_REQUEST,
        "Message larger than 1000 bytes",
    )


async def test_frame_over_max_message_bytes_counts_utf8_bytes_not_characters():
    communicator = await open_connection(max_message_bytes=1000)
    query = "{ hello } #" + "é" * 480  # under 1000 characters, over 1000 bytes
    await subscribe(communicator, "big", query)
    assert (await closed_with(communicator))[0] == CloseCode.BAD_REQUEST


async def test_close_reason_is_cut_to_fit_a_close_frame():
    communicator = await open_connection()
    await communicator.send_json_to({"type": "x" * 300})
    code, reason = await closed_with(communicator)
    assert code == CloseCode.BAD_REQUEST and len(reason.encode()) <= 123


async def test_malformed_frame_on_one_connection_leaves_others_untouched(fresh_probe):
    healthy = await open_connection()
    await subscribe(healthy, "s", 'subscription { waitForever(key: "w") }')
    await asyncio.wait_for(fresh_probe.started["w"].wait(), 5)
    broken = await open_connection()
    await broken.send_to(text_data="{oops")
    assert (await closed_with(broken))[0] == CloseCode.BAD_REQUEST
    await healthy.send_json_to({"type": "ping"})
    assert await receive(healthy) == {"type": "pong"}
    assert fresh_probe.running() == ["w"]
    await healthy.disconnect()


async def test_client_mistakes_are_not_logged_at_error(caplog):
    caplog.set_level(logging.DEBUG)
    communicator = await open_connection()
    await subscribe(communicator, "bad", "{ nope }")
    assert (await receive(communicator))["type"] == "error"
    await communicator.send_to(text_data="{oops")
    await closed_with(communicator)
    await communicator.disconnect()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
