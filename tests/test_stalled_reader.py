"""A client that stops reading costs the server at most its outbound budget, then is closed.

Daphne's ``send`` never waits, so without a bound every frame for a client that stopped
reading piles up in the server's memory. Here a real daphne serves a subscription that sends
64 KB frames as fast as it can to a client that reads nothing; the server must close that
client once it holds more than ``MAX_OUTBOUND_BUFFER_BYTES`` for it (4413), run the
subscription's ``finally``, and keep serving everyone else.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.typing import Subprotocol

from tests.live_server import HOST, LiveServer, running_server
from tests.ws_client import TIMEOUT, RawClient

pytestmark = pytest.mark.e2e

BUDGET = 1024 * 1024
FRAME = 64 * 1024
APPLICATION = "tests.lifecycle_app:application"
PROTOCOLS = ["graphql-transport-ws", "graphql-ws"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    """One daphne with a 1 MiB outbound budget and no server pings (so only the budget can
    close a client that does not read)."""
    directory = tmp_path_factory.mktemp("stalled")
    events = directory / "events.log"
    env = {
        "GQLCHANNELS_TEST_EVENTS": str(events),
        "GQLCHANNELS_MAX_OUTBOUND_BUFFER_BYTES": str(BUDGET),
        "GQLCHANNELS_KEEPALIVE_INTERVAL": "3600",
    }
    with running_server(directory, application=APPLICATION, env=env) as live:
        yield live, events


async def acknowledged(server: LiveServer, protocol: str, **options: Any) -> RawClient:
    """A client past ``connection_ack``."""
    ws = await websockets.connect(
        server.ws_url, subprotocols=[Subprotocol(protocol)], open_timeout=TIMEOUT, **options
    )
    client = RawClient(ws)
    await client.send({"type": "connection_init"})
    assert (await client.frame())["type"] == "connection_ack"
    return client


def subscribe(protocol: str, key: str, query: str) -> dict[str, Any]:
    """The frame that starts ``query`` under ``key`` on ``protocol``."""
    kind = "subscribe" if protocol == "graphql-transport-ws" else "start"
    return {"type": kind, "id": key, "payload": {"query": query}}


def recorded(events: Path) -> str:
    """What the server has recorded so far (nothing before its first record)."""
    return events.read_text() if events.exists() else ""


async def finished(events: Path, key: str) -> None:
    """Wait (bounded) until the server recorded that ``key``'s ``finally`` ran."""
    async with asyncio.timeout(TIMEOUT):
        # The record is another process's file: there is no event to wait on.
        while f"finally {key}" not in await asyncio.to_thread(recorded, events):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_client_that_stops_reading_is_closed_once_over_its_outbound_budget(
    server: tuple[LiveServer, Path], protocol: str
) -> None:
    live, events = server
    witness = await acknowledged(live, "graphql-transport-ws")
    # It reads one frame ahead, then stops reading altogether: TCP fills up behind it.
    stalled = await acknowledged(live, protocol, max_queue=1)
    key = f"flood-{protocol}"
    query = f'subscription {{ flood(key: "{key}", size: {FRAME}) }}'

    await stalled.send(subscribe(protocol, key, query))
    await finished(events, key)

    held = [int(n) for n in re.findall(r"not reading \((\d+) bytes waiting", live.output())]
    assert held and held[-1] <= BUDGET + 2 * FRAME, live.output()
    await witness.send({"type": "ping"})
    assert (await witness.frame())["type"] == "pong"
    assert await stalled.close_code() in (None, 4413)
    await witness.close()


async def test_a_burst_of_frames_is_read_at_the_servers_pace_and_every_one_is_answered(
    server: tuple[LiveServer, Path],
) -> None:
    live, _events = server
    client = await acknowledged(live, "graphql-transport-ws")
    burst = 3000  # tiny frames: Daphne reads them by the thousand and stops reading meanwhile

    for _ in range(burst):
        await client.ws.send(json.dumps({"type": "ping"}))

    answers = [await client.frame() for _ in range(burst)]
    assert answers == [{"type": "pong"}] * burst
    await client.send({"type": "ping"})
    assert await client.frame() == {"type": "pong"}
    await client.close()


@pytest.fixture(scope="module")
def roomy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    """One daphne whose budget (64 MiB) lets it hold megabytes for a client that is behind."""
    directory = tmp_path_factory.mktemp("roomy")
    events = directory / "events.log"
    env = {
        "GQLCHANNELS_TEST_EVENTS": str(events),
        "GQLCHANNELS_MAX_OUTBOUND_BUFFER_BYTES": str(64 * BUDGET),
        "GQLCHANNELS_KEEPALIVE_INTERVAL": "3600",
    }
    with running_server(directory, application=APPLICATION, env=env) as live:
        yield live, events


async def test_pings_from_a_client_that_is_behind_are_answered_by_one_owed_pong(
    roomy_server: tuple[LiveServer, Path],
) -> None:
    live, events = roomy_server
    pings = 1000
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect((HOST, live.port))
    client = await acknowledged(live, "graphql-transport-ws", sock=sock, max_queue=1)
    # 8 MiB the client does not read yet: more than the kernel's buffers take, so the server
    # holds the rest, under its budget.
    query = f'subscription {{ flood(key: "behind", size: {FRAME}, count: 128) }}'
    await client.send(subscribe("graphql-transport-ws", "behind", query))
    await finished(events, "behind")

    for _ in range(pings):
        await client.ws.send('{"type":"ping"}')

    seen = await frames_until(client, lambda frame: frame["type"] == "pong")
    await client.send({"type": "subscribe", "id": "last", "payload": {"query": "{ ok }"}})
    then = await frames_until(client, lambda frame: frame == {"id": "last", "type": "complete"})

    assert seen.count("ping") == 1 and seen.count("pong") == 1, seen
    assert "pong" not in then, then
    await client.close()


async def frames_until(client: RawClient, last: Callable[[dict[str, Any]], bool]) -> list[str]:
    """The types of the frames read up to and including the first that ``last`` accepts,
    answering server pings on the way."""
    types = []
    async with asyncio.timeout(TIMEOUT):
        while True:
            frame = json.loads(await client.ws.recv())
            types.append(frame["type"])
            if frame["type"] == "ping":
                await client.ws.send('{"type":"pong"}')
            if last(frame):
                return types
