"""Named regressions: failures users met in other libraries, which gqlchannels must never have."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from typing import Any

import pytest
from autobahn.exception import Disconnected
from channels.testing import WebsocketCommunicator

from gqlchannels import CloseCode, control
from gqlchannels.broadcast import GROUP_PREFIX, group_name
from gqlchannels.consumers import GraphQLWSConsumer
from gqlchannels.control import get_control_plane
from gqlchannels.hub import get_hub
from tests.helpers import (
    LEGACY,
    TRANSPORT,
    app,
    closed_with,
    open_connection,
    receive,
    result_type,
    start,
    wait_listening,
    wait_until,
)
from tests.narrowing import as_layer, in_memory_layer
from tests.schema import schema


class ClientDisconnected(OSError):
    """What uvicorn raises from ``send`` once the client has gone."""


#: What ``send`` does once the client has vanished, by server: Daphne drops the frame while
#: it has not seen the TCP connection end, then raises autobahn's ``Disconnected`` until the
#: application gets ``websocket.disconnect`` (a window of seconds under load); uvicorn raises.
VANISHED_SENDS = pytest.mark.parametrize(
    "raises",
    [None, Disconnected, ClientDisconnected],
    ids=["daphne-drops", "daphne-raises", "uvicorn-raises"],
)


class RawASGIServer:
    """Drives the consumer the way a server does, with a ``send`` that, once the client has
    vanished, either drops frames silently (Daphne) or raises (uvicorn)."""

    def __init__(self, raises_after_vanish: type[Exception] | None, protocol: str = TRANSPORT):
        self.raises_after_vanish = raises_after_vanish
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.vanished = False
        self.dropped: list[dict[str, Any]] = []
        self.first_drop = asyncio.Event()
        scope = {
            "type": "websocket",
            "path": "/graphql/",
            "subprotocols": [protocol],
            "headers": [],
        }
        application = GraphQLWSConsumer.as_asgi(schema=schema)
        self.task = asyncio.get_running_loop().create_task(
            application(scope, self.inbox.get, self.send)
        )

    async def send(self, message: dict[str, Any]) -> None:
        if self.vanished:
            self.dropped.append(message)
            self.first_drop.set()
            if self.raises_after_vanish is not None:
                raise self.raises_after_vanish("client is gone")
            return
        await self.outbox.put(message)

    async def frame(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.outbox.get(), 5)

    async def client_sends(self, message: dict[str, Any]) -> None:
        from gqlchannels.json import dumps

        await self.inbox.put({"type": "websocket.receive", "text": dumps(message)})


@VANISHED_SENDS
async def test_pong_due_after_the_client_vanished_is_dropped_quietly(raises, caplog):
    caplog.set_level(logging.DEBUG)
    server = RawASGIServer(raises_after_vanish=raises)
    await server.inbox.put({"type": "websocket.connect"})
    assert (await server.frame())["type"] == "websocket.accept"
    await server.client_sends({"type": "connection_init"})
    assert (await server.frame())["type"] == "websocket.send"
    server.vanished = True
    await server.client_sends({"type": "ping"})
    await server.client_sends({"type": "subscribe", "id": "1", "payload": {"query": "{ hello }"}})
    await server.inbox.put({"type": "websocket.disconnect", "code": 1006})
    await asyncio.wait_for(server.task, 5)  # re-raises anything the consumer raised
    assert server.dropped[0]["text"] == '{"type":"pong"}'
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@VANISHED_SENDS
async def test_stream_frames_after_the_client_vanished_do_not_raise(raises, caplog, fresh_probe):
    server = RawASGIServer(raises_after_vanish=raises)
    await server.inbox.put({"type": "websocket.connect"})
    await server.frame()
    await server.client_sends({"type": "connection_init"})
    await server.frame()
    query = 'subscription { count(to: 100000, key: "c", pause: 0.001) }'
    await server.client_sends({"type": "subscribe", "id": "1", "payload": {"query": query}})
    await server.frame()
    server.vanished = True
    await asyncio.wait_for(server.first_drop.wait(), 5)
    await server.inbox.put({"type": "websocket.disconnect", "code": 1006})
    await asyncio.wait_for(server.task, 5)
    assert fresh_probe.finalized["c"].is_set()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_connection_init_wait_timeout_zero_closes_cleanly_with_4408(protocol, caplog):
    caplog.set_level(logging.DEBUG)
    communicator = WebsocketCommunicator(
        app(connection_init_wait_timeout=0), "/graphql/", subprotocols=[protocol]
    )
    connected, _ = await communicator.connect()
    assert connected  # accepted first: the timer starts only after accept
    assert (await closed_with(communicator))[0] == CloseCode.CONNECTION_INIT_TIMEOUT
    await communicator.disconnect()
    await communicator.wait(timeout=5)  # re-raises a RuntimeError had the consumer hit one
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class RecordingConsumer(GraphQLWSConsumer):
    """Keeps each instance, so a test can look at its registry after the socket is gone."""

    instances: list[GraphQLWSConsumer] = []

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        RecordingConsumer.instances.append(self)


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_abrupt_disconnect_runs_every_finally_and_leaves_nothing_behind(
    protocol, fresh_probe
):
    RecordingConsumer.instances.clear()
    communicator = await open_connection(protocol, consumer=RecordingConsumer)
    await start(
        communicator,
        protocol,
        "waiting",
        'subscription { events(topic: "room:9", key: "waiting") }',
    )
    await start(
        communicator,
        protocol,
        "streaming",
        'subscription { count(to: 100000, key: "streaming", pause: 0.001) }',
    )
    await wait_listening("room:9")
    while (await receive(communicator)).get("type") != result_type(protocol):
        pass  # the second subscription is mid-stream
    assert sorted(fresh_probe.running()) == ["streaming", "waiting"]

    await communicator.disconnect(code=1006)  # no close frame; returns once the consumer exits

    assert fresh_probe.finalized["waiting"].is_set()
    assert fresh_probe.finalized["streaming"].is_set()
    protocol = RecordingConsumer.instances[0].protocol
    assert protocol is not None
    registry = protocol.operations
    assert len(registry) == 0 and not registry._unfinished
    assert group_name("room:9") not in in_memory_layer().groups
    assert get_hub().groups() == []


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_server_close_stops_operations_at_once(protocol, fresh_probe):
    communicator = await open_connection(protocol, max_message_bytes=200)
    await start(communicator, protocol, "w", 'subscription { waitForever(key: "w") }')
    await asyncio.wait_for(fresh_probe.started["w"].wait(), 5)
    await communicator.send_json_to(
        {"type": "connection_terminate"} if protocol == LEGACY else {"type": "bogus"}
    )
    await closed_with(communicator)
    await asyncio.wait_for(fresh_probe.finalized["w"].wait(), 5)
    await communicator.disconnect()


async def test_close_codes_reach_the_server_as_plain_ints():
    """Daphne hands the code to autobahn, which refuses anything but an exact int (an IntEnum
    member included) and then sends no close frame at all."""
    server = RawASGIServer(raises_after_vanish=None)
    await server.inbox.put({"type": "websocket.connect"})
    await server.frame()
    await server.inbox.put({"type": "websocket.receive", "text": "not json"})
    close = await server.frame()
    assert close["type"] == "websocket.close"
    assert type(close["code"]) is int and close["code"] == 4400
    await server.inbox.put({"type": "websocket.disconnect", "code": 4400})
    await asyncio.wait_for(server.task, 5)


class GatedGroupAdd:
    """A layer whose ``group_add`` waits at a gate, as a slow round trip to Redis would."""

    def __init__(self, layer: Any):
        self._layer = layer
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    async def group_add(self, group: str, channel: str) -> None:
        self.entered.set()
        await self.gate.wait()
        await self._layer.group_add(group, channel)


async def test_a_stopped_subscription_leaves_its_group_even_if_the_socket_closes_meanwhile(
    fresh_probe,
):
    communicator = await open_connection(TRANSPORT)
    await start(communicator, TRANSPORT, "a", 'subscription { events(topic: "t", key: "a") }')
    await wait_listening("t")
    hub = get_hub()
    gated = GatedGroupAdd(hub.layer)
    hub.layer = as_layer(gated)
    # Another subscription's join holds the hub's membership lock...
    await start(communicator, TRANSPORT, "b", 'subscription { events(topic: "u", key: "b") }')
    await asyncio.wait_for(gated.entered.wait(), 5)
    # ...while the client stops "a", whose cleanup must wait for that lock to leave "t",
    await communicator.send_json_to({"type": "complete", "id": "a"})
    await wait_until(lambda: group_name("t") not in hub.groups())
    # and the socket closes, cancelling "a" a second time.
    await communicator.disconnect(code=1006)
    assert fresh_probe.finalized["a"].is_set()
    gated.gate.set()
    await wait_until(lambda: group_name("t") not in in_memory_layer().groups)
    assert hub.groups() == [] and hub.listener_count() == 0


async def test_a_close_from_another_thread_racing_incoming_frames_ends_cleanly(caplog):
    """An operator's disconnect arrives from a thread while the client is sending: the close
    is carried out on the event loop, never by touching the consumer from the thread."""
    communicator = await open_connection(TRANSPORT)
    [connection_id] = get_control_plane().connections
    targets = {await get_hub().channel(): [connection_id]}
    closing = threading.Thread(target=control.disconnect_sync, args=(targets,))
    closing.start()
    for _ in range(200):  # frames racing the close
        await communicator.send_json_to({"type": "ping"})
    while (output := await communicator.receive_output(timeout=5))["type"] == "websocket.send":
        assert output["text"] == '{"type":"pong"}'
    assert output == {
        "type": "websocket.close",
        "code": 4000,
        "reason": "Disconnected by the server",
    }
    await asyncio.to_thread(closing.join, 5)
    await communicator.disconnect()
    await communicator.wait(timeout=5)
    assert get_control_plane().connections == {}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class SwallowsCancellation:
    """A layer whose ``group_add`` returns normally when cancelled, as redis-py 8's
    ``asyncio.wait_for`` does on Python 3.11 when the cancel meets a completing write."""

    def __init__(self, layer: Any):
        self._layer = layer
        self.entered = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    async def group_add(self, group: str, channel: str) -> None:
        if not group.startswith(GROUP_PREFIX):  # the control group: only topics hang here
            await self._layer.group_add(group, channel)
            return
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await self._layer.group_add(group, channel)


async def test_a_cancellation_swallowed_by_layer_io_still_ends_the_subscription(fresh_probe):
    hub = get_hub()
    layer = SwallowsCancellation(hub.layer)
    hub.layer = as_layer(layer)
    communicator = await open_connection(TRANSPORT, disconnect_timeout=2)
    await start(communicator, TRANSPORT, "s", 'subscription { events(topic: "t", key: "s") }')
    await asyncio.wait_for(layer.entered.wait(), 5)
    await communicator.disconnect(code=1006)
    assert fresh_probe.finalized["s"].is_set()
    assert hub.groups() == [] and hub.listener_count() == 0


def live_consumers() -> int:
    """Consumer instances still reachable after a full collection."""
    gc.collect()
    # type(), not isinstance(): a lazy object left by another test would evaluate itself.
    return sum(issubclass(type(thing), GraphQLWSConsumer) for thing in gc.get_objects())


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_connections_dropped_mid_subscription_leave_no_consumer_alive(protocol, fresh_probe):
    before = live_consumers()
    for round_number in range(20):
        communicator = await open_connection(protocol)
        key = f"churn-{round_number}"
        await start(
            communicator, protocol, key, f'subscription {{ events(topic: "churn", key: "{key}") }}'
        )
        await wait_listening("churn")
        await communicator.disconnect(code=1006)
        assert fresh_probe.finalized[key].is_set()
    del communicator
    assert live_consumers() == before


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_connections_closed_for_malformed_frames_leave_no_consumer_alive(protocol):
    before = live_consumers()
    for _ in range(20):
        communicator = await open_connection(protocol)
        await communicator.send_to(text_data="{not json")
        if protocol == TRANSPORT:
            assert (await closed_with(communicator))[0] == CloseCode.BAD_REQUEST
        else:
            assert (await receive(communicator))["type"] == "connection_error"
        await communicator.disconnect()
    del communicator
    assert live_consumers() == before
