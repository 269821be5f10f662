"""The per-process hub: control messages for live connections, and layer faults survived."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

import gqlchannels
from gqlchannels import control
from gqlchannels.control import get_control_plane
from gqlchannels.hub import get_hub
from tests.helpers import (
    LEGACY,
    TRANSPORT,
    closed_with,
    open_connection,
    receive,
    start,
    wait_listening,
)
from tests.narrowing import as_layer, in_memory_layer
from tests.test_faults import Switchable


async def test_an_accepted_connection_is_attached_to_the_control_plane():
    communicator = await open_connection()
    assert len(get_control_plane().connections) == 1
    await communicator.disconnect()
    assert get_control_plane().connections == {}


async def test_disconnect_through_the_layer_closes_the_connection_with_4000():
    communicator = await open_connection()
    [connection_id] = get_control_plane().connections
    await control.disconnect({await get_hub().channel(): [connection_id]})
    assert (await closed_with(communicator))[0] == 4000
    await communicator.disconnect()


async def test_disconnect_closes_only_the_connections_named():
    kept = await open_connection()
    [kept_id] = get_control_plane().connections
    closed = await open_connection()
    [closed_id] = set(get_control_plane().connections) - {kept_id}
    await control.disconnect({await get_hub().channel(): [closed_id]}, code=4001)
    assert (await closed_with(closed))[0] == 4001
    await kept.send_json_to({"type": "ping"})
    assert await receive(kept) == {"type": "pong"}
    await kept.disconnect()
    await closed.disconnect()


async def test_disconnect_sync_works_from_another_thread():
    communicator = await open_connection()
    [connection_id] = get_control_plane().connections
    targets = {await get_hub().channel(): [connection_id]}
    errors: list[BaseException] = []

    def admin_action() -> None:
        try:
            control.disconnect_sync(targets)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=admin_action)
    thread.start()
    assert (await closed_with(communicator))[0] == 4000
    await asyncio.to_thread(thread.join, 5)
    assert errors == []
    await communicator.disconnect()


async def test_probe_lists_the_live_connections_of_each_hub():
    first = await open_connection()
    second = await open_connection()
    channel = await get_hub().channel()
    answers = await control.probe([channel], timeout=5)
    assert sorted(answers[channel]) == sorted(get_control_plane().connections)
    assert len(answers[channel]) == 2
    await first.disconnect()
    await second.disconnect()


async def test_probe_leaves_out_hubs_that_do_not_answer():
    communicator = await open_connection()
    channel = await get_hub().channel()
    dead = await in_memory_layer().new_channel(prefix="gqlchannels.hub.")
    answers = await control.probe([channel, dead], timeout=0.2)
    assert list(answers) == [channel]
    await communicator.disconnect()


class FailingReceives:
    """Wraps a layer so its next ``failures`` receives raise, as a Redis blip would."""

    def __init__(self, layer: Any, failures: int):
        self._layer = layer
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    async def receive(self, channel: str) -> Any:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("layer unreachable")
        return await self._layer.receive(channel)


async def test_a_layer_fault_keeps_sockets_open_and_subscriptions_receiving(caplog):
    hub = get_hub()
    flaky = FailingReceives(hub.layer, failures=3)
    hub.layer = as_layer(flaky)
    communicator = await open_connection()
    await communicator.send_json_to(
        {
            "type": "subscribe",
            "id": "s",
            "payload": {"query": 'subscription { events(topic: "t") }'},
        }
    )
    await wait_listening("t")
    await gqlchannels.broadcast("t", "after the fault")
    assert (await receive(communicator))["payload"] == {"data": {"events": "after the fault"}}
    assert flaky.failures == 0
    warnings = [r for r in caplog.records if "Channel layer failing" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per retry
    await communicator.disconnect()


@pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])
async def test_a_subscription_the_layer_cannot_join_gets_a_clear_error(protocol, caplog):
    hub = get_hub()
    layer = Switchable(hub.layer)
    layer.down = True
    hub.layer = as_layer(layer)
    communicator = await open_connection(protocol)
    await start(communicator, protocol, "s", 'subscription { events(topic: "t") }')
    answer = await receive(communicator)
    assert answer["type"] == "error", answer
    errors = answer["payload"] if protocol == TRANSPORT else [answer["payload"]]
    assert [error["message"] for error in errors] == [
        "Could not subscribe: the channel layer is unavailable"
    ]
    assert hub.groups() == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    layer.down = False
    await start(communicator, protocol, "again", 'subscription { events(topic: "t") }')
    await wait_listening("t")
    await gqlchannels.broadcast("t", "joined")
    assert (await receive(communicator))["payload"] == {"data": {"events": "joined"}}
    await communicator.disconnect()
