"""Prometheus' multi-process mode: two daphne workers of one service, on one Redis, writing
their metrics to one ``PROMETHEUS_MULTIPROC_DIR``; a scrape of either one adds both up.

The load is counted on the client's side (events published by a plain process, results each
subscriber received) and compared with what the scrape says.
"""

from __future__ import annotations

import asyncio
import functools
import urllib.request
from collections.abc import AsyncIterator, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.live_server import LiveServer, running_daphne
from tests.redis_support import (
    delete_prefix,
    layer_environment,
    publish_from_plain_process,
    publish_until_received,
    require_redis,
    subscription_query,
    unique_prefix,
)
from tests.test_end_to_end import RawClient

pytestmark = [pytest.mark.redis, pytest.mark.e2e]

TIMEOUT = 10.0
TOKEN = "live-scrape-token-0123456789"
TRANSPORT_WS = "graphql-transport-ws"
POST = 'mutation {{ postMessage(room: "{room}", text: "{text}") {{ id }} }}'  # texts have no quotes
#: Events the plain publisher sends, after the probes.
EVENTS = 20

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Workers A and B: daphne processes on one Redis and one multi-process directory."""
    url = require_redis()
    prefix = unique_prefix()
    env = layer_environment(url, prefix, METRICS_TOKEN=TOKEN)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path_factory.mktemp("prometheus"))
    with (
        running_daphne(tmp_path_factory.mktemp("metrics-a"), env=env) as a,
        running_daphne(tmp_path_factory.mktemp("metrics-b"), env=env) as b,
    ):
        yield a, b
    delete_prefix(url, prefix)


@pytest.fixture
async def clients() -> AsyncIterator[list[RawClient]]:
    """A list the test adds its clients to; each is closed after the test."""
    opened: list[RawClient] = []
    yield opened
    for client in opened:
        await client.close()


def _scrape(server: LiveServer) -> Samples:
    request = urllib.request.Request(
        f"{server.http_url}/metrics/", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(server: LiveServer) -> Samples:
    """Every sample ``server``'s metrics view shows (the service's, in multi-process mode)."""
    return await asyncio.to_thread(_scrape, server)


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def live_connections(server: LiveServer) -> float:
    return sample(await scrape(server), "gqlchannels_connections_live", protocol=TRANSPORT_WS)


async def until_live_connections(server: LiveServer, expected: float) -> None:
    """Poll the scrape (the teardown of a closed socket finishes after the client's close)."""
    async with asyncio.timeout(TIMEOUT):
        # Another process's state: nothing to wait on but its answers.
        while await live_connections(server) != expected:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_live_connections_are_summed_over_the_workers(
    servers: tuple[LiveServer, LiveServer], clients: list[RawClient]
) -> None:
    a, b = servers
    await until_live_connections(a, 0)
    for server in (a, a, b):
        clients.append(await RawClient.open(server.ws_url, TRANSPORT_WS))
    await until_live_connections(a, 3)
    assert await live_connections(b) == 3


async def next_text(client: RawClient, timeout: float) -> str:
    text: str = (await client.data("chat", timeout))["messageAdded"]["text"]
    return text


async def post(poster: RawClient, room: str, text: str) -> None:
    """Publish ``text`` to ``room`` by the demo's mutation (broadcast on the poster's worker)."""
    operation = f"post-{text.replace(' ', '-')}"
    await poster.subscribe(operation, POST.format(room=room, text=text))
    await poster.data(operation)


async def test_a_scrape_of_one_worker_counts_every_delivery_of_both(
    servers: tuple[LiveServer, LiveServer], clients: list[RawClient]
) -> None:
    a, b = servers
    room = "metrics-live"
    for server in (a, a, b, b):
        client = await RawClient.open(server.ws_url, TRANSPORT_WS)
        await client.subscribe("chat", subscription_query(room))
        clients.append(client)
    subscribers, poster = clients[:], await RawClient.open(b.ws_url, TRANSPORT_WS)
    clients.append(poster)
    await publish_until_received(
        functools.partial(post, poster, room),
        *(functools.partial(next_text, client) for client in subscribers),
    )
    before = await scrape(a)

    texts = [f"event {number}" for number in range(EVENTS)]
    published = await asyncio.to_thread(publish_from_plain_process, a.env, room, texts)
    assert published.returncode == 0, published.stderr
    received = [[await next_text(client, TIMEOUT) for _ in texts] for client in subscribers]
    assert received == [texts] * len(subscribers)
    deliveries = len(subscribers) * len(texts)

    def counted(samples: Samples, name: str) -> float:
        return sample(samples, name) - sample(before, name)

    delivered, lags = "gqlchannels_events_delivered_total", "gqlchannels_delivery_lag_seconds_count"
    async with asyncio.timeout(TIMEOUT):  # other processes' counters: polled, bounded
        while counted(after := await scrape(a), delivered) < deliveries:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    assert (counted(after, delivered), counted(after, lags)) == (deliveries, deliveries)
