"""Valid JSON of the wrong JSON type in any field, and frames nested too deep (issue 10).

Each gets the protocol's answer (PROTOCOLS.md section 4), never an exception, and no
operation of the connection outlives it: every test holds a live subscription while it sends
the bad frame, and checks that the subscription's ``finally`` has run once the connection
ended. On legacy graphql-ws, where the socket stays open, the subscription keeps running and
the connection keeps serving other operations.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from gqlchannels import CloseCode, tracking
from gqlchannels.models import Connection, Subscription
from tests.helpers import LEGACY, TIMEOUT, TRANSPORT, closed_with, open_connection, receive, start
from tests.schema import Probe

LIVE_SUBSCRIPTION = 'subscription { waitForever(key: "live") }'
HELLO = {"query": "{ hello }"}


async def connection_with_live_subscription(
    protocol: str, probe: Probe, **options: Any
) -> WebsocketCommunicator:
    """A connection past the ack, running the subscription ``live`` (no keepalive frames)."""
    communicator = await open_connection(protocol, keepalive_interval=None, **options)
    await start(communicator, protocol, "live", LIVE_SUBSCRIPTION)
    await asyncio.wait_for(probe.started["live"].wait(), TIMEOUT)
    return communicator


async def ended_every_operation(communicator: WebsocketCommunicator, probe: Probe) -> bool:
    """End the connection (as the client) and tell whether every operation's ``finally`` ran."""
    await communicator.disconnect(timeout=TIMEOUT)
    return probe.running() == []


def nested(levels: int) -> dict[str, Any]:
    """An object nested ``levels`` deep: ``nested(1) == {}``, ``nested(2) == {"a": {}}``."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def subscribe_with_variables(kind: str, variables: dict[str, Any]) -> dict[str, Any]:
    """A ``subscribe``/``start`` frame two levels above ``variables`` (frame, payload)."""
    query = "query ($n: String) { hello(name: $n) }"
    return {"type": kind, "id": "deep", "payload": {"query": query, "variables": variables}}


def request(kind: str, **fields: Any) -> dict[str, Any]:
    """A ``subscribe``/``start`` frame for ``{ hello }`` with the id ``x``, ``fields`` changed."""
    return {"type": kind, "id": "x", "payload": {**HELLO, **fields}}


# -- graphql-transport-ws: close 4400, naming what is wrong -----------------------------------

TRANSPORT_MISTYPED = [
    pytest.param({"type": ["ping"]}, "type must be a string", id="type-list"),
    pytest.param({"type": {"ping": 1}}, "type must be a string", id="type-object"),
    pytest.param({"type": 1}, "type must be a string", id="type-number"),
    pytest.param({"type": None}, "type must be a string", id="type-null"),
    pytest.param({**request("subscribe"), "id": ["1"]}, "id", id="id-list"),
    pytest.param({**request("subscribe"), "id": {"1": 1}}, "id", id="id-object"),
    pytest.param({**request("subscribe"), "id": 1}, "id", id="id-number"),
    pytest.param({**request("subscribe"), "id": ""}, "id", id="id-empty"),
    pytest.param({"type": "complete", "id": ["live"]}, "id", id="complete-id-list"),
    pytest.param({"type": "complete", "id": 7}, "id", id="complete-id-number"),
    pytest.param({"type": "complete", "id": ""}, "id", id="complete-id-empty"),
    pytest.param({**request("subscribe"), "payload": ["{ hello }"]}, "payload", id="payload-list"),
    pytest.param({**request("subscribe"), "payload": "{ hello }"}, "payload", id="payload-string"),
    pytest.param({"type": "connection_init", "payload": [1]}, "payload", id="init-payload-list"),
    pytest.param({"type": "ping", "payload": 5}, "payload", id="ping-payload-number"),
    pytest.param({"type": "pong", "payload": ["x"]}, "payload", id="pong-payload-list"),
    pytest.param(request("subscribe", query=["{ hello }"]), "payload.query", id="query-list"),
    pytest.param(request("subscribe", query={"q": 1}), "payload.query", id="query-object"),
    pytest.param(request("subscribe", query=5), "payload.query", id="query-number"),
    pytest.param(request("subscribe", query=None), "payload.query", id="query-null"),
    pytest.param(
        request("subscribe", operationName=["A"]), "payload.operationName", id="operation-name-list"
    ),
    pytest.param(
        request("subscribe", operationName={"A": 1}),
        "payload.operationName",
        id="operation-name-object",
    ),
    pytest.param(request("subscribe", variables=[1]), "payload.variables", id="variables-list"),
    pytest.param(request("subscribe", variables="n=1"), "payload.variables", id="variables-string"),
    pytest.param(request("subscribe", extensions=[1]), "payload.extensions", id="extensions-list"),
    pytest.param(request("subscribe", extensions=True), "payload.extensions", id="extensions-bool"),
]


@pytest.mark.parametrize(("frame", "named"), TRANSPORT_MISTYPED)
async def test_transport_mistyped_frame_closes_4400_and_ends_the_live_subscription(
    frame, named, fresh_probe
):
    communicator = await connection_with_live_subscription(TRANSPORT, fresh_probe)
    await communicator.send_json_to(frame)
    code, reason = await closed_with(communicator)
    assert code == CloseCode.BAD_REQUEST and named in reason
    assert await ended_every_operation(communicator, fresh_probe)


# -- legacy graphql-ws: connection_error, or an error for the operation it names ---------------

LEGACY_WITHOUT_A_USABLE_ID = [
    pytest.param({"type": ["start"]}, "type must be a string", id="type-list"),
    pytest.param({"type": {"start": 1}}, "type must be a string", id="type-object"),
    pytest.param({"type": 1}, "type must be a string", id="type-number"),
    pytest.param({**request("start"), "id": ["1"]}, "id", id="id-list"),
    pytest.param({**request("start"), "id": {"1": 1}}, "id", id="id-object"),
    pytest.param({**request("start"), "id": 1}, "id", id="id-number"),
    pytest.param({**request("start"), "id": ""}, "id", id="id-empty"),
    pytest.param({"type": "stop", "id": ["live"]}, "id", id="stop-id-list"),
    pytest.param({"type": "stop", "id": {"live": 1}}, "id", id="stop-id-object"),
    pytest.param({"type": "stop", "id": ""}, "id", id="stop-id-empty"),
    pytest.param({"type": "connection_init", "payload": "t"}, "payload", id="init-payload-string"),
]

LEGACY_WITH_A_USABLE_ID = [
    pytest.param({"type": ["stop"], "id": "x"}, "type must be a string", id="type-list"),
    pytest.param({"type": {"stop": 1}, "id": "x"}, "type must be a string", id="type-object"),
    pytest.param({**request("start"), "payload": ["{ hello }"]}, "payload", id="payload-list"),
    pytest.param({**request("start"), "payload": 3}, "payload", id="payload-number"),
    pytest.param(request("start", query=["{ hello }"]), "payload.query", id="query-list"),
    pytest.param(request("start", query={"q": 1}), "payload.query", id="query-object"),
    pytest.param(request("start", query=5), "payload.query", id="query-number"),
    pytest.param(
        request("start", operationName=3), "payload.operationName", id="operation-name-number"
    ),
    pytest.param(
        request("start", operationName=["A"]), "payload.operationName", id="operation-name-list"
    ),
    pytest.param(request("start", variables=[1]), "payload.variables", id="variables-list"),
    pytest.param(request("start", variables=1), "payload.variables", id="variables-number"),
    pytest.param(request("start", extensions="e"), "payload.extensions", id="extensions-string"),
    pytest.param(request("start", extensions=[{}]), "payload.extensions", id="extensions-list"),
]


async def left_the_connection_untouched(communicator: WebsocketCommunicator, probe: Probe) -> bool:
    """Whether the live subscription still runs, a new query gets its result, and ending the
    connection ends every operation."""
    still_running = probe.running() == ["live"]
    await start(communicator, LEGACY, "after", "{ hello }")
    answer = await receive(communicator)
    served = answer == {
        "id": "after",
        "type": "data",
        "payload": {"data": {"hello": "Hello, world!"}},
    }
    return still_running and served and await ended_every_operation(communicator, probe)


@pytest.mark.parametrize(("frame", "named"), LEGACY_WITHOUT_A_USABLE_ID)
async def test_legacy_mistyped_frame_without_a_usable_id_gets_connection_error_and_changes_nothing(
    frame, named, fresh_probe
):
    communicator = await connection_with_live_subscription(LEGACY, fresh_probe)
    await communicator.send_json_to(frame)
    answer = await receive(communicator)
    assert answer["type"] == "connection_error" and named in answer["payload"]["message"]
    assert await left_the_connection_untouched(communicator, fresh_probe)


@pytest.mark.parametrize(("frame", "named"), LEGACY_WITH_A_USABLE_ID)
async def test_legacy_mistyped_frame_with_a_usable_id_gets_an_error_for_it_and_changes_nothing(
    frame, named, fresh_probe
):
    communicator = await connection_with_live_subscription(LEGACY, fresh_probe)
    await communicator.send_json_to(frame)
    answer = await receive(communicator)
    assert answer["type"] == "error" and answer["id"] == "x"
    assert named in answer["payload"]["message"]
    assert await left_the_connection_untouched(communicator, fresh_probe)


# -- the live registry ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "frame"),
    [(TRANSPORT, {"type": ["ping"]}), (LEGACY, {"type": {"start": 1}, "id": ["live"]})],
    ids=["transport", "legacy"],
)
async def test_after_a_mistyped_frame_the_registry_keeps_no_row_of_the_connection(
    protocol, frame, fresh_probe, settings
):
    settings.GQLCHANNELS = {**settings.GQLCHANNELS, "TRACKING_FLUSH_INTERVAL": 0.05}
    communicator = await connection_with_live_subscription(protocol, fresh_probe)
    tracker = tracking.get_tracker()
    await tracker.flush()
    assert await Subscription.objects.acount() == 1
    await communicator.send_json_to(frame)
    await communicator.receive_output(timeout=TIMEOUT)  # the close, or connection_error
    await communicator.disconnect(timeout=TIMEOUT)
    await asyncio.wait_for(tracker.wait_stopped(), TIMEOUT)
    assert await Connection.objects.acount() == 0
    assert await Subscription.objects.acount() == 0


# -- nesting depth ------------------------------------------------------------------------------


async def test_transport_frame_deeper_than_max_frame_depth_closes_4400_like_invalid_json(
    fresh_probe,
):
    communicator = await connection_with_live_subscription(TRANSPORT, fresh_probe)
    await communicator.send_json_to(subscribe_with_variables("subscribe", nested(31)))  # 33 deep
    assert await closed_with(communicator) == (CloseCode.BAD_REQUEST, "Message is not valid JSON")
    assert await ended_every_operation(communicator, fresh_probe)


async def test_legacy_frame_deeper_than_max_frame_depth_gets_connection_error_like_invalid_json(
    fresh_probe,
):
    communicator = await connection_with_live_subscription(LEGACY, fresh_probe)
    await communicator.send_json_to(subscribe_with_variables("start", nested(31)))
    assert await receive(communicator) == {
        "type": "connection_error",
        "payload": {"message": "Message is not valid JSON"},
    }
    assert await left_the_connection_untouched(communicator, fresh_probe)


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_a_frame_exactly_max_frame_depth_deep_runs_end_to_end(protocol):
    communicator = await open_connection(protocol, keepalive_interval=None)
    kind = "subscribe" if protocol == TRANSPORT else "start"
    variables = {"n": "Ada", "unused": nested(29)}  # variables 30 deep, the frame 32
    await communicator.send_json_to(subscribe_with_variables(kind, variables))
    assert (await receive(communicator))["payload"] == {"data": {"hello": "Hello, Ada!"}}
    assert await receive(communicator) == {"id": "deep", "type": "complete"}
    await communicator.disconnect()


async def test_a_subscription_with_variables_30_deep_runs_end_to_end():
    communicator = await open_connection(keepalive_interval=None)
    await start(communicator, TRANSPORT, "s", "subscription { count(to: 1) }", variables=nested(30))
    assert (await receive(communicator))["payload"] == {"data": {"count": 1}}
    assert await receive(communicator) == {"id": "s", "type": "complete"}
    await communicator.disconnect()


async def test_variables_300_deep_are_refused_at_decode_and_log_no_error(caplog, fresh_probe):
    """orjson decodes 1,024 levels but encodes 254: undecoded, these would fail where the
    subscription's variables are encoded again."""
    caplog.set_level(logging.DEBUG, logger="gqlchannels")
    communicator = await connection_with_live_subscription(TRANSPORT, fresh_probe)
    await start(
        communicator, TRANSPORT, "s", "subscription { count(to: 1) }", variables=nested(300)
    )
    assert (await closed_with(communicator))[0] == CloseCode.BAD_REQUEST
    assert await ended_every_operation(communicator, fresh_probe)
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_max_frame_depth_option_bounds_frames_of_that_route():
    communicator = await open_connection(keepalive_interval=None, max_frame_depth=4)
    await communicator.send_json_to(subscribe_with_variables("subscribe", {"n": "Ada"}))  # 3
    assert [(await receive(communicator))["type"] for _ in range(2)] == ["next", "complete"]
    await communicator.send_json_to(subscribe_with_variables("subscribe", nested(3)))  # 5
    assert (await closed_with(communicator))[0] == CloseCode.BAD_REQUEST


@override_settings(GQLCHANNELS={"MAX_FRAME_DEPTH": 4})
async def test_max_frame_depth_setting_bounds_frames():
    communicator = await open_connection(keepalive_interval=None)
    await communicator.send_json_to(subscribe_with_variables("subscribe", nested(3)))
    assert (await closed_with(communicator))[0] == CloseCode.BAD_REQUEST


async def test_transport_operation_id_longer_than_the_limit_closes_4400(fresh_probe):
    communicator = await connection_with_live_subscription(TRANSPORT, fresh_probe)

    await communicator.send_json_to(
        {"type": "subscribe", "id": "i" * 129, "payload": {"query": "{ hello }"}}
    )

    code, reason = await closed_with(communicator)
    assert (code, reason) == (4400, "Operation id longer than 128 characters")
    assert await ended_every_operation(communicator, fresh_probe)


async def test_legacy_operation_id_longer_than_the_limit_gets_connection_error_without_it(
    fresh_probe,
):
    communicator = await connection_with_live_subscription(LEGACY, fresh_probe)

    await communicator.send_json_to(
        {"type": "start", "id": "i" * 129, "payload": {"query": "{ hello }"}}
    )

    assert await receive(communicator) == {
        "type": "connection_error",
        "payload": {"message": "Operation id longer than 128 characters"},
    }
    await communicator.send_json_to({"type": "start", "id": "i" * 128, "payload": HELLO})
    assert (await receive(communicator))["type"] == "data"
    assert fresh_probe.running() == ["live"]
    assert await ended_every_operation(communicator, fresh_probe)
