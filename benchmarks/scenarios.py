"""The four scenarios, each run against one live server through a ``WorkerPool``.

Each returns a plain dict (it goes into the JSON results as is). Times are wall-clock
``time.time()`` on one machine, so a latency is the receive time in a client process minus
the ``sentAt`` the publisher stamped in the event.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.client import GraphQLClient
from benchmarks.harness import (
    HttpPublisher,
    ProcessPublisher,
    Profiler,
    Server,
    cpu_seconds,
    rss_bytes,
)
from benchmarks.loadgen import WorkerPool

#: Seconds to wait for a server to start every subscription of a batch of clients.
SETTLE_TIMEOUT = 60.0
#: Seconds to wait for every subscription's ``finally`` after its clients left: three times
#: gqlchannels' DISCONNECT_TIMEOUT; one still running after that will never finish.
FINALLY_TIMEOUT = 15.0
#: Seconds to wait for every subscription to see a priming event.
PRIMING_TIMEOUT = 60.0
#: Seconds memory is left to settle before RSS is read (idle) and after each churn round.
RSS_SETTLE = 1.0
CHURN_SETTLE = 0.5
#: Subscriptions started at once: the next batch goes once the server runs this one. A
#: server that does one ``group_add`` per subscriber (Strawberry, the floor) would otherwise
#: open a Redis connection per subscriber at once, and redis-py 8 fails those that wait too
#: long for one ("Timeout connecting to server").
SUBSCRIBE_BATCH = 100


class ScenarioFailed(RuntimeError):
    """The server did not do what the scenario needs (an error frame, a subscription that
    never started); the driver records the reason and goes on with the next scenario."""


_topics = itertools.count(1)


@dataclass
class Target:
    """A running server and what drives it."""

    server: Server
    publisher: HttpPublisher | ProcessPublisher
    pool: WorkerPool
    #: A graphql-transport-ws connection of the driver's own, for ``liveSubscriptions``
    #: (legacy graphql-ws cannot run queries on Strawberry).
    control: GraphQLClient
    protocol: str
    concurrency: int
    pad_bytes: int = 64
    #: ``liveSubscriptions`` when the scenario began: what it must come back to. Counting
    #: from here keeps one leaked subscription from failing every later scenario too.
    baseline: int = 0
    #: Rounds of opening in which connections that failed are tried again (1: none retried).
    open_attempts: int = 1
    #: Connections that failed to open and were retried, with the first few reasons.
    open_failures: list[str] = field(default_factory=list)
    #: Seconds without a delivery after which a fan-out's missing events count as lost. With
    #: 10,000 subscribers the priming events still being delivered (not counted) take longer.
    collect_stall: float = 5.0

    async def rebase(self) -> None:
        """Take the server's current count of live subscriptions as the baseline."""
        self.baseline = await live_subscriptions(self)


def percentile(values: list[float], fraction: float) -> float | None:
    """The ``fraction`` quantile of ``values`` (linear between closest ranks); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: list[float]) -> dict[str, float | None]:
    """p50, p99 and max of ``values``."""
    return {
        "p50": percentile(values, 0.50),
        "p99": percentile(values, 0.99),
        "max": max(values) if values else None,
    }


def fresh_topic(prefix: str) -> str:
    """A topic no earlier run of this driver used, so stray events cannot cross runs."""
    return f"{prefix}{next(_topics)}x{int(time.time() * 1000) % 100000}"


async def live_subscriptions(target: Target) -> int:
    """Subscriptions the server started whose ``finally`` has not run."""
    data = await target.control.query("{ liveSubscriptions }")
    return int(data["liveSubscriptions"])


async def wait_live(
    target: Target, condition: Callable[[int], bool], timeout: float = SETTLE_TIMEOUT
) -> tuple[int, float]:
    """Poll ``liveSubscriptions`` until ``condition`` holds or ``timeout``; the last count and
    the seconds waited."""
    began = time.monotonic()
    while True:
        live = await live_subscriptions(target)
        waited = time.monotonic() - began
        if condition(live) or waited > timeout:
            return live, waited
        await asyncio.sleep(0.05)


async def open_clients(target: Target, count: int) -> list[dict[str, Any]]:
    """Open ``count`` connections across the workers, trying those that failed again for up
    to ``target.open_attempts`` rounds (each failure noted); fail if some never opened."""
    answers: list[dict[str, Any]] = []
    missing = count
    for attempt in range(1, target.open_attempts + 1):
        batch = await target.pool.open(
            target.server.url, target.protocol, missing, target.concurrency
        )
        answers += batch
        missing -= sum(answer["opened"] for answer in batch)
        failures = [failure for answer in batch for failure in answer["failures"]]
        if not missing:
            break
        if attempt == target.open_attempts:
            raise ScenarioFailed(f"{missing} of {count} connections failed: {failures[:3]}")
        target.open_failures += [f"{missing} failed: {failures[:3]}"]
    return answers


async def subscribe_all(target: Target, topic: str, count: int, expect: int) -> None:
    """Subscribe ``count`` open clients to ``topic``, ``SUBSCRIBE_BATCH`` at a time, waiting
    after each batch until the server has started its subscriptions."""
    for done in range(0, count, SUBSCRIBE_BATCH):
        batch = min(SUBSCRIBE_BATCH, count - done)
        requests: list[dict[str, Any] | None] = [
            {"cmd": "subscribe", "topic": topic, "expect": expect, "count": share}
            for share in target.pool.shares(batch)
        ]
        await target.pool.call(requests)
        want = target.baseline + done + batch

        def enough(live: int, want: int = want) -> bool:
            return live >= want

        live, _ = await wait_live(target, enough)
        if live < want:
            errors = await target.pool.all({"cmd": "primed"})
            raise ScenarioFailed(
                f"{live - target.baseline} of {done + batch} subscriptions started; errors: "
                f"{[error for answer in errors for error in answer['first_errors']][:2]}"
            )


async def finished(target: Target) -> tuple[int, float]:
    """Wait until the server has run the ``finally`` of every subscription started since the
    baseline; how many it had not by ``FINALLY_TIMEOUT``, and the seconds waited."""
    live, waited = await wait_live(target, lambda live: live <= target.baseline, FINALLY_TIMEOUT)
    return live - target.baseline, waited


async def close_clients(target: Target) -> int:
    """Close every connection politely, then wait for the server to finish their
    subscriptions; how many it had not finished by the deadline."""
    await target.pool.all({"cmd": "close"})
    return (await finished(target))[0]


async def connect_storm(target: Target, count: int) -> dict[str, Any]:
    """``count`` connections through ``connection_init``/``connection_ack``, as fast as the
    server takes them (at most ``concurrency`` handshakes in flight, under daphne's listen
    backlog of 50 so the kernel's SYN retries do not dominate the tail)."""
    cpu_before = cpu_seconds(target.server.pid)
    answers = await open_clients(target, count)
    cpu_used = cpu_seconds(target.server.pid) - cpu_before
    began = min(answer["began"] for answer in answers)
    ended = max(answer["ended"] for answer in answers)
    acks = [latency for answer in answers for latency in answer["ack_ms"]]
    leftover = await close_clients(target)
    seconds = max(ended - began, 1e-9)
    return {
        "connections": count,
        "concurrency": target.concurrency,
        "seconds": seconds,
        "connections_per_s": count / seconds,
        "ack_ms": summary(acks),
        "server_cpu_pct": 100 * cpu_used / seconds,
        "connections_per_cpu_s": count / cpu_used if cpu_used else None,
        "live_after_close": leftover,
    }


async def prime(target: Target, topic: str, subscribers: int) -> dict[str, Any]:
    """Publish priming events (``seq`` -1) until every subscription has received one, so the
    measured events start only when every subscription listens. A new priming event goes out
    only when the previous one stopped making progress, so a slow server is not flooded."""
    began = time.monotonic()
    rounds = 0
    primed = 0
    while time.monotonic() - began < PRIMING_TIMEOUT:
        await target.publisher.publish(topic, -1, 1, pad_bytes=target.pad_bytes)
        rounds += 1
        previous, stalled_since = -1, time.monotonic()
        while time.monotonic() - stalled_since < 1.0:
            answers = await target.pool.all({"cmd": "primed"})
            primed = sum(answer["primed"] for answer in answers)
            if any(answer["errors"] for answer in answers):
                errors = [error for answer in answers for error in answer["first_errors"]]
                raise ScenarioFailed(f"the server sent errors while priming: {errors[:2]}")
            if primed >= subscribers:
                return {"priming_events": rounds, "seconds": time.monotonic() - began}
            if primed != previous:
                previous, stalled_since = primed, time.monotonic()
            await asyncio.sleep(0.05)
    raise ScenarioFailed(f"only {primed} of {subscribers} subscriptions ever got an event")


async def fan_out(
    target: Target,
    subscribers: int,
    events: int,
    rate: float | None,
    timeout: float,
    profiler: Profiler | None = None,
) -> dict[str, Any]:
    """``subscribers`` on one topic, ``events`` published at ``rate`` per second (None: as
    fast as possible); deliveries per second, end-to-end latency, loss, duplicates and
    reordering. Waits for the last delivery while deliveries progress, at most ``timeout``
    seconds (events still missing then are counted late, not lost). A ``profiler``
    samples the server from the first event published to the last one delivered."""
    topic = fresh_topic("fan")
    await open_clients(target, subscribers)
    await subscribe_all(target, topic, subscribers, events)
    priming = await prime(target, topic, subscribers)

    if profiler is not None:
        profiler.start()
    worker_pids = [process.pid for process in target.pool.processes]
    server_cpu = cpu_seconds(target.server.pid)
    worker_cpu = sum(cpu_seconds(pid) for pid in worker_pids)
    began = time.time()
    publishing = asyncio.ensure_future(
        target.publisher.publish(topic, 0, events, rate, pad_bytes=target.pad_bytes)
    )
    try:
        answers = await target.pool.all(
            {"cmd": "collect", "timeout": timeout, "stall": target.collect_stall}
        )
    finally:
        published = await publishing
        if profiler is not None:
            profiler.stop()
    wall = time.time() - began
    server_cpu = cpu_seconds(target.server.pid) - server_cpu
    worker_cpu = sum(cpu_seconds(pid) for pid in worker_pids) - worker_cpu
    # Reset rather than close: a server still flushing a backlog would hold every polite
    # close for seconds, and disconnects are measured on their own (churn).
    await target.pool.all({"cmd": "abort"})
    leftover, _ = await finished(target)

    latencies = [latency for answer in answers for latency in answer["latency_ms"]]
    received = sum(answer["received"] for answer in answers)
    expected = sum(answer["expected"] for answer in answers)
    # Missing events are lost once none has arrived for a while; missing while deliveries
    # were still under way at the timeout, they are only late.
    capped = any(answer["capped"] for answer in answers)
    missing = expected - received
    first_sent = min(a["first_sent"] for a in answers if a["first_sent"] is not None)
    last_received = max(a["last_received"] for a in answers if a["last_received"] is not None)
    span = max(last_received - first_sent, 1e-9)
    return {
        "subscribers": subscribers,
        "events": events,
        "rate": rate,
        "pad_bytes": target.pad_bytes,
        "expected": expected,
        "received": received,
        "lost": 0 if capped else missing,
        "late": missing if capped else 0,
        "duplicates": sum(answer["duplicates"] for answer in answers),
        "reordered": sum(answer["reordered"] for answer in answers),
        "unexpected": sum(answer["unexpected"] for answer in answers),
        "errors": sum(answer["errors"] for answer in answers),
        "first_errors": [error for answer in answers for error in answer["first_errors"]][:3],
        "seconds": span,
        "deliveries_per_s": received / span,
        "latency_ms": summary(latencies),
        "publish_seconds": published.get("seconds"),
        # Events per second the publisher achieved. Inside the server (the in-memory layer)
        # a saturated server also publishes late, which hides part of its backlog from the
        # latencies; a separate publisher (Redis) keeps to the schedule.
        "published_per_s": events / published["seconds"] if published.get("seconds") else None,
        "server_cpu_pct": 100 * server_cpu / wall,
        # Deliveries per second of the server's own CPU time: what a delivery costs, and
        # much steadier than deliveries/s on a machine other work shares.
        "deliveries_per_cpu_s": received / server_cpu if server_cpu else None,
        "workers_cpu_pct": 100 * worker_cpu / wall,
        "priming": priming,
        "live_after_close": leftover,
    }


async def churn(target: Target, rounds: int, clients: int) -> dict[str, Any]:
    """``rounds`` times: ``clients`` connect and subscribe, then vanish (TCP reset, no close
    frame). After each round: subscriptions whose ``finally`` has not run (must reach zero),
    how long the server took to finish them, and its RSS."""
    topic = fresh_topic("churn")
    rows: list[dict[str, Any]] = []
    for number in range(1, rounds + 1):
        await open_clients(target, clients)
        await subscribe_all(target, topic, clients, 0)
        live_before = await live_subscriptions(target) - target.baseline
        await target.pool.all({"cmd": "abort"})
        left, seconds = await finished(target)
        # A leaked subscription stays counted; later rounds measure from it.
        target.baseline += left
        await asyncio.sleep(CHURN_SETTLE)
        rows.append(
            {
                "round": number,
                "live_before": live_before,
                "live_after": left,
                "finally_seconds": seconds,
                "rss": rss_bytes(target.server.pid),
            }
        )
    growth = None
    if rounds > 1:
        growth = (rows[-1]["rss"] - rows[0]["rss"]) / ((rounds - 1) * clients)
    return {
        "rounds": rounds,
        "clients": clients,
        "live_after_total": sum(row["live_after"] for row in rows),
        "finally_seconds_max": max(row["finally_seconds"] for row in rows),
        "rss_growth_per_disconnect": growth,
        "rows": rows,
    }


async def idle(target: Target, connections: int) -> dict[str, Any]:
    """RSS per idle connection (acknowledged, nothing running) and per idle subscription
    (one per connection, all on one topic), on a server warmed up by a few of each."""
    warm = min(50, connections)
    topic = fresh_topic("idle")
    await open_clients(target, warm)
    await subscribe_all(target, topic, warm, 0)
    await target.pool.all({"cmd": "abort"})
    await finished(target)
    await asyncio.sleep(RSS_SETTLE)
    base = rss_bytes(target.server.pid)

    await open_clients(target, connections)
    await asyncio.sleep(RSS_SETTLE)
    with_connections = rss_bytes(target.server.pid)
    await subscribe_all(target, topic, connections, 0)
    await asyncio.sleep(RSS_SETTLE)
    with_subscriptions = rss_bytes(target.server.pid)
    closing = time.monotonic()
    await target.pool.all({"cmd": "close"})
    leftover, _ = await finished(target)
    close_seconds = time.monotonic() - closing
    return {
        "connections": connections,
        "rss_base": base,
        "rss_connections": with_connections,
        "rss_subscriptions": with_subscriptions,
        "per_connection_bytes": (with_connections - base) / connections,
        "per_subscription_bytes": (with_subscriptions - with_connections) / connections,
        # From the clients' polite close to the last subscription's ``finally``.
        "close_finally_seconds": close_seconds,
        "live_after_close": leftover,
    }
