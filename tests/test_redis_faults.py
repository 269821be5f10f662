"""Redis faults under a live daphne: expiring groups, a restart that loses every key, an outage.

channels-redis forgets a group's members ``group_expiry`` seconds after they joined and forgets
everything when a Redis without persistence restarts; the per-process hub must re-join so that
long-lived subscriptions keep receiving. While Redis is down, publishing must fail fast with an
answer, and WebSockets must stay open and quiet. The restart and outage tests run their own
``redis-server`` (``RedisServer``), which they stop and start on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from gql import Client
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError

from gqlchannels.execution import MASKED_MESSAGE
from tests.live_server import LiveServer, running_server
from tests.redis_support import (
    PUBLISH_FAILED,
    RedisServer,
    delete_prefix,
    layer_environment,
    publish_from_plain_process,
    publish_until_received,
    require_redis,
    subscription_query,
    unique_prefix,
)
from tests.test_end_to_end import PROTOCOLS, RawClient, closed_line, post, transport

pytestmark = pytest.mark.redis

TRANSPORT_WS = PROTOCOLS["graphql-transport-ws"]
#: Upper bound of every single wait on the server, in seconds.
TIMEOUT = 10.0
#: The servers' layer forgets group members this many seconds after they (re-)joined.
GROUP_EXPIRY = 3
#: Seconds ``broadcast`` waits for the layer in the servers on the private Redis.
BROADCAST_TIMEOUT = 1.0
#: Seconds a subscription may take to receive again once a restarted Redis answers: the
#: documented target (2 s) and a second more for a loaded machine.
RECOVERY_TIMEOUT = 3.0
#: Restarts in a row that a live subscription must survive, and how long Redis stays down in
#: each: long enough for the hub's retries to back off to their longest wait.
RESTARTS = 3
DOWNTIME = 4.0
#: Sessions that keep a worker busy by posting, and the pause between each one's posts.
BUSY_POSTERS = 3
BUSY_PACE = 0.05
#: Lines the server may log in the whole outage test (a few warnings: the channel layer
#: failing, once, whichever call noticed, and one per refused post).
MAX_OUTAGE_LOG_LINES = 8
PROBLEMS = re.compile(r"ERROR|CRITICAL|Traceback")

_rooms = itertools.count(1)


def fresh_room(prefix: str) -> str:
    """A room no other test publishes to."""
    return f"{prefix}-{next(_rooms)}"


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """This module's own redis-server, which its tests stop and restart."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module", params=["daphne", "uvicorn"])
def server_kind(request: pytest.FixtureRequest) -> str:
    """The ASGI server of this module's workers: every test with a worker runs on each."""
    kind: str = request.param
    return kind


@pytest.fixture(scope="module")
def server(
    private_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory, server_kind: str
) -> Iterator[LiveServer]:
    """A worker (daphne or uvicorn) on the private Redis, with the layer's default group
    expiry (a day), so that only the hub's fault handling can bring memberships back after a
    restart."""
    env = layer_environment(private_redis.url, BROADCAST_TIMEOUT=BROADCAST_TIMEOUT)
    directory = tmp_path_factory.mktemp(f"{server_kind}-private-redis")
    with running_server(directory, server_kind, env=env) as live:
        yield live


@pytest.fixture(scope="module")
def other_server(
    server: LiveServer, tmp_path_factory: pytest.TempPathFactory, server_kind: str
) -> Iterator[LiveServer]:
    """A second worker of the same server on the private Redis, under ``server``'s prefix."""
    env = layer_environment(
        server.env["REDIS_URL"],
        server.env["GQLCHANNELS_REDIS_PREFIX"],
        BROADCAST_TIMEOUT=BROADCAST_TIMEOUT,
    )
    directory = tmp_path_factory.mktemp(f"{server_kind}-private-redis-other")
    with running_server(directory, server_kind, env=env) as live:
        yield live


@pytest.fixture
def redis_running(private_redis: RedisServer) -> RedisServer:
    """The private Redis, running (a test that failed half-way may have left it stopped)."""
    if private_redis.process is None:
        private_redis.start()
    return private_redis


@contextlib.asynccontextmanager
async def session_on(server: LiveServer) -> AsyncIterator[AsyncClientSession]:
    """A gql session (graphql-transport-ws) on ``server``, closed on exit."""
    client = Client(transport=transport(server, TRANSPORT_WS), execute_timeout=TIMEOUT)
    session = await asyncio.wait_for(client.connect_async(), TIMEOUT)
    try:
        yield session
    finally:
        await asyncio.wait_for(client.close_async(), TIMEOUT)


@pytest.fixture
async def poster(server: LiveServer) -> AsyncIterator[AsyncClientSession]:
    """A gql session on ``server`` that posts messages."""
    async with session_on(server) as session:
        yield session


async def text_of(client: RawClient, operation_id: str, timeout: float) -> str:
    """The ``text`` of the next ``messageAdded`` event of ``operation_id``."""
    text: str = (await client.data(operation_id, timeout))["messageAdded"]["text"]
    return text


async def subscribe(server: LiveServer, room: str) -> RawClient:
    """A graphql-transport-ws connection to ``server`` with operation ``chat`` listening to
    ``room`` (not yet known to receive: see ``publish_until_received``)."""
    client = await RawClient.open(server.ws_url, "graphql-transport-ws")
    await client.subscribe("chat", subscription_query(room))
    return client


async def ping_pong(client: RawClient) -> None:
    """The client pings; the server must answer with a pong."""
    await client.send({"type": "ping"})
    await client.frame(lambda frame: frame.get("type") == "pong", TIMEOUT)


async def wait_for_output(server: LiveServer, pattern: str, since: int = 0) -> None:
    """Return once the server's stderr (from offset ``since``) matches ``pattern``."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if re.search(pattern, server.output()[since:]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"The server never logged {pattern!r}:\n{server.output()[since:]}")


# -- group expiry ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def expiring_server(
    tmp_path_factory: pytest.TempPathFactory, server_kind: str
) -> Iterator[LiveServer]:
    """A worker on the shared Redis, whose layer forgets group members after GROUP_EXPIRY s."""
    url = require_redis()
    prefix = unique_prefix()
    env = layer_environment(url, prefix, GROUP_EXPIRY=GROUP_EXPIRY)
    with running_server(
        tmp_path_factory.mktemp(f"{server_kind}-expiry"), server_kind, env=env
    ) as live:
        yield live
    delete_prefix(url, prefix)


async def test_subscription_outlives_the_layers_group_expiry(expiring_server: LiveServer) -> None:
    """Without re-joins, channels-redis drops the hub from the room's group GROUP_EXPIRY
    seconds after it joined and the message posted at the end is lost; the hub re-joins
    every GROUP_EXPIRY / 3 s, so it arrives."""
    room = fresh_room("expiry")
    client = Client(transport=transport(expiring_server, TRANSPORT_WS), execute_timeout=TIMEOUT)
    session = await asyncio.wait_for(client.connect_async(), TIMEOUT)
    listener = await subscribe(expiring_server, room)
    try:
        next_text = functools.partial(text_of, listener, "chat")
        await publish_until_received(functools.partial(post, session, room), next_text)
        # Three expiry periods pass; reading meanwhile answers the server's pings, and
        # nothing else may arrive.
        joined = time.monotonic()
        with pytest.raises(TimeoutError):
            await listener.frame(lambda frame: True, timeout=3 * GROUP_EXPIRY + 0.5)
        assert time.monotonic() - joined > 3 * GROUP_EXPIRY
        await post(session, room, "still listening")
        assert await next_text(TIMEOUT) == "still listening"
    finally:
        await listener.close()
        await asyncio.wait_for(client.close_async(), TIMEOUT)


# -- restarts that lose everything ------------------------------------------------------------


@contextlib.asynccontextmanager
async def busy(server: LiveServer, room: str) -> AsyncIterator[None]:
    """Keep ``server`` busy while the block runs: BUSY_POSTERS sessions post to ``room``, one
    message each every BUSY_PACE, refusals ignored, so that its layer calls overlap and its
    connection pool holds several connections (all of which a Redis restart leaves stale)."""

    async def keep_posting(session: AsyncClientSession) -> None:
        for number in itertools.count():
            await post_or_refused(session, room, [], f"busy {number}")
            await asyncio.sleep(BUSY_PACE)

    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(session_on(server)) for _ in range(BUSY_POSTERS)
        ]
        tasks = [asyncio.create_task(keep_posting(session)) for session in sessions]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize("worker", ["busy", "quiet"])
async def test_a_live_subscription_receives_again_after_each_of_several_redis_restarts(
    server: LiveServer, other_server: LiveServer, redis_running: RedisServer, worker: str
) -> None:
    """Redis restarts empty RESTARTS times in a row, down for DOWNTIME each time (the room's
    group is gone, every pooled connection is stale), under a worker with a live
    subscription that is either busy (the probes, and more posts, go through it) or quiet
    (the probes are posted through another worker, so it makes no layer call but its own
    receive and re-joins). After each restart, probes are posted every PROBE_WAIT from the
    moment Redis answers again; the subscription must receive one within RECOVERY_TIMEOUT,
    and every probe after it, in order. The recovery times are printed (``pytest -s``)."""
    room = fresh_room(f"restart-{worker}")
    listener = await subscribe(server, room)
    next_text = functools.partial(text_of, listener, "chat")
    recoveries = []
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(listener.close)
        poster = await stack.enter_async_context(
            session_on(server if worker == "busy" else other_server)
        )
        await publish_until_received(functools.partial(post, poster, room), next_text)
        if worker == "busy":
            await stack.enter_async_context(busy(server, fresh_room("busy")))
        for restart in range(1, RESTARTS + 1):
            await asyncio.to_thread(redis_running.restart, DOWNTIME)
            answering = time.monotonic()
            refused: list[str] = []
            await publish_until_received(
                functools.partial(post_or_refused, poster, room, refused),
                next_text,
                label=f"after restart {restart}",
                timeout=RECOVERY_TIMEOUT,
            )
            recoveries.append(f"{time.monotonic() - answering:.2f}s ({len(refused)} refused)")
        print(
            f"\nReceiving again after each Redis restart, {worker} worker: {', '.join(recoveries)}"
        )
        await post(poster, room, "settled")
        assert await next_text(TIMEOUT) == "settled"


async def test_a_worker_idle_during_a_redis_restart_serves_the_next_subscription(
    redis_running: RedisServer, tmp_path: Path, server_kind: str
) -> None:
    """A worker serves a subscription (with overlapping posts, so its pool holds several
    connections), every client leaves, and Redis restarts empty while the worker is idle:
    its pooled connections are all stale. The first subscription opened afterwards must be
    served: it receives what is posted, instead of an error."""
    env = layer_environment(redis_running.url, BROADCAST_TIMEOUT=BROADCAST_TIMEOUT)
    # The demo's consumer logs each closed connection (INFO), which says when the worker is
    # idle; daphne's verbosity 2 adds Twisted's own errors.
    verbosity = 2 if server_kind == "daphne" else None
    with running_server(tmp_path, server_kind, verbosity=verbosity, env=env) as server:
        room = fresh_room("idle")
        listener = await subscribe(server, room)
        async with session_on(server) as session:
            next_text = functools.partial(text_of, listener, "chat")
            await publish_until_received(functools.partial(post, session, room), next_text)
            texts = {f"overlapping {number}" for number in range(BUSY_POSTERS)}
            await asyncio.gather(*(post(session, room, text) for text in texts))
            assert {await next_text(TIMEOUT) for _ in texts} == texts
            ports = [
                listener.ws.local_address[1],
                session.transport.adapter.websocket.local_address[1],
            ]
            await listener.close()
        for port in ports:
            await wait_for_output(server, closed_line(port))

        await asyncio.to_thread(redis_running.restart)
        newcomer = await subscribe(server, room)
        try:
            async with session_on(server) as session:
                await publish_until_received(
                    functools.partial(post, session, room),
                    functools.partial(text_of, newcomer, "chat"),
                    label="after the restart",
                )
        finally:
            await newcomer.close()
        assert not PROBLEMS.search(server.output()), server.output()


async def test_a_subscription_opened_while_redis_is_down_gets_a_clear_error(
    server: LiveServer, redis_running: RedisServer
) -> None:
    """Redis is down: each subscription opened then ends with an ``error`` saying the
    channel layer is unavailable (not a masked internal error), the outage is logged once
    at WARNING, not per subscription, with no ERROR or traceback, and the connection stays
    usable: it answers pings and, once Redis is back, serves a subscription."""
    room = fresh_room("down")
    client = await RawClient.open(server.ws_url, "graphql-transport-ws")
    try:
        logged_before = len(server.output())
        await asyncio.to_thread(redis_running.stop)
        for operation_id in ("first", "second", "third"):
            await client.subscribe(operation_id, subscription_query(room))
            frame = await client.frame(lambda frame, wanted=operation_id: frame.get("id") == wanted)
            assert frame["type"] == "error", frame
            assert [error["message"] for error in frame["payload"]] == [
                "Could not subscribe: the channel layer is unavailable"
            ], frame
        await ping_pong(client)
        outage_log = server.output()[logged_before:]
        print(f"\nServer output while subscriptions were refused:\n{outage_log}")
        assert not PROBLEMS.search(outage_log), outage_log
        [line] = outage_log.splitlines()  # one line for the outage, none per subscription
        assert "Channel layer failing" in line, line

        await asyncio.to_thread(redis_running.start)
        await client.subscribe("chat", subscription_query(room))
        async with session_on(server) as session:
            await publish_until_received(
                functools.partial(post_or_refused, session, room, []),
                functools.partial(text_of, client, "chat"),
                label="back",
            )
    finally:
        await client.close()


# -- an outage -------------------------------------------------------------------------------


async def test_faults_while_redis_is_down_get_answers_and_delivery_resumes(
    server: LiveServer, redis_running: RedisServer, poster: AsyncClientSession
) -> None:
    """Redis stops under a server with a live subscription: posting answers within about
    BROADCAST_TIMEOUT, ``broadcast_sync`` in a plain process raises BroadcastError, both
    WebSockets stay open and answer pings, and the server logs a handful of lines, not one
    per frame. Redis comes back on the same port (empty): a message posted then reaches the
    existing subscription, with the same daphne."""
    room = fresh_room("outage")
    listener = await subscribe(server, room)
    try:
        next_text = functools.partial(text_of, listener, "chat")
        await publish_until_received(functools.partial(post, poster, room), next_text)

        logged_before = len(server.output())
        redis_running.stop()

        started = time.monotonic()
        with pytest.raises(TransportQueryError) as raised:
            await post(poster, room, "while Redis is down")
        took = time.monotonic() - started
        print(f"\nPosting with Redis down answered in {took:.2f}s: {raised.value.errors}")
        assert took < BROADCAST_TIMEOUT + 2.0, took
        errors = raised.value.errors or []
        assert [error.get("path") for error in errors] == [["postMessage"]], errors
        assert errors[0]["message"] != MASKED_MESSAGE, errors

        published = await asyncio.to_thread(
            publish_from_plain_process, server.env, room, ["from a plain process"]
        )
        assert published.returncode == PUBLISH_FAILED, published.stderr
        assert re.search(
            r"BroadcastError: Could not publish to 'room:\S+'.*(refused|failed)",
            published.stderr,
            re.IGNORECASE,
        ), published.stderr

        # The hub has met the fault (a layer call failed and said so); frames keep being
        # answered, over more than a second of the hub's retries, and add nothing to the log.
        await wait_for_output(server, r"Channel layer failing", since=logged_before)
        logged_at_first_ping = len(server.output())
        for _ in range(30):
            await ping_pong(listener)
            await asyncio.sleep(0.05)
        await post_refused(poster, room)
        outage_log = server.output()[logged_before:]
        print(f"Server output during the outage:\n{outage_log}")
        assert not PROBLEMS.search(outage_log), outage_log
        assert len(outage_log.splitlines()) <= MAX_OUTAGE_LOG_LINES, outage_log
        per_frame = server.output()[logged_at_first_ping:].splitlines()
        assert len(per_frame) <= 2, per_frame  # the second refused post's warning, little else

        redis_running.start()
        back = time.monotonic()
        refused: list[str] = []
        await publish_until_received(
            functools.partial(post_or_refused, poster, room, refused),
            next_text,
            label="back",
            timeout=RECOVERY_TIMEOUT,
        )
        print(
            f"Delivery resumed {time.monotonic() - back:.2f}s after Redis came back "
            f"({len(refused)} posts refused meanwhile: {refused})"
        )
        await post(poster, room, "delivered again")
        assert await next_text(TIMEOUT) == "delivered again"
        assert server.process.poll() is None, "the same daphne serves throughout"
    finally:
        await listener.close()


async def post_or_refused(
    session: AsyncClientSession, room: str, refused: list[str], text: str
) -> bool:
    """Post ``text``; False (and ``text`` noted in ``refused``) if the server answered that
    it could not publish it.

    Right after a restart, a publish can fail although Redis answers again: channels-redis
    (on redis-py 8) sends it on a pooled connection the restart closed and gets "Connection
    closed by server". The server says so, and that probe is not expected to arrive.
    """
    try:
        await post(session, room, text)
    except TransportQueryError:
        refused.append(text)
        return False
    return True


async def post_refused(session: AsyncClientSession, room: str) -> None:
    """Posting must fail with a GraphQL error (the layer is down)."""
    with pytest.raises(TransportQueryError):
        await post(session, room, "still down")


async def test_the_first_publish_after_a_redis_restart_succeeds(tmp_path):
    """channels-redis' pool hands out a connection the restarted server already closed; the
    publish retries once on a fresh connection instead of failing although Redis is up."""
    from channels.layers import channel_layers
    from django.test import override_settings

    import gqlchannels

    with RedisServer(tmp_path) as redis:
        layers = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [{"address": redis.url, "socket_timeout": 10}]},
            }
        }
        with override_settings(CHANNEL_LAYERS=layers):
            await gqlchannels.broadcast("restart", {"n": 1})
            await asyncio.to_thread(redis.restart)
            await gqlchannels.broadcast("restart", {"n": 2})
            await channel_layers["default"].close_pools()  # type: ignore[attr-defined]  # channels-redis' own, not in the BaseChannelLayer stub
