"""One operation cannot keep the event loop from every other connection."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import LEGACY, TIMEOUT, TRANSPORT, open_connection, receive, start

both_protocols = pytest.mark.parametrize("protocol", [TRANSPORT, LEGACY])


@both_protocols
async def test_a_source_that_never_suspends_lets_other_connections_be_served(protocol, fresh_probe):
    flooded = await open_connection(protocol, send_window=1_000_000)
    witness = await open_connection(TRANSPORT)

    await start(flooded, protocol, "flood", 'subscription { count(to: 50000, key: "flood") }')
    await asyncio.wait_for(fresh_probe.started["flood"].wait(), TIMEOUT)
    await witness.send_json_to({"type": "ping"})

    assert await receive(witness) == {"type": "pong"}
    assert not fresh_probe.finalized["flood"].is_set()  # served while the flood still ran
    await flooded.disconnect()
    await witness.disconnect()
