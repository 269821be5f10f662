"""``gqlchannels.testing.GraphQLWSCommunicator``, against the real consumer, on both protocols."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from channels.security.websocket import AllowedHostsOriginValidator
from django.test import override_settings

import gqlchannels
from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.security import OriginValidator
from gqlchannels.testing import (
    LEGACY_WS,
    TRANSPORT_WS,
    ConnectionClosed,
    ConnectionRefused,
    GraphQLWSCommunicator,
    HandshakeRefused,
    OperationError,
    ProtocolError,
    listening,
)
from tests.schema import Probe, schema

TIMEOUT = 5.0

application = GraphQLWSConsumer.as_asgi(schema=schema)

pytestmark = pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])


def communicator_for(protocol: str, app: Any = application, **kwargs: Any) -> GraphQLWSCommunicator:
    return GraphQLWSCommunicator(app, protocol=protocol, timeout=TIMEOUT, **kwargs)


async def wait_for(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), TIMEOUT)


async def test_entering_the_block_acknowledges_the_connection(protocol: str) -> None:
    async with communicator_for(protocol) as communicator:
        assert communicator.ack_payload is None
        assert await communicator.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}


async def test_connection_params_reach_the_server(protocol: str) -> None:
    params = {"token": "abc"}
    async with communicator_for(protocol, connection_params=params) as communicator:
        result = await communicator.execute('{ connectionParam(name: "token") }')
    assert result == {"data": {"connectionParam": "abc"}}


async def test_execute_returns_a_query_result_with_variables(protocol: str) -> None:
    async with communicator_for(protocol) as communicator:
        result = await communicator.execute(
            "query Greet($name: String) { hello(name: $name) }", {"name": "Ada"}, "Greet"
        )
    assert result == {"data": {"hello": "Hello, Ada!"}}


async def test_execute_returns_a_mutation_result(protocol: str) -> None:
    async with communicator_for(protocol) as communicator:
        result = await communicator.execute('mutation { echo(text: "ping") }')
    assert result == {"data": {"echo": "ping"}}


async def test_execute_returns_resolver_errors_next_to_data(protocol: str) -> None:
    async with communicator_for(protocol) as communicator:
        result = await communicator.execute("{ refused hello }")
    assert result["data"] == {"refused": None, "hello": "Hello, world!"}
    assert [error["message"] for error in result["errors"]] == ["Not allowed"]


async def test_execute_raises_the_errors_of_an_error_message(protocol: str) -> None:
    async with communicator_for(protocol) as communicator:
        with pytest.raises(OperationError) as failure:
            await communicator.execute("{ noSuchField }")
        assert len(failure.value.errors) == 1
        assert "noSuchField" in failure.value.errors[0]["message"]
        # The connection is still usable after a failed operation.
        assert await communicator.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}


async def test_subscribe_yields_each_result_until_complete(protocol: str) -> None:
    async with communicator_for(protocol) as communicator:
        results = [
            result async for result in communicator.subscribe("subscription { count(to: 3) }")
        ]
    assert results == [{"data": {"count": 1}}, {"data": {"count": 2}}, {"data": {"count": 3}}]


async def test_subscribe_raises_when_the_stream_fails(protocol: str) -> None:
    results = []
    async with communicator_for(protocol) as communicator:
        with pytest.raises(OperationError):
            async for result in communicator.subscribe("subscription { failsAfterOne }"):
                results.append(result)
    assert results == [{"data": {"failsAfterOne": 1}}]


async def test_two_subscriptions_read_alternately_each_get_their_own_results(
    protocol: str,
) -> None:
    query = "subscription($key: String) { count(to: 3, key: $key) }"
    async with communicator_for(protocol) as communicator:
        first = communicator.subscribe(query, {"key": "first"})
        second = communicator.subscribe(query, {"key": "second"})
        # Starting both before reading either makes their frames interleave on the socket.
        received: dict[str, list[Any]] = {"first": [], "second": []}
        received["first"].append(await anext(first))
        received["second"].append(await anext(second))
        async for result in first:
            received["first"].append(result)
        async for result in second:
            received["second"].append(result)
    expected = [{"data": {"count": number}} for number in (1, 2, 3)]
    assert received == {"first": expected, "second": expected}


async def test_two_subscriptions_read_concurrently_each_get_their_own_results(
    protocol: str,
) -> None:
    query = "subscription($key: String) { count(to: 20, key: $key, pause: 0.001) }"

    async def collect(communicator: GraphQLWSCommunicator, key: str) -> list[Any]:
        return [result async for result in communicator.subscribe(query, {"key": key})]

    async with communicator_for(protocol) as communicator:
        first, second, third = await asyncio.gather(
            collect(communicator, "a"), collect(communicator, "b"), collect(communicator, "c")
        )
        # Queries still work while (and after) subscriptions share the reader.
        assert await communicator.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}
    expected = [{"data": {"count": number}} for number in range(1, 21)]
    assert first == second == third == expected


async def test_breaking_out_of_a_subscription_stops_it_on_the_server(
    protocol: str, fresh_probe: Probe
) -> None:
    query = 'subscription { count(to: 1000, key: "stopped", pause: 0.05) }'
    async with communicator_for(protocol) as communicator:
        async for result in communicator.subscribe(query):
            assert result == {"data": {"count": 1}}
            break
        # Natural completion would take 50 s: only the client's complete/stop ends it now.
        await wait_for(fresh_probe.finalized["stopped"])
        assert await communicator.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}


async def test_cancelling_a_pending_read_stops_the_subscription_on_the_server(
    protocol: str, fresh_probe: Probe
) -> None:
    async with communicator_for(protocol) as communicator:
        subscription = communicator.subscribe('subscription { waitForever(key: "cancelled") }')
        reading = asyncio.ensure_future(anext(subscription))
        await wait_for(fresh_probe.started["cancelled"])
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        await wait_for(fresh_probe.finalized["cancelled"])
        assert await communicator.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}


async def test_aclose_after_a_result_stops_the_subscription(
    protocol: str, fresh_probe: Probe
) -> None:
    query = 'subscription { count(to: 1000, key: "acl", pause: 0.05) }'
    async with communicator_for(protocol) as communicator:
        subscription = communicator.subscribe(query)
        assert await anext(subscription) == {"data": {"count": 1}}
        await subscription.aclose()
        await wait_for(fresh_probe.finalized["acl"])


async def test_leaving_the_block_ends_running_subscriptions(
    protocol: str, fresh_probe: Probe
) -> None:
    async with communicator_for(protocol) as communicator:
        subscription = communicator.subscribe('subscription { waitForever(key: "left") }')
        reading = asyncio.ensure_future(anext(subscription))
        await wait_for(fresh_probe.started["left"])
    # The consumer awaits every operation's finally before the disconnect returns.
    assert fresh_probe.finalized["left"].is_set()
    # A reader still waiting learns that the connection is gone instead of timing out.
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(reading, 1.0)


class Refusing(GraphQLWSConsumer):
    """Refuses every connection_init."""

    async def on_connect(self, payload: dict[str, Any]) -> bool:
        return False


async def test_a_refused_connection_raises_connection_refused_with_the_close_code(
    protocol: str,
) -> None:
    communicator = communicator_for(protocol, Refusing.as_asgi(schema=schema))
    with pytest.raises(ConnectionRefused) as refused:
        async with communicator:
            pytest.fail("the block must not run on a refused connection")
    assert refused.value.code == 4403
    assert communicator.future.done()


async def test_a_subprotocol_the_server_does_not_speak_is_refused_with_4406(
    protocol: str,
) -> None:
    other = LEGACY_WS if protocol == TRANSPORT_WS else TRANSPORT_WS
    app = GraphQLWSConsumer.as_asgi(schema=schema, protocols=[other])
    with pytest.raises(ConnectionRefused) as refused:
        async with communicator_for(protocol, app):
            pytest.fail("the block must not run without the subprotocol")
    assert refused.value.code == 4406


@override_settings(ALLOWED_HOSTS=["testserver"])
async def test_the_default_origin_passes_channels_allowed_hosts_validator(protocol: str) -> None:
    # ALLOWED_HOSTS as pytest-django leaves it in a new project: only "testserver".
    guarded = AllowedHostsOriginValidator(application)
    async with communicator_for(protocol, guarded) as communicator:
        assert await communicator.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}


@override_settings(ALLOWED_HOSTS=[".example.com", "testserver"])
async def test_the_default_origin_passes_gqlchannels_origin_validator(protocol: str) -> None:
    guarded = OriginValidator(application, require_origin=True)
    async with communicator_for(protocol, guarded) as communicator:
        assert await communicator.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}


@override_settings(ALLOWED_HOSTS=[], DEBUG=False)
async def test_no_origin_is_sent_when_no_host_is_allowed(protocol: str) -> None:
    guarded = OriginValidator(application)
    async with communicator_for(protocol, guarded) as communicator:
        assert await communicator.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}


async def test_a_given_origin_replaces_the_default(protocol: str) -> None:
    guarded = AllowedHostsOriginValidator(application)
    foreign = communicator_for(protocol, guarded, headers=[("Origin", "http://evil.example")])
    with pytest.raises(ConnectionRefused):
        async with foreign:
            pytest.fail("a foreign origin must be refused")


async def test_a_refused_handshake_says_to_check_the_origin(protocol: str) -> None:
    guarded = OriginValidator(application)
    foreign = communicator_for(protocol, guarded, headers=[("Origin", "http://evil.example")])
    with pytest.raises(HandshakeRefused) as refused:
        async with foreign:
            pytest.fail("a foreign origin must be refused")
    assert str(refused.value) == (
        "The server refused the WebSocket handshake (HTTP 403 or closed before accept: "
        "check Origin/ALLOWED_HOSTS)"
    )
    assert refused.value.code is None


async def test_execute_refuses_a_stream_of_results_and_stops_it(
    protocol: str, fresh_probe: Probe
) -> None:
    async with communicator_for(protocol) as communicator:
        with pytest.raises(ProtocolError, match="subscribe"):
            await communicator.execute(
                'subscription { count(to: 1000, key: "streamed", pause: 0.05) }'
            )
        await wait_for(fresh_probe.finalized["streamed"])


async def test_keepalive_frames_never_reach_the_test(protocol: str) -> None:
    app = GraphQLWSConsumer.as_asgi(schema=schema, keepalive_interval=0.01, pong_timeout=5.0)
    async with communicator_for(protocol, app) as communicator:
        results = [
            result
            async for result in communicator.subscribe("subscription { count(to: 5, pause: 0.03) }")
        ]
        # ka (legacy) and ping (answered with pong) were filtered out, and the server, having
        # had its pings answered, kept the socket open.
        assert results == [{"data": {"count": n}} for n in range(1, 6)]
        assert await communicator.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}


async def test_handshake_does_not_wait_for_a_keepalive_that_is_off(protocol: str) -> None:
    app = GraphQLWSConsumer.as_asgi(schema=schema, keepalive_interval=None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with communicator_for(protocol, app) as communicator:
        assert await communicator.execute("{ hello }") == {"data": {"hello": "Hello, world!"}}
    # Waiting for a ka that never comes would take the helper's whole timeout, or raise.
    assert loop.time() - started < TIMEOUT / 2


async def test_a_broadcast_after_listening_reaches_the_subscription(protocol: str) -> None:
    async with communicator_for(protocol) as communicator:
        events = communicator.subscribe('subscription { events(topic: "helper-listening") }')
        first = asyncio.ensure_future(anext(events))
        await listening("helper-listening", timeout=TIMEOUT)
        await gqlchannels.broadcast("helper-listening", "hi")
        assert await asyncio.wait_for(first, TIMEOUT) == {"data": {"events": "hi"}}
        await events.aclose()


async def test_listening_times_out_when_no_subscription_listens(protocol: str) -> None:
    with pytest.raises(TimeoutError, match="nobody-listens"):
        await listening("nobody-listens", timeout=0.05)
