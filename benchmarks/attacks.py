"""The attacks of the hostile scenario (issue 11's table), each by one or a few connections.

Every attack runs against a live server until a deadline (or until it has done all it
meant to), leaves no connection of its own open, and returns a plain dict: ``connections``
(how many attacking connections it used), ``attacker`` (what became of them, as the client
saw it: ``closed 4413``, ``dropped``, ``open``, ``answered``...) and figures of its own.
None of them breaks a protocol rule unless its name says so (``malformed``).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.client import LEGACY_WS, START, TRANSPORT_WS, GraphQLClient, loads
from benchmarks.harness import HOST, HttpPublisher, ProcessPublisher, Server
from benchmarks.raw_ws import ConnectionEnded, RawWebSocket, text_frame
from benchmarks.scenarios import fresh_topic

#: Seconds an attacker's connection is given to show how it ended once the attack stops.
ENDING_TIMEOUT = 3.0
#: Seconds any one answer from the server may take before the attack counts it as missing.
ANSWER_TIMEOUT = 15.0
#: Seconds the server may take to start (or finish) the subscriptions an attack opened.
LIVE_TIMEOUT = 15.0
PATH = "/graphql/"


@dataclass(frozen=True)
class Sizes:
    """How big each attack is. The defaults are issue 11's sizes where they fit a 5-10 s
    attack (and the server's 1 MiB frame cap); ``TINY_SIZES`` are for the test suite."""

    #: Events per second, and their padding in bytes, on the topic a stalled reader follows.
    flood_rate: float = 1000.0
    flood_pad_bytes: int = 8 * 1024
    #: Operation id of the stalled reader that tries a long one.
    long_id_chars: int = 200_000
    #: Bytes of pings the ping flood sends without reading.
    ping_bytes: int = 10 * 1024 * 1024
    #: Distinct documents, and their size, for the document-cache attack.
    documents: int = 80
    document_chars: int = 1_000_000
    #: Fields of the wide query of plain sync resolvers, and how many connections send it.
    wide_fields: int = 4999
    wide_connections: int = 2
    #: Subscriptions opened with huge documents, and the documents' size.
    big_subscriptions: int = 50
    big_subscription_chars: int = 900_000
    #: Malformed connections, and how many are in flight at once.
    malformed_connections: int = 500
    malformed_concurrency: int = 25
    #: Clients per round of connect, subscribe, drop abruptly; handshakes in flight at once.
    churn_clients: int = 300
    churn_concurrency: int = 50
    #: Distinct expensive documents (many aliases, unknown fields, deep nesting).
    expensive_documents: int = 60
    #: subscribe + complete pairs per burst of the subscribe/complete flood.
    flood_pairs: int = 500


#: Small enough for the test suite, except the stalled reader's flood: ~16 MB in two
#: seconds, so that its outbound budget (4 MiB) is certainly exceeded.
TINY_SIZES = Sizes(
    flood_rate=1000.0,
    flood_pad_bytes=8 * 1024,
    long_id_chars=2_000,
    ping_bytes=256 * 1024,
    documents=4,
    document_chars=100_000,
    wide_fields=200,
    wide_connections=1,
    big_subscriptions=3,
    big_subscription_chars=50_000,
    malformed_connections=12,
    malformed_concurrency=4,
    churn_clients=10,
    churn_concurrency=5,
    expensive_documents=3,
    flood_pairs=20,
)


@dataclass
class Arena:
    """What an attack works with: the server, a publisher for the traffic it provokes, a
    control connection of the driver's (for ``liveSubscriptions``), and the sizes."""

    server: Server
    publisher: HttpPublisher | ProcessPublisher
    control: GraphQLClient
    sizes: Sizes
    #: ``liveSubscriptions`` when the attack began: what it must come back to.
    baseline: int = 0
    notes: list[str] = field(default_factory=list)

    async def connect(self, protocol: str, small_receive_buffer: bool = False) -> RawWebSocket:
        """A fresh socket to the server offering ``protocol`` (nothing sent on it yet)."""
        return await RawWebSocket.connect(
            HOST, self.server.port, PATH, protocol, small_receive_buffer
        )

    async def acknowledged(self, protocol: str, small_receive_buffer: bool = False) -> RawWebSocket:
        """A socket past ``connection_ack`` (and legacy's first ``ka``)."""
        ws = await self.connect(protocol, small_receive_buffer)
        await ws.send({"type": "connection_init", "payload": {}})
        async with asyncio.timeout(ANSWER_TIMEOUT):
            while loads(await ws.text()).get("type") != "connection_ack":
                pass
        return ws

    async def live(self) -> int:
        """Subscriptions the server runs whose ``finally`` has not run."""
        return int((await self.control.query("{ liveSubscriptions }"))["liveSubscriptions"])

    async def wait_live(
        self, condition: Callable[[int], bool], timeout: float = LIVE_TIMEOUT
    ) -> int:
        """Poll ``liveSubscriptions`` until ``condition`` holds or ``timeout``; the last count."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            live = await self.live()
            if condition(live) or loop.time() >= deadline:
                return live
            await asyncio.sleep(0.05)


Attack = Callable[[Arena, float], Awaitable[dict[str, Any]]]


def remaining(deadline: float) -> float:
    """Seconds until ``deadline`` (a time of the running loop), never negative."""
    return max(0.0, deadline - asyncio.get_running_loop().time())


def start_frame(protocol: str, operation_id: str, query: str, **variables: Any) -> dict[str, Any]:
    """The frame that starts ``query`` under ``operation_id`` on ``protocol``."""
    payload: dict[str, Any] = {"query": query}
    if variables:
        payload["variables"] = variables
    return {"type": START[protocol], "id": operation_id, "payload": payload}


TICK = "subscription Tick($topic: String!) { tick(topic: $topic) { seq pad } }"


async def answer(ws: RawWebSocket, operation_id: str) -> str:
    """Read until the operation ``operation_id`` ends; ``error`` or ``complete``. The server's
    pings are answered: an attacker that reads is otherwise well-behaved."""
    async with asyncio.timeout(ANSWER_TIMEOUT):
        while True:
            message = loads(await ws.text())
            if message.get("type") == "ping":
                await ws.send({"type": "pong"})
            elif message.get("id") == operation_id and message.get("type") in ("error", "complete"):
                return str(message["type"])


# -- stalled readers -------------------------------------------------------------------------


def stalled_reader(protocol: str, nudge: dict[str, Any], operation_id: str = "s") -> Attack:
    """A client that subscribes to a busy topic, then never reads again, but sends ``nudge``
    (harmless and legal) every ``nudge`` interval to look alive."""
    interval = 0.1 if protocol == TRANSPORT_WS else 0.5

    async def attack(arena: Arena, deadline: float) -> dict[str, Any]:
        sizes = arena.sizes
        topic = fresh_topic("stalled")
        ws = await arena.acknowledged(protocol, small_receive_buffer=True)
        await ws.send(start_frame(protocol, operation_id, TICK, topic=topic))
        # It reads until its subscription runs (no event flows yet): a refusal shows here.
        refused, _ = await ws.ending(0.5)
        if not refused.still_open:
            ws.abort()
            return {"connections": 1, "attacker": f"refused: {refused.describe()}"}
        await arena.wait_live(lambda live: live > arena.baseline, timeout=2.0)
        loop = asyncio.get_running_loop()
        began = loop.time()
        events = round(sizes.flood_rate * remaining(deadline))
        flood = asyncio.ensure_future(
            arena.publisher.publish(topic, 0, events, sizes.flood_rate, sizes.flood_pad_bytes)
        )
        nudges, dropped_after = 0, None
        try:
            while remaining(deadline) > 0:
                await ws.send(nudge)
                nudges += 1
                await asyncio.sleep(interval)
        except ConnectionError:
            # The server dropped the connection. Its close frame, if any, waited behind the
            # bytes this client never read, and a TCP reset discards those unread.
            dropped_after = loop.time() - began
        finally:
            await flood
        ending, frames = await ws.ending(ENDING_TIMEOUT)
        ws.abort()
        return {
            "connections": 1,
            "attacker": ending.describe()
            + ("" if dropped_after is None else f" after {dropped_after:.1f}s"),
            "events_published": events,
            "event_bytes": sizes.flood_pad_bytes,
            "frames_read_afterwards": frames,
            "nudges": nudges,
        }

    return attack


def long_id_reader() -> Attack:
    """The stalled reader of graphql-transport-ws with an operation id of ``long_id_chars``."""

    async def attack(arena: Arena, deadline: float) -> dict[str, Any]:
        inner = stalled_reader(TRANSPORT_WS, {"type": "pong"}, "i" * arena.sizes.long_id_chars)
        return await inner(arena, deadline)

    return attack


async def ping_flood(arena: Arena, deadline: float) -> dict[str, Any]:
    """``ping_bytes`` of pings as fast as the server takes them, never reading a pong."""
    ws = await arena.acknowledged(TRANSPORT_WS, small_receive_buffer=True)
    ping = text_frame('{"type":"ping"}')
    burst = ping * (64 * 1024 // len(ping))
    sent = 0
    try:
        while sent < arena.sizes.ping_bytes and remaining(deadline) > 0:
            async with asyncio.timeout(remaining(deadline) + 0.1):
                await ws.send_raw(burst)
            sent += len(burst)
    except (ConnectionError, TimeoutError):
        pass
    ending, frames = await ws.ending(ENDING_TIMEOUT)
    ws.abort()
    return {
        "connections": 1,
        "attacker": ending.describe(),
        "ping_bytes_sent": sent,
        "pings_sent": sent // len(ping),
        "pongs_read_afterwards": frames,
    }


# -- expensive documents ---------------------------------------------------------------------


def distinct_documents(count: int, chars: int) -> list[str]:
    """``count`` different documents of about ``chars`` characters each: alternately one
    long comment in front of a valid query (cached as a valid document) and far more fields
    than the token limit allows (cached as a parse error)."""
    documents = []
    for number in range(count):
        if number % 2:
            fields = "hello " * (chars // 6)
            documents.append(f"query Q{number} {{ {fields}}}")
        else:
            documents.append(f"# {number} {'x' * chars}\nquery Q{number} {{ hello }}")
    return documents


async def send_documents(arena: Arena, deadline: float, documents: list[str]) -> dict[str, Any]:
    """Send each document as an operation of one connection, waiting for each answer."""
    ws = await arena.acknowledged(TRANSPORT_WS)
    answers: collections.Counter[str] = collections.Counter()
    try:
        for number, document in enumerate(documents):
            if remaining(deadline) <= 0:
                break
            await ws.send(start_frame(TRANSPORT_WS, f"d{number}", document))
            answers[await answer(ws, f"d{number}")] += 1
    except ConnectionEnded as ended:
        answers[ended.ending.describe()] += 1
    ws.abort()
    return {
        "connections": 1,
        "attacker": "answered " + ", ".join(f"{n} {kind}" for kind, n in sorted(answers.items())),
        "documents_sent": sum(answers.values()),
        "document_chars": max(map(len, documents), default=0),
    }


async def big_documents(arena: Arena, deadline: float) -> dict[str, Any]:
    """``documents`` distinct documents of ~``document_chars`` each, one after the other."""
    sizes = arena.sizes
    return await send_documents(
        arena, deadline, distinct_documents(sizes.documents, sizes.document_chars)
    )


async def expensive_documents(arena: Arena, deadline: float) -> dict[str, Any]:
    """Distinct documents that are cheap to send and dear to check: thousands of aliases
    (valid: every one is executed), thousands of unknown fields (validation errors), and
    selection sets nested thousands deep."""
    documents = []
    for number in range(arena.sizes.expensive_documents):
        kind = number % 3
        if kind == 0:
            aliases = " ".join(f"a{n}: hello" for n in range(4_000))
            documents.append(f"query A{number} {{ {aliases} }}")
        elif kind == 1:
            documents.append(f"query U{number} {{ {' '.join(f'x{n}' for n in range(7_000))} }}")
        else:
            documents.append(f"query N{number} " + "{ hello " * 3_000 + "}" * 3_000)
    return await send_documents(arena, deadline, documents)


async def wide_sync_query(arena: Arena, deadline: float) -> dict[str, Any]:
    """``wide_connections`` connections, each sending a valid query of ``wide_fields``
    plain sync resolvers again as soon as the last one was answered."""
    query = "{ " + " ".join(f"f{n}: plain" for n in range(arena.sizes.wide_fields)) + " }"
    answers: collections.Counter[str] = collections.Counter()

    async def one() -> None:
        ws = await arena.acknowledged(TRANSPORT_WS)
        try:
            for number in itertools.count():
                if remaining(deadline) <= 0:
                    break
                await ws.send(start_frame(TRANSPORT_WS, f"w{number}", query))
                answers[await answer(ws, f"w{number}")] += 1
        except ConnectionEnded as ended:
            answers[ended.ending.describe()] += 1
        finally:
            ws.abort()

    await asyncio.gather(*(one() for _ in range(arena.sizes.wide_connections)))
    return {
        "connections": arena.sizes.wide_connections,
        "attacker": "answered " + ", ".join(f"{n} {kind}" for kind, n in sorted(answers.items())),
        "queries_answered": answers["complete"],
        "fields": arena.sizes.wide_fields,
    }


async def legacy_spin(arena: Arena, deadline: float) -> dict[str, Any]:
    """A legacy subscription to ``spin``, a source that never awaits; the attacker reads."""
    ws = await arena.acknowledged(LEGACY_WS)
    await ws.send(start_frame(LEGACY_WS, "spin", "subscription { spin }"))
    frames = 0
    outcome = "open"
    try:
        async with asyncio.timeout(remaining(deadline)):
            while True:
                await ws.text()
                frames += 1
    except TimeoutError:
        await ws.send({"type": "stop", "id": "spin"})
        try:
            outcome = f"stopped: {await answer(ws, 'spin')}"
        except (ConnectionEnded, TimeoutError) as ended:
            outcome = f"stop unanswered ({ended})"
    except ConnectionEnded as ended:
        outcome = ended.ending.describe()
    ws.abort()
    return {"connections": 1, "attacker": outcome, "results_read": frames}


async def big_subscriptions(arena: Arena, deadline: float) -> dict[str, Any]:
    """``big_subscriptions`` subscriptions on one connection, each with a document of about
    ``big_subscription_chars`` (a long comment), held until the deadline (the registry writes
    what lives longer than its flush interval)."""
    sizes = arena.sizes
    topic = fresh_topic("big")
    document = f"# {'x' * sizes.big_subscription_chars}\n{TICK}"
    ws = await arena.acknowledged(TRANSPORT_WS)
    for number in range(sizes.big_subscriptions):
        await ws.send(start_frame(TRANSPORT_WS, f"b{number}", document, topic=topic))
    started = await arena.wait_live(
        lambda live: live >= arena.baseline + sizes.big_subscriptions, timeout=remaining(deadline)
    )
    await asyncio.sleep(remaining(deadline))
    ws.abort()
    return {
        "connections": 1,
        "attacker": f"{started - arena.baseline} subscriptions held",
        "document_chars": len(document),
    }


# -- many connections ------------------------------------------------------------------------


def malformed_frames(limit: int = 1024 * 1024) -> list[tuple[bool, str]]:
    """What malformed connections send, in turn: (whether ``connection_init`` goes first, the
    frame). Not JSON; a field of the wrong type; nesting far past any depth limit; a frame
    just under the size limit that is not JSON either; an id that is an object; an operation
    before ``connection_init``."""
    subscribe = '{"type":"subscribe","id":"1","payload":{"query":"'
    return [
        (False, "not json {"),
        (True, '{"type": ["ping"]}'),
        (False, "[" * 100_000),
        (True, subscribe + "x" * (limit - len(subscribe) - 64)),
        (True, '{"type":"subscribe","id":{"a":1},"payload":{"query":"{ hello }"}}'),
        (False, '{"type":"subscribe","id":"1","payload":{"query":"{ hello }"}}'),
    ]


async def malformed(arena: Arena, deadline: float) -> dict[str, Any]:
    """``malformed_connections`` connections, ``malformed_concurrency`` at once, each sending
    one malformed frame and reading until the server closes it."""
    frames = malformed_frames()
    numbers = iter(range(arena.sizes.malformed_connections))
    endings: collections.Counter[str] = collections.Counter()

    async def one_after_another() -> None:
        for number in numbers:
            if remaining(deadline) <= 0:
                return
            init_first, frame = frames[number % len(frames)]
            ws = await arena.connect(TRANSPORT_WS)
            if init_first:
                await ws.send({"type": "connection_init"})
            await ws.send(frame)
            ending, _ = await ws.ending(ANSWER_TIMEOUT)
            endings[ending.describe()] += 1
            ws.abort()

    await asyncio.gather(*(one_after_another() for _ in range(arena.sizes.malformed_concurrency)))
    return {
        "connections": sum(endings.values()),
        "attacker": ", ".join(f"{n} {kind}" for kind, n in endings.most_common()),
    }


async def churn(arena: Arena, deadline: float) -> dict[str, Any]:
    """Rounds of ``churn_clients`` connections that subscribe, then vanish (TCP reset, no
    close frame), until the deadline; every round waits for the server's ``finally``s."""
    sizes = arena.sizes
    topic = fresh_topic("churn")
    gate = asyncio.Semaphore(sizes.churn_concurrency)
    rounds = 0
    left = 0

    async def subscribed() -> RawWebSocket:
        async with gate:
            ws = await arena.acknowledged(TRANSPORT_WS)
            await ws.send(start_frame(TRANSPORT_WS, "c", TICK, topic=topic))
            return ws

    while remaining(deadline) > 0:
        sockets = await asyncio.gather(*(subscribed() for _ in range(sizes.churn_clients)))
        await arena.wait_live(lambda live: live >= arena.baseline + sizes.churn_clients)
        for ws in sockets:
            ws.abort()
        left = await arena.wait_live(lambda live: live <= arena.baseline) - arena.baseline
        rounds += 1
    return {
        "connections": sizes.churn_clients,
        "attacker": f"{rounds} rounds dropped, {left} left running",
        "disconnects": rounds * sizes.churn_clients,
    }


async def subscribe_complete_flood(arena: Arena, deadline: float) -> dict[str, Any]:
    """``subscribe`` then ``complete`` of the same id, in bursts of ``flood_pairs``, as fast as
    the server takes them; the attacker reads nothing."""
    topic = fresh_topic("flood")
    ws = await arena.acknowledged(TRANSPORT_WS, small_receive_buffer=True)
    pairs = 0
    try:
        while remaining(deadline) > 0:
            burst = b"".join(
                text_frame(message)
                for n in range(pairs, pairs + arena.sizes.flood_pairs)
                for message in (
                    f'{{"type":"subscribe","id":"f{n}","payload":{{"query":"{TICK}",'
                    f'"variables":{{"topic":"{topic}"}}}}}}',
                    f'{{"type":"complete","id":"f{n}"}}',
                )
            )
            async with asyncio.timeout(remaining(deadline) + 0.1):
                await ws.send_raw(burst)
            pairs += arena.sizes.flood_pairs
    except (ConnectionError, TimeoutError):
        pass
    ending, frames = await ws.ending(ENDING_TIMEOUT)
    ws.abort()
    return {
        "connections": 1,
        "attacker": ending.describe(),
        "pairs_sent": pairs,
        "frames_read_afterwards": frames,
    }


@dataclass(frozen=True)
class AttackKind:
    """One row of the table: what the attacker does, and the attack itself."""

    name: str
    description: str
    run: Attack


ATTACKS: dict[str, AttackKind] = {
    kind.name: kind
    for kind in (
        AttackKind(
            "stalled_pong",
            "stops reading a subscription, sends an unsolicited pong every 100 ms",
            stalled_reader(TRANSPORT_WS, {"type": "pong"}),
        ),
        AttackKind(
            "stalled_legacy",
            "stops reading a legacy subscription, sends a stop every 0.5 s",
            stalled_reader(LEGACY_WS, {"type": "stop", "id": "other"}),
        ),
        AttackKind(
            "stalled_long_id",
            "stalled reader whose operation id is 200 KB",
            long_id_reader(),
        ),
        AttackKind("big_documents", "80 distinct ~1 MB documents", big_documents),
        AttackKind(
            "wide_sync_query",
            "a 4,999-field query of plain sync resolvers, again and again, 2 connections",
            wide_sync_query,
        ),
        AttackKind("legacy_spin", "legacy subscription to a source that never awaits", legacy_spin),
        AttackKind(
            "big_subscriptions", "50 subscriptions with 900 KB documents", big_subscriptions
        ),
        AttackKind("malformed", "500 malformed connections, 25 at once", malformed),
        AttackKind("churn", "connect, subscribe, drop abruptly: 300 per round", churn),
        AttackKind(
            "expensive_documents",
            "thousands of aliases / unknown fields / nested selections",
            expensive_documents,
        ),
        AttackKind(
            "subscribe_complete_flood",
            "subscribe + complete pairs as fast as the server takes them, never reads",
            subscribe_complete_flood,
        ),
        # Last: the frames it sends outlive it in Daphne's per-connection queue (see
        # benchmarks/README.md), long enough for Daphne to kill the application.
        AttackKind("ping_flood", "10 MB of pings, never reads a pong", ping_flood),
    )
}
