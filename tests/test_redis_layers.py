"""Scale-out on both channels-redis layers, each sharded over two Redis servers.

Two private ``redis-server`` processes are the layer's two hosts; two daphne workers of the
demo share them (and one SQLite file). Each test runs on ``RedisChannelLayer`` (the default,
which keeps groups in sorted sets) and on ``RedisPubSubChannelLayer`` (Redis pub/sub: no
state in Redis). The rooms are picked so that one topic's group lives on each shard, by the
layer's own consistent hashing, and the tests check that each group really lives there.
Events published from either worker and from a plain process reach subscribers on both
workers exactly once and in order; the control plane (``control.disconnect`` to a hub
channel, ``control.disconnect_user`` to the control group) reaches connections on both.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from channels_redis.core import RedisChannelLayer  # type: ignore[import-untyped]  # no stubs
from channels_redis.pubsub import RedisPubSubLoopLayer  # type: ignore[import-untyped]
from gql import Client
from gql.client import AsyncClientSession

from gqlchannels.broadcast import group_name
from gqlchannels.layer import CONTROL_GROUP
from tests.live_server import PROJECT_ROOT, LiveServer, running_daphne
from tests.redis_support import (
    RedisServer,
    layer_environment,
    publish_from_plain_process,
    publish_until_received,
    room_topic,
    subscription_query,
    unique_prefix,
)
from tests.test_end_to_end import PROTOCOLS, RawClient, post, transport
from tests.test_sessions_live import Browser, signed_in_socket
from tests.test_tracking_live import ADMIN_PASSWORD, TRACKING_ENV, create_superuser, rows_where

pytestmark = [pytest.mark.redis, pytest.mark.e2e]

TRANSPORT_WS = PROTOCOLS["graphql-transport-ws"]
#: Upper bound of every single wait on a server, in seconds.
TIMEOUT = 10.0
#: Events in each numbered sequence.
SEQUENCE = 30
#: The demo's environment for each layer (beyond the hosts and the prefix).
LAYERS = {"core": {}, "pubsub": {"GQLCHANNELS_REDIS_LAYER": "pubsub"}}
SHARDS = (0, 1)

_rooms = itertools.count(1)


@dataclass
class Deployment:
    """Two workers on one layer sharded over two Redis servers."""

    kind: str
    prefix: str
    shards: tuple[RedisServer, RedisServer]
    a: LiveServer
    b: LiveServer

    @property
    def urls(self) -> list[str]:
        """The layer's hosts, in order (a group's shard is an index into this)."""
        return [shard.url for shard in self.shards]

    def shard_of(self, group: str) -> int:
        """The index of the host that carries ``group``, by the layer's own hashing."""
        if self.kind == "core":
            return int(RedisChannelLayer(hosts=self.urls).consistent_hash(group))
        # The pub/sub layer has no public hash: ask its per-loop layer which shard it uses.
        layer = RedisPubSubLoopLayer(hosts=self.urls, prefix=self.prefix)
        shard = layer._get_shard(layer._get_group_channel_name(group))
        index: int = layer._shards.index(shard)
        return index

    def hubs_in(self, group: str, shard: int) -> int:
        """How many processes' hubs are in ``group`` on Redis server ``shard``: members of
        its sorted set (core), or subscribers of its channel (pub/sub)."""
        client = redis.Redis.from_url(self.urls[shard])
        try:
            if self.kind == "core":
                return int(client.zcard(f"{self.prefix}:group:{group}"))
            channel = f"{self.prefix}__group__{group}"
            [(_, count)] = client.pubsub_numsub(channel)
            return int(count)
        finally:
            client.close()

    def room_on(self, shard: int) -> str:
        """A fresh room whose topic's group lives on ``shard``."""
        while True:
            room = f"{self.kind}-{next(_rooms)}"
            if self.shard_of(group_name(room_topic(room))) == shard:
                return room


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, RedisServer]]:
    """This module's two Redis servers, the hosts of every layer it tests."""
    root = tmp_path_factory.mktemp("shards")
    with RedisServer(root / "0") as zero, RedisServer(root / "1") as one:
        yield zero, one


@pytest.fixture(scope="module", params=list(LAYERS))
def deployment(
    request: pytest.FixtureRequest,
    shards: tuple[RedisServer, RedisServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    """Workers A and B on one layer over both shards (one SQLite file, live registry on)."""
    kind: str = request.param
    prefix = unique_prefix()
    urls = [shard.url for shard in shards]
    env = {
        **layer_environment(urls[0], prefix),
        "REDIS_URLS": ",".join(urls),
        **TRACKING_ENV,
        **LAYERS[kind],
    }
    root = tmp_path_factory.mktemp(f"layers-{kind}")
    database = root / "shared.sqlite3"
    with (
        running_daphne(root / "a", env=env, database=database) as a,
        running_daphne(root / "b", env=env, database=database) as b,
    ):
        yield Deployment(kind, prefix, shards, a, b)


@pytest.fixture
async def sockets() -> AsyncIterator[list[RawClient]]:
    """Sockets a test opened (append them), closed after it."""
    opened: list[RawClient] = []
    yield opened
    for socket in opened:
        await socket.close()


@pytest.fixture
async def posters(deployment: Deployment) -> AsyncIterator[dict[str, AsyncClientSession]]:
    """A gql session on each worker that posts messages (``postMessage`` publishes)."""
    clients = {
        name: Client(transport=transport(server, TRANSPORT_WS), execute_timeout=TIMEOUT)
        for name, server in (("a", deployment.a), ("b", deployment.b))
    }
    sessions = {
        name: await asyncio.wait_for(client.connect_async(), TIMEOUT)
        for name, client in clients.items()
    }
    yield sessions
    for client in clients.values():
        await asyncio.wait_for(client.close_async(), TIMEOUT)


async def subscriber(server: LiveServer, room: str, sockets: list[RawClient]) -> RawClient:
    """A graphql-transport-ws socket with operation ``chat`` on ``room``'s messages."""
    client = await RawClient.open(server.ws_url, "graphql-transport-ws")
    sockets.append(client)
    await client.subscribe("chat", subscription_query(room))
    return client


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


def numbered(source: str) -> list[str]:
    """A numbered sequence of texts, then its sentinel (nothing may come between or twice)."""
    return [f"{source} {number}" for number in range(SEQUENCE)] + [f"{source} end"]


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``condition`` (state in another process's Redis: no event to wait on) until it
    holds, within ``TIMEOUT``."""
    try:
        async with asyncio.timeout(TIMEOUT):
            while not await condition():  # noqa: ASYNC110 - another process's Redis state
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"Not within {TIMEOUT}s: {what}") from None


def plain_process(server: LiveServer, code: str, *args: str) -> None:
    """Run ``code`` (after ``django.setup()``) in a plain Python process on the workers'
    settings, database and layer; it must succeed."""
    result = subprocess.run(
        [sys.executable, "-c", f"import django\ndjango.setup()\n{code}", *args],
        cwd=PROJECT_ROOT,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 6,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


DISCONNECT = """
import json, sys
from gqlchannels.control import disconnect_sync
disconnect_sync(json.loads(sys.argv[1]))
"""

DISCONNECT_USER = """
import sys
from django.contrib.auth import get_user_model
from gqlchannels.control import disconnect_user_sync
disconnect_user_sync(get_user_model().objects.get(username=sys.argv[1]))
"""


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shard", SHARDS)
async def test_a_topics_group_lives_on_the_shard_its_hash_names(
    deployment: Deployment,
    posters: dict[str, AsyncClientSession],
    sockets: list[RawClient],
    shard: int,
) -> None:
    room = deployment.room_on(shard)
    group = group_name(room_topic(room))
    on_a = await subscriber(deployment.a, room, sockets)
    on_b = await subscriber(deployment.b, room, sockets)
    await listening(posters["a"], room, on_a, on_b)

    hubs = [await asyncio.to_thread(deployment.hubs_in, group, index) for index in SHARDS]
    assert hubs[shard] == 2 and hubs[1 - shard] == 0, hubs


@pytest.mark.parametrize("shard", SHARDS)
async def test_events_from_either_worker_and_a_plain_process_reach_every_subscriber_once_in_order(
    deployment: Deployment,
    posters: dict[str, AsyncClientSession],
    sockets: list[RawClient],
    shard: int,
) -> None:
    room = deployment.room_on(shard)
    clients = [
        await subscriber(server, room, sockets)
        for server in (deployment.a, deployment.a, deployment.b, deployment.b)
    ]
    await listening(posters["b"], room, *clients)

    expected: list[str] = []
    for source in ("a", "b"):
        for text in numbered(f"from {source}"):
            await post(posters[source], room, text)
        expected += numbered(f"from {source}")
    plain = numbered("plain")
    published = await asyncio.to_thread(publish_from_plain_process, deployment.a.env, room, plain)
    assert published.returncode == 0, published.stderr
    expected += plain

    for client in clients:
        assert [await next_text(client, TIMEOUT) for _ in expected] == expected
    for client in clients:  # and nothing more: each event came once
        with pytest.raises(TimeoutError):
            await next_text(client, 0.3)


async def test_control_disconnect_closes_connections_on_both_workers(
    deployment: Deployment, posters: dict[str, AsyncClientSession], sockets: list[RawClient]
) -> None:
    room = deployment.room_on(0)
    on_a = await subscriber(deployment.a, room, sockets)
    on_b = await subscriber(deployment.b, room, sockets)
    await listening(posters["a"], room, on_a, on_b)

    def subscribed(rows: dict[str, dict[str, Any]]) -> bool:
        return [row["topics"] for row in rows.values()].count([room_topic(room)]) == 2

    rows = await rows_where(deployment.a, subscribed)
    targets: dict[str, list[str]] = {}
    for connection_id, row in rows.items():
        if row["topics"] == [room_topic(room)]:
            targets.setdefault(row["channel"], []).append(connection_id)
    assert len(targets) == 2, targets  # one hub channel per worker

    await asyncio.to_thread(plain_process, deployment.a, DISCONNECT, json.dumps(targets))

    codes = await asyncio.gather(on_a.close_code(), on_b.close_code())
    assert list(codes) == [4000, 4000]


async def test_disconnect_user_reaches_the_users_sockets_on_both_workers(
    deployment: Deployment,
) -> None:
    a, b = deployment.a, deployment.b
    username = f"leaver-{deployment.kind}"
    await asyncio.to_thread(create_superuser, a, username)
    browser = Browser(a)
    await asyncio.to_thread(browser.login, username, ADMIN_PASSWORD)
    signed_in = [
        await signed_in_socket(server, "graphql-transport-ws", browser) for server in (a, b)
    ]
    control_shard = deployment.shard_of(CONTROL_GROUP)

    async def both_hubs_in_control_group() -> bool:
        return await asyncio.to_thread(deployment.hubs_in, CONTROL_GROUP, control_shard) == 2

    await until(both_hubs_in_control_group, "both hubs joined the control group")

    await asyncio.to_thread(plain_process, a, DISCONNECT_USER, username)

    try:
        async with asyncio.timeout(TIMEOUT):
            codes = await asyncio.gather(*(socket.close_code() for socket in signed_in))
    finally:
        for socket in signed_in:
            await socket.close()
    assert list(codes) == [4403, 4403]
