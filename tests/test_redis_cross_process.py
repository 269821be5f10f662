"""Broadcasting across processes: two daphne servers and plain processes sharing one Redis.

A subscriber on server A receives what is published to its room from anywhere that shares the
channel layer: a ``postMessage`` mutation served by server B, ``broadcast_sync`` in a plain
Python process, ``manage.py gqlchannels_broadcast``. Every event arrives once and in publish
order: each source publishes a numbered sequence, then a sentinel, and the subscription must
receive exactly that sequence followed by the sentinel.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from gql import Client
from gql.client import AsyncClientSession

from tests.live_server import LiveServer, running_server
from tests.redis_support import (
    delete_prefix,
    layer_environment,
    publish_from_plain_process,
    publish_until_received,
    require_redis,
    room_topic,
    subscription_query,
    unique_prefix,
)
from tests.test_end_to_end import PROTOCOLS, RawClient, post, transport

pytestmark = pytest.mark.redis

TRANSPORT_WS = PROTOCOLS["graphql-transport-ws"]
#: Upper bound of every single wait on a server, in seconds.
TIMEOUT = 10.0
#: Events in each numbered sequence.
SEQUENCE = 50

_rooms = itertools.count(1)


def fresh_room(prefix: str) -> str:
    """A room no other test publishes to."""
    return f"{prefix}-{next(_rooms)}"


@pytest.fixture(scope="module", params=[("daphne", "uvicorn"), ("uvicorn", "daphne")], ids="-".join)
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Servers A and B on the shared Redis, under a prefix of their own: daphne and uvicorn,
    each in both roles (the tests run twice), so each server's events reach the other's."""
    url = require_redis()
    prefix = unique_prefix()
    env = layer_environment(url, prefix)
    kind_a, kind_b = request.param
    with (
        running_server(tmp_path_factory.mktemp(f"{kind_a}-a"), kind_a, env=env) as a,
        running_server(tmp_path_factory.mktemp(f"{kind_b}-b"), kind_b, env=env) as b,
    ):
        yield a, b
    delete_prefix(url, prefix)


@pytest.fixture
async def poster_on_b(servers: tuple[LiveServer, LiveServer]) -> AsyncIterator[AsyncClientSession]:
    """A gql session (graphql-transport-ws) on server B that posts messages."""
    client = Client(transport=transport(servers[1], TRANSPORT_WS), execute_timeout=TIMEOUT)
    session = await asyncio.wait_for(client.connect_async(), TIMEOUT)
    yield session
    await asyncio.wait_for(client.close_async(), TIMEOUT)


@pytest.fixture
async def subscribers() -> AsyncIterator[Callable[[LiveServer, str], Awaitable[RawClient]]]:
    """Opens ``messageAdded`` subscriptions (``await subscribe(server, room)``), closes them
    after the test."""
    clients: list[RawClient] = []

    async def subscribe(server: LiveServer, room: str) -> RawClient:
        client = await RawClient.open(server.ws_url, "graphql-transport-ws")
        clients.append(client)
        await client.subscribe("chat", subscription_query(room))
        return client

    yield subscribe
    for client in clients:
        await client.close()


async def next_text(client: RawClient, timeout: float) -> str:
    """The ``text`` of the client's next ``messageAdded`` event."""
    text: str = (await client.data("chat", timeout))["messageAdded"]["text"]
    return text


async def listening(poster: AsyncClientSession, room: str, *clients: RawClient) -> None:
    """Return once the subscription of each client receives what is posted to ``room``."""
    await publish_until_received(
        functools.partial(post, poster, room),
        *(functools.partial(next_text, client) for client in clients),
    )


async def assert_receives(client: RawClient, expected: list[str]) -> None:
    """The subscription's next events are exactly ``expected``, in that order."""
    received = [await next_text(client, TIMEOUT) for _ in expected]
    assert received == expected


def numbered(source: str, count: int = SEQUENCE) -> list[str]:
    """A numbered sequence of texts, then its sentinel (nothing may come between or twice)."""
    return [f"{source} {number}" for number in range(count)] + [f"{source} end"]


async def test_mutation_on_server_b_reaches_subscribers_on_both_servers(
    servers: tuple[LiveServer, LiveServer],
    poster_on_b: AsyncClientSession,
    subscribers: Callable[[LiveServer, str], Awaitable[RawClient]],
) -> None:
    a, b = servers
    room = fresh_room("cross-mutation")
    on_a = await subscribers(a, room)
    on_b = await subscribers(b, room)
    await listening(poster_on_b, room, on_a, on_b)

    sequence = numbered("mutation")
    for text in sequence:
        await post(poster_on_b, room, text)
    await assert_receives(on_a, sequence)
    await assert_receives(on_b, sequence)


async def test_broadcast_sync_in_a_plain_process_reaches_a_subscriber_on_server_a(
    servers: tuple[LiveServer, LiveServer],
    poster_on_b: AsyncClientSession,
    subscribers: Callable[[LiveServer, str], Awaitable[RawClient]],
) -> None:
    a, _ = servers
    room = fresh_room("cross-plain")
    on_a = await subscribers(a, room)
    await listening(poster_on_b, room, on_a)

    sequence = numbered("plain")
    published = await asyncio.to_thread(publish_from_plain_process, a.env, room, sequence)
    assert published.returncode == 0, published.stderr
    await assert_receives(on_a, sequence)


async def test_broadcast_command_reaches_a_subscriber_on_server_a(
    servers: tuple[LiveServer, LiveServer],
    poster_on_b: AsyncClientSession,
    subscribers: Callable[[LiveServer, str], Awaitable[RawClient]],
) -> None:
    """``manage.py gqlchannels_broadcast`` publishes one event per run: three runs, then the
    sentinel."""
    a, _ = servers
    room = fresh_room("cross-command")
    on_a = await subscribers(a, room)
    await listening(poster_on_b, room, on_a)

    sequence = numbered("command", 3)
    for number, text in enumerate(sequence):
        payload = {"id": str(number), "room": room, "author": None, "text": text}
        output = await asyncio.to_thread(
            a.manage, "gqlchannels_broadcast", room_topic(room), json.dumps(payload), "--json"
        )
        assert json.loads(output)["sent"] is True, output
    await assert_receives(on_a, sequence)
