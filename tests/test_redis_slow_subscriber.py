"""A subscriber that stops reading costs the server bounded memory and costs others nothing.

One graphql-transport-ws client subscribes to a room and then never reads again, with a
receive buffer of a few KiB, so the server's writes to it back up at once. 10,000 events of
about 8 KB are then published to the room through Redis. Daphne's ``send`` never waits: a
server that queued every frame for the stalled client would grow by ~80 MB or more.
gqlchannels keeps at most ``SEND_WINDOW`` unread frames in flight per connection and
``SUBSCRIPTION_BUFFER_SIZE`` events per subscription, then ends that subscription with an
error, so the daphne process's peak RSS may grow by at most ``RSS_GROWTH_BOUND_KIB``;
meanwhile a second subscriber on the same room, which keeps reading, receives every event
once and in order.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.test import override_settings
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.typing import Origin, Subprotocol
from websockets.uri import parse_uri

from gqlchannels import broadcast
from tests.live_server import HOST, ORIGIN, LiveServer, running_daphne
from tests.redis_support import (
    delete_prefix,
    layer_environment,
    message_event,
    publish_until_received,
    require_redis,
    room_topic,
    rss_kib,
    subscription_query,
    unique_prefix,
)
from tests.test_end_to_end import RawClient

pytestmark = pytest.mark.redis

#: Upper bound of every single wait on the server, in seconds.
TIMEOUT = 10.0
EVENTS = 10_000
#: Characters of filler in each event's text (the frame is about 8 KB).
EVENT_FILLER = 8_000
#: Events the publisher may be ahead of the reading subscriber: well under the layer's
#: per-channel capacity (1,000) and the subscription buffer, so that the reader's own path
#: never drops anything and every loss would be the server's doing.
PUBLISH_AHEAD = 200
#: The stalled client's socket receive buffer, in bytes (the kernel doubles it).
STALLED_RECEIVE_BUFFER = 4096
#: Bound on the growth of daphne's peak RSS while the 10,000 events pass. Measured here
#: (2 cores): +13.3 to +14.5 MiB with the defaults (SEND_WINDOW 500, SUBSCRIPTION_BUFFER_SIZE
#: 1000), and +94.4 MiB with both set to 1,000,000, so that neither applies.
RSS_GROWTH_BOUND_KIB = 40 * 1024

_rooms = iter(range(1, 1_000_000))


@pytest.fixture(scope="module")
def redis_layer() -> Iterator[dict[str, Any]]:
    """The shared Redis' channel-layer settings, under a prefix of this module's own."""
    url = require_redis()
    prefix = unique_prefix()
    yield {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": url, "socket_timeout": 10}],
            "capacity": 1000,
            "prefix": prefix,
        },
    }
    delete_prefix(url, prefix)


@pytest.fixture(scope="module")
def server(
    redis_layer: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """daphne on that layer. A pong timeout longer than the test keeps the stalled client
    connected throughout, so only the send window and the subscription buffer bound what the
    server holds for it."""
    config = redis_layer["CONFIG"]
    # The window and the subscription buffer are under test, not the outbound budget (it would
    # close the stalled client near 4 MiB), nor daphne's own WebSocket pings (which drop a
    # client that reads nothing for 50 s: a slow machine takes that long).
    env = layer_environment(
        config["hosts"][0]["address"],
        config["prefix"],
        PONG_TIMEOUT=120,
        MAX_OUTBOUND_BUFFER_BYTES=256 * 1024 * 1024,
    )
    options = ["--ping-timeout", "600"]
    with running_daphne(tmp_path_factory.mktemp("daphne-slow"), env=env, options=options) as live:
        yield live


class StalledClient:
    """A graphql-transport-ws client on a bare socket with a tiny receive buffer, driven by
    websockets' sans-I/O protocol: it reads only when told to, so it can stop reading
    entirely (and then answers no ping either)."""

    def __init__(self, sock: socket.socket, protocol: ClientProtocol):
        self.sock = sock
        self.protocol = protocol
        self._frames: list[dict[str, Any]] = []

    @classmethod
    async def open(cls, server: LiveServer) -> StalledClient:
        """Connect, upgrade, and get ``connection_init`` acknowledged."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALLED_RECEIVE_BUFFER)
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, (HOST, server.port)), TIMEOUT)
        protocol = ClientProtocol(
            parse_uri(server.ws_url),
            origin=Origin(ORIGIN),
            subprotocols=[Subprotocol("graphql-transport-ws")],
            max_size=None,
        )
        client = cls(sock, protocol)
        protocol.send_request(protocol.connect())
        await client._flush()
        await asyncio.wait_for(client._handshake(), TIMEOUT)
        await client.send({"type": "connection_init", "payload": {}})
        ack = await client.frame(lambda frame: True)
        assert ack["type"] == "connection_ack", ack
        return client

    async def _handshake(self) -> None:
        while self.protocol.state is State.CONNECTING:
            await self._read()
        assert self.protocol.handshake_exc is None, self.protocol.handshake_exc

    async def _flush(self) -> None:
        data = b"".join(self.protocol.data_to_send())
        if data:
            await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def _read(self) -> None:
        data = await asyncio.get_running_loop().sock_recv(self.sock, 65536)
        if data:
            self.protocol.receive_data(data)
        else:
            self.protocol.receive_eof()
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                continue
            assert isinstance(event, Frame)
            if event.opcode is Opcode.TEXT:
                assert event.fin, "the server does not fragment frames"
                self._frames.append(json.loads(bytes(event.data)))
        await self._flush()  # answers WebSocket pings and close frames
        if self.protocol.state is State.CLOSED or not data:
            raise ConnectionError(f"closed by the server ({self.protocol.close_code})")

    async def send(self, message: dict[str, Any]) -> None:
        """Send one frame."""
        self.protocol.send_text(json.dumps(message).encode())
        await asyncio.wait_for(self._flush(), TIMEOUT)

    async def frame(
        self, wanted: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """Read until a frame ``wanted`` accepts; others are skipped, pings answered."""

        async def read() -> dict[str, Any]:
            while True:
                while self._frames:
                    frame = self._frames.pop(0)
                    if frame.get("type") == "ping":
                        await self.send({"type": "pong"})
                    elif wanted(frame):
                        return frame
                await self._read()

        return await asyncio.wait_for(read(), timeout)

    async def text(self, timeout: float) -> str:
        """The ``text`` of the next ``messageAdded`` event."""
        frame = await self.frame(lambda frame: frame.get("id") == "chat", timeout)
        assert frame["type"] == "next", frame
        text: str = frame["payload"]["data"]["messageAdded"]["text"]
        return text

    def close(self) -> None:
        """Drop the connection."""
        self.sock.close()


def event_text(number: int) -> str:
    """Event ``number``'s text: its number, then filler to make the frame about 8 KB."""
    return f"event {number} " + "x" * EVENT_FILLER


def number_of(text: str) -> int:
    """The number of an event's text."""
    assert text.startswith("event "), text[:40]
    return int(text.split(" ", 2)[1])


class PeakRss:
    """Samples a process's RSS every 50 ms while running; ``peak`` is the highest seen (and
    at least the kernel's own high-water mark, VmHWM, read at the end)."""

    def __init__(self, pid: int):
        self.pid = pid
        self.start = rss_kib(pid)
        self.peak = self.start
        self._task = asyncio.get_running_loop().create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_kib(self.pid))
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop sampling and take the high-water mark into account."""
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.peak = max(self.peak, rss_kib(self.pid, "VmHWM"))


async def test_a_stalled_subscriber_costs_bounded_memory_and_others_get_every_event(
    server: LiveServer, redis_layer: dict[str, Any]
) -> None:
    room = f"slow-{next(_rooms)}"
    topic = room_topic(room)
    with override_settings(CHANNEL_LAYERS={"default": redis_layer}):
        layer = get_channel_layer()

        async def publish(text: str, number: int = 0) -> None:
            await broadcast(topic, message_event(room, text, number))

        stalled = await StalledClient.open(server)
        reader = await RawClient.open(server.ws_url, "graphql-transport-ws")
        try:
            await stalled.send(
                {"id": "chat", "type": "subscribe", "payload": {"query": subscription_query(room)}}
            )
            await reader.subscribe("chat", subscription_query(room))

            async def read_next(timeout: float) -> str:
                text: str = (await reader.data("chat", timeout))["messageAdded"]["text"]
                return text

            await publish_until_received(publish, stalled.text, read_next)
            # From here on the stalled client reads nothing.

            rss = PeakRss(server.process.pid)
            received = 0
            progress = asyncio.Event()

            async def publish_all() -> None:
                for number in range(EVENTS):
                    while number - received >= PUBLISH_AHEAD:
                        progress.clear()
                        await progress.wait()
                    await publish(event_text(number), number)

            started = time.monotonic()
            publisher = asyncio.get_running_loop().create_task(publish_all())
            try:
                for expected in range(EVENTS):
                    assert number_of(await read_next(TIMEOUT)) == expected
                    received += 1
                    progress.set()
            finally:
                publisher.cancel()
                await asyncio.gather(publisher, return_exceptions=True)
            took = time.monotonic() - started
            await rss.stop()
            growth = rss.peak - rss.start
            print(
                f"\n{EVENTS} events in {took:.1f}s; daphne RSS {rss.start / 1024:.1f} MiB "
                f"before, peak {rss.peak / 1024:.1f} MiB (+{growth / 1024:.1f} MiB)"
            )
            assert growth < RSS_GROWTH_BOUND_KIB, f"daphne grew by {growth / 1024:.1f} MiB"

            # Reading again, the stalled client gets the start of the sequence, in order,
            # then the error that ended its subscription: it missed events, and is told so.
            numbers = []
            for _ in range(EVENTS + 1):
                frame = await stalled.frame(lambda frame: frame.get("id") == "chat")
                if frame["type"] != "next":
                    break
                numbers.append(number_of(frame["payload"]["data"]["messageAdded"]["text"]))
            print(f"The stalled client got events 0 to {numbers[-1] if numbers else None}")
            assert numbers == list(range(len(numbers)))
            assert len(numbers) < EVENTS
            assert frame["type"] == "error", frame
            assert "behind" in frame["payload"][0]["message"], frame
        finally:
            stalled.close()
            await reader.close()
            assert layer is not None
            await layer.close_pools()  # type: ignore[attr-defined]  # channels-redis' own, not in the BaseChannelLayer stub
