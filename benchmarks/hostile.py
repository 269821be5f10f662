"""The hostile scenario: what each attack of issue 11 costs one gqlchannels server, and what
a well-behaved subscriber on the same server sees meanwhile.

    python -m benchmarks.hostile                       # every attack, about 3 minutes
    python -m benchmarks.hostile --attacks churn,malformed --seconds 5
    python -m benchmarks.hostile --profile             # py-spy folded stacks of the server
    python -m benchmarks.hostile --tracemalloc         # what each attack left allocated
    python -m benchmarks.hostile --census              # objects left, before and after a gc

One real daphne serves the gqlchannels benchmark app with gqlchannels' default settings. A
witness subscribes over graphql-transport-ws to a topic published at a steady rate, each
event stamped with the time it was due (so a server too busy to publish on time shows it),
and measures each event's latency. Then, one after another, each attack runs for a bounded
time (``benchmarks.attacks``). Per attack one row: the server's RSS before, its peak during,
and after (attackers gone, their subscriptions finished, a second to settle), all read from
``/proc/<pid>/status``; the witness's latency p50/p99/max and events missed during the
attack; and what became of the attackers. The first row is a quiet period, for comparison.
Results go to ``benchmarks/results/hostile-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.attacks import ATTACKS, TINY_SIZES, Arena, Sizes
from benchmarks.client import TRANSPORT_WS, GraphQLClient, Stream
from benchmarks.compare import RESULTS, environment, write
from benchmarks.harness import (
    HOST,
    Profiler,
    Server,
    ServerFailed,
    memory_status,
    publisher_for,
    reset_peak_rss,
)
from benchmarks.raw_ws import ConnectionEnded, HandshakeFailed
from benchmarks.scenarios import fresh_topic, summary

#: The row that runs no attack: the witness on a quiet server.
QUIET = "quiet"
MIB = 1024 * 1024


@dataclass(frozen=True)
class HostilePlan:
    """How long each attack lasts, how the witness is fed, which attacks run, their sizes."""

    name: str
    attack_seconds: float
    witness_rate: float
    #: Seconds after an attack (and its subscriptions' ``finally``) before RSS is read again.
    settle_seconds: float
    #: Seconds the witness gets, after an attack, for the events published during it.
    witness_grace: float
    attacks: tuple[str, ...]
    sizes: Sizes = field(default_factory=Sizes)


FULL = HostilePlan(
    name="full",
    attack_seconds=8.0,
    witness_rate=20.0,
    settle_seconds=1.0,
    witness_grace=10.0,
    attacks=(QUIET, *ATTACKS),
)
#: What the test suite runs: two small attacks of two seconds.
TINY = HostilePlan(
    name="tiny",
    attack_seconds=2.0,
    witness_rate=20.0,
    settle_seconds=0.2,
    witness_grace=10.0,
    attacks=("stalled_legacy", "malformed"),
    sizes=TINY_SIZES,
)
PLANS = {plan.name: plan for plan in (FULL, TINY)}


class Timeline(Stream):
    """The witness's events: the latency of each, by sequence number."""

    __slots__ = ("arrived", "changed")

    def __init__(self) -> None:
        super().__init__(0)
        self.arrived: dict[int, float] = {}
        self.changed = asyncio.Event()

    def record(self, seq: int, sent_at: float, received_at: float) -> None:
        """Note one event's latency (receive time minus the time it was due)."""
        self.arrived[seq] = received_at - sent_at
        self.changed.set()

    async def wait_for(self, seqs: range, timeout: float) -> None:
        """Wait until the last event of ``seqs`` arrived (events arrive in order), or
        ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while seqs[-1] not in self.arrived:
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            pass

    def window(self, seqs: range) -> dict[str, Any]:
        """Latency p50/p99/max (ms) of the events of ``seqs`` that arrived, and how many did not."""
        latencies = [self.arrived[seq] * 1000 for seq in seqs if seq in self.arrived]
        return {**summary(latencies), "events": len(seqs), "missed": len(seqs) - len(latencies)}


class Witness:
    """A well-behaved subscriber of the server under attack, fed at a steady rate."""

    def __init__(self, server: Server, plan: HostilePlan):
        self.client = GraphQLClient(server.url, TRANSPORT_WS)
        self.timeline = Timeline()
        self.topic = fresh_topic("witness")
        self.publisher = publisher_for(server)
        self.rate = plan.witness_rate
        self.next_seq = 0

    async def __aenter__(self) -> Witness:
        await self.publisher.__aenter__()
        await self.client.open()
        await self.client.subscribe(self.topic, self.timeline)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.client.close()
        await self.publisher.__aexit__(*exc_info)

    def alive(self) -> bool:
        """Whether the witness's connection still runs."""
        return self.client.connected()

    async def feed(self, seconds: float) -> tuple[range, str | None]:
        """Publish events for ``seconds`` at the witness's rate; their sequence numbers, and
        why publishing failed part-way (a server too stalled to take them), if it did."""
        count = max(1, round(self.rate * seconds))
        seqs = range(self.next_seq, self.next_seq + count)
        self.next_seq += count
        try:
            await self.publisher.publish(
                self.topic, seqs.start, count, self.rate, stamp_schedule=True
            )
        except ServerFailed as failure:
            return seqs, str(failure)[:300]
        return seqs, None


async def settle_witness(witness: Witness, timeout: float) -> None:
    """Feed the witness until an event arrives: its subscription listens from then on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not witness.timeline.arrived and loop.time() < deadline:
        seqs, _ = await witness.feed(0.25)
        await witness.timeline.wait_for(seqs, 1.0)
    if not witness.timeline.arrived:
        raise RuntimeError("the witness never received an event")


async def http_get(server: Server, path: str) -> dict[str, Any]:
    """GET one of the benchmark server's diagnostics (``/bench/memory``); its JSON answer."""
    reader, writer = await asyncio.open_connection(HOST, server.port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    return dict(json.loads(response.partition(b"\r\n\r\n")[2]))


def log_lines(text: str) -> dict[str, int]:
    """What the server logged, by kind of line: ids and numbers folded (``<id>``, ``N``),
    traceback lines left out; the most frequent first."""
    kinds: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        if not line.strip() or line[0].isspace() or line.startswith(("Traceback", "During")):
            continue
        kinds[re.sub(r"\d+", "N", re.sub(r"\b[0-9a-f]{32}\b", "<id>", line))[:160]] += 1
    return dict(kinds.most_common(8))


async def accepts_connections(arena: Arena) -> str:
    """Whether a new client still gets through ``connection_ack`` (``ok``), or how not."""
    try:
        ws = await arena.acknowledged(TRANSPORT_WS)
    except ConnectionEnded as ended:
        return ended.ending.describe()
    except (OSError, TimeoutError, HandshakeFailed) as failure:
        return repr(failure)
    ws.abort()
    return "ok"


async def run_attack(
    name: str, arena: Arena, witness: Witness, plan: HostilePlan, traced: bool, census: bool
) -> dict[str, Any]:
    """One row: RSS around the attack, the witness's latencies during it, the attacker's fate."""
    pid = arena.server.pid
    arena.baseline = await arena.live()
    if traced:
        await http_get(arena.server, "/bench/memory")  # the baseline snapshot
    logged = len(arena.server.output())
    before = memory_status(pid)["VmRSS"]
    peak_reset = reset_peak_rss(pid)
    loop = asyncio.get_running_loop()
    began = loop.time()
    feeding = asyncio.ensure_future(witness.feed(plan.attack_seconds))
    if name == QUIET:
        outcome: dict[str, Any] = {"connections": 0, "attacker": "-"}
        await asyncio.sleep(plan.attack_seconds)
    else:
        try:
            outcome = await ATTACKS[name].run(arena, began + plan.attack_seconds)
        except Exception as exc:
            outcome = {
                "connections": 0,
                "attacker": "attack failed",
                "failed": "".join(traceback.format_exception(exc)),
            }
    attack_seconds = loop.time() - began
    seqs, feed_failed = await feeding
    await witness.timeline.wait_for(seqs, plan.witness_grace)
    left = await arena.wait_live(lambda live: live <= arena.baseline) - arena.baseline
    await asyncio.sleep(plan.settle_seconds)
    accepts = await accepts_connections(arena)
    memory = memory_status(pid)
    row = {
        "attack": name,
        "description": ATTACKS[name].description if name in ATTACKS else "no attack",
        **outcome,
        "attack_seconds": attack_seconds,
        "rss_before": before,
        "rss_peak": memory["VmHWM"],
        "peak_since_start": not peak_reset,
        "rss_after": memory["VmRSS"],
        "witness_ms": witness.timeline.window(seqs),
        "witness_alive": witness.alive(),
        "witness_feed_failed": feed_failed,
        "subscriptions_left": left,
        "new_connections": accepts,
        "server_log": log_lines(arena.server.output()[logged:]),
    }
    if traced:
        row["allocated_growth"] = await http_get(arena.server, "/bench/memory?12")
    if census:
        row["census"] = await http_get(arena.server, "/bench/objects?15")
    return row


async def hostile(
    plan: HostilePlan,
    layer: str = "memory",
    profile_to: Path | None = None,
    traced: bool = False,
    census: bool = False,
    say: Callable[[str], None] = print,
    directory: Path = RESULTS,
) -> dict[str, Any]:
    """Start one gqlchannels server, run ``plan``'s attacks against it in turn, stop it; the
    results (also what goes in the JSON)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    measured = environment()
    began = time.monotonic()
    rows: list[dict[str, Any]] = []
    server = Server("gqlchannels", layer, directory / "logs")
    server.env["BENCH_GQLCHANNELS_LOG_LEVEL"] = "INFO"
    with server:
        profiler = Profiler(server.pid, profile_to) if profile_to is not None else None
        control = GraphQLClient(server.url, TRANSPORT_WS)
        await control.open()
        async with publisher_for(server) as publisher, Witness(server, plan) as witness:
            await settle_witness(witness, 10.0)
            arena = Arena(server, publisher, control, plan.sizes)
            if profiler is not None:
                profiler.start()
            try:
                for name in plan.attacks:
                    row = await run_attack(name, arena, witness, plan, traced, census)
                    rows.append(row)
                    say(render_row(row))
                    if not witness.alive() or not server.alive():
                        say("the witness or the server is gone: stopping here")
                        break
            finally:
                if profiler is not None:
                    profiler.stop()
        await control.close()
        log_tail = server.output()[-4000:]
    return {
        "plan": dataclasses.asdict(plan),
        "layer": layer,
        "seconds": time.monotonic() - began,
        "environment": measured,
        "stamp": stamp,
        "rows": rows,
        "profile": str(profile_to) if profile_to else None,
        "server_log_tail": log_tail,
    }


COLUMNS = (
    f"{'attack':<25}{'conns':>6}{'RSS before':>11}{'peak':>8}{'after':>8}{'growth':>8}"
    f"{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'missed':>7}  attacker"
)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def render_row(row: dict[str, Any]) -> str:
    """One attack as a line of the table (memory in MiB), then anything amiss, then the two
    most frequent kinds of line the server logged during it."""
    witness = row["witness_ms"]
    growth = (row["rss_after"] - row["rss_before"]) / MIB
    line = (
        f"{row['attack']:<25}{row['connections']:>6}{row['rss_before'] / MIB:>11.1f}"
        f"{row['rss_peak'] / MIB:>8.1f}{row['rss_after'] / MIB:>8.1f}{growth:>+8.1f}"
        f"{_ms(witness['p50']):>8}{_ms(witness['p99']):>8}{_ms(witness['max']):>8}"
        f"{witness['missed']:>7}  {row['attacker']}"
    )
    if not row["witness_alive"]:
        line += "  [WITNESS LOST]"
    if row["subscriptions_left"]:
        line += f"  [{row['subscriptions_left']} subscriptions left]"
    if row["new_connections"] != "ok":
        line += f"  [NEW CLIENTS: {row['new_connections']}]"
    for logged, count in list(row["server_log"].items())[:2]:
        line += f" | log {count}x {logged[:70]}"
    return line


def render(results: dict[str, Any]) -> str:
    """The whole table."""
    return "\n".join([COLUMNS, *(render_row(row) for row in results["rows"])])


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the attacks, print the table, write the JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.hostile", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--plan", choices=sorted(PLANS), default="full")
    parser.add_argument("--attacks", help=f"comma-separated, of: {', '.join(ATTACKS)}")
    parser.add_argument("--seconds", type=float, help="seconds per attack")
    parser.add_argument("--layer", choices=("memory", "redis"), default="memory")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the server for the whole run (folded)"
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="trace the server's allocations: each row gets what grew during its attack",
    )
    parser.add_argument(
        "--census",
        action="store_true",
        help="after each attack, count the server's objects by type before and after a full "
        "garbage collection (what departed connections left behind)",
    )
    parser.add_argument("--output", type=Path, help="JSON path (default benchmarks/results/)")
    args = parser.parse_args(argv)
    plan = PLANS[args.plan]
    if args.attacks:
        wanted = tuple(name for name in args.attacks.split(",") if name)
        for name in wanted:
            if name not in ATTACKS and name != QUIET:
                parser.error(f"unknown attack {name!r}; choose from {QUIET}, {', '.join(ATTACKS)}")
        plan = dataclasses.replace(plan, attacks=wanted)
    if args.seconds is not None:
        plan = dataclasses.replace(plan, attack_seconds=args.seconds)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    profile_to = RESULTS / f"hostile-profile-{stamp}.txt" if args.profile else None
    print(COLUMNS)
    results = asyncio.run(hostile(plan, args.layer, profile_to, args.tracemalloc, args.census))
    path = write(results, args.output or RESULTS / f"hostile-{results['stamp']}.json")
    print(f"\n{plan.name} run: {results['seconds'] / 60:.1f} min; results in {path}")
    if profile_to is not None:
        print(f"profile: {profile_to} (python -m benchmarks.profile_summary {profile_to})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
