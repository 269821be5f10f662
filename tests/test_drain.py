"""Stopping a real server process: SIGTERM drains every connection, under daphne and uvicorn.

Each test starts the server on ``tests.lifecycle_app`` (its subscription writes its start and
its ``finally`` to a file), holds subscriptions on both protocols, sends SIGTERM to the server
(only that process, by PID) and then reads what the clients received, which ``finally``
blocks ran, and what the registry still holds once the process has exited.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import LiveServer, running_server
from tests.ws_client import TIMEOUT, RawClient

pytestmark = pytest.mark.e2e

SERVERS = ["daphne", "uvicorn"]
PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]
CONNECTIONS_PER_PROTOCOL = 3
SUBSCRIPTIONS_PER_CONNECTION = 2
APPLICATION = "tests.lifecycle_app:application"
#: Exit statuses of a server that stopped on its own after SIGTERM: daphne returns, uvicorn
#: restores the default handler and raises the signal again.
STOPPED_ITSELF = (0, -signal.SIGTERM)


class Client(RawClient):
    """A client on either protocol holding ``held`` subscriptions."""

    protocol = "graphql-transport-ws"

    @classmethod
    async def open(cls, server: LiveServer, protocol: str) -> Client:
        """Connect with ``protocol`` and get acknowledged."""
        client = await cls.connect(server.ws_url, protocol)
        assert isinstance(client, Client)
        client.protocol = protocol
        await client.send({"type": "connection_init", "payload": {}})
        assert (await client.frame())["type"] == "connection_ack"
        return client

    async def hold(self, key: str) -> None:
        """Start a ``held`` subscription and wait for its first result."""
        kind = "subscribe" if self.protocol == "graphql-transport-ws" else "start"
        query = f'subscription {{ held(key: "{key}") }}'
        await self.send({"type": kind, "id": key, "payload": {"query": query}})
        frame = await self.frame()
        assert frame["id"] == key and frame["payload"] == {"data": {"held": "ready"}}, frame


@pytest.fixture(params=SERVERS)
def stopped_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A server process on the lifecycle app, with short drain and flush intervals."""
    events = tmp_path / "events.log"
    env = {
        "GQLCHANNELS_TEST_EVENTS": str(events),
        "GQLCHANNELS_DRAIN_WINDOW": "0.5",
        "GQLCHANNELS_TRACKING_FLUSH_INTERVAL": "0.1",
    }
    with running_server(tmp_path, request.param, application=APPLICATION, env=env) as live:
        yield live, events


def registry_connections(server: LiveServer) -> int:
    """How many connection rows the registry holds (the audit's own count)."""
    report = json.loads(server.manage("gqlchannels_audit", "--json"))
    return int(report["totals"]["connections"])


async def wait_for_rows(server: LiveServer, count: int) -> None:
    """Wait (bounded) until the registry holds ``count`` connection rows."""
    async with asyncio.timeout(TIMEOUT):
        # The rows live in another process's database: there is no event to wait on.
        while await asyncio.to_thread(registry_connections, server) != count:  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def test_sigterm_closes_every_connection_with_1012_and_runs_every_finally(
    stopped_server: Any,
) -> None:
    server, events = stopped_server
    clients = [
        await Client.open(server, protocol)
        for protocol in PROTOCOLS
        for _ in range(CONNECTIONS_PER_PROTOCOL)
    ]
    keys = []
    for number, client in enumerate(clients):
        for sub in range(SUBSCRIPTIONS_PER_CONNECTION):
            keys.append(f"c{number}s{sub}")
            await client.hold(keys[-1])
    await wait_for_rows(server, len(clients))

    server.terminate()
    codes = await asyncio.gather(*(client.close_code() for client in clients))
    exit_code = await asyncio.to_thread(server.wait, TIMEOUT)

    assert codes == [1012] * len(clients), server.output()
    finished = {
        line.split()[1] for line in events.read_text().splitlines() if line.startswith("finally")
    }
    assert finished == set(keys), server.output()
    assert exit_code in STOPPED_ITSELF, server.output()
    assert registry_connections(server) == 0


async def test_a_stopping_server_without_connections_exits_at_once(stopped_server: Any) -> None:
    server, _events = stopped_server
    client = await Client.open(server, "graphql-transport-ws")
    await client.close()
    await wait_for_rows(server, 0)

    server.terminate()

    assert await asyncio.to_thread(server.wait, TIMEOUT) in STOPPED_ITSELF, server.output()
