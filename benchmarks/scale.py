"""10,000 subscribers on one process: what each costs idle, and what they do to fan-out and to
another subscriber's latency (issue 14, item 4).

One gqlchannels daphne on channels-redis (events published by a process of its own); the
clients spread over several load generator processes (``loadgen.py``). Four measurements,
each on a server cleared of the previous one's clients:

- **idle**: RSS per acknowledged connection and per subscription (server RSS delta / count,
  after a warm-up of 50 of each), at the full size;
- **fan-out** at the baseline size (1,000) and at the full size (10,000): one topic, the same
  events published as fast as the server takes them; deliveries/s, deliveries per server
  CPU-second, end-to-end latency, and loss, duplicates and reordering (all must be 0);
- **witness**: one more subscriber, fed 20 events/s on a topic of its own, while the full
  number of idle connections is held (keepalive pings included); its latency p50/p99/max.

``python -m benchmarks.scale`` (``--tiny`` for the suite's sizes). Prints a table, writes
``benchmarks/results/scale-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import hostile
from benchmarks.client import TRANSPORT_WS, GraphQLClient
from benchmarks.compare import RESULTS, environment, redis_answers, write
from benchmarks.harness import DEFAULT_REDIS_URL, Server, publisher_for
from benchmarks.loadgen import WorkerPool
from benchmarks.scenarios import Target, fan_out, idle, open_clients

#: The measurements, in the order they run.
STEPS = ("idle", "fanout_baseline", "fanout_full", "witness")
#: Seconds a fan-out waits without a delivery before counting what is missing as lost:
#: 10,000 subscribers' leftover priming events, and full collections of a heap of 10,000
#: connections, hold deliveries up for longer than the other benchmarks' 5 s.
COLLECT_STALL = 30.0
#: Rounds of opening connections (those that failed are tried again).
OPEN_ATTEMPTS = 3
#: File descriptors each process may need: a socket per connection, plus the process's own.
FD_MARGIN = 1024


@dataclass(frozen=True)
class ScalePlan:
    """The sizes of one run."""

    name: str
    #: Connections (and subscriptions) held by the one server at full size.
    connections: int
    #: The fan-out size the full size is compared with.
    baseline: int
    #: Events published in each fan-out, as fast as possible.
    events: int
    #: Load generator processes.
    workers: int
    #: Handshakes in flight at once.
    concurrency: int
    #: Seconds the witness is fed while the idle connections are held.
    witness_seconds: float
    #: Seconds a fan-out may take to deliver everything.
    fan_timeout: float
    #: The channel layer: ``redis`` publishes from a process of its own, so a server busy
    #: delivering to 10,000 subscribers does not also publish late (or time out publishing,
    #: as ``broadcast`` inside a saturated server does); ``memory`` publishes inside it.
    layer: str


FULL = ScalePlan("full", 10_000, 1_000, 20, 4, 50, 15.0, 300.0, "redis")
TINY = ScalePlan("tiny", 40, 10, 5, 2, 10, 1.0, 30.0, "memory")
#: How the witness is fed (the hostile benchmark's witness, at its rate).
WITNESS = dataclasses.replace(hostile.TINY, witness_rate=20.0)


def raise_open_files_limit(needed: int) -> int:
    """Raise this process's soft limit on open files to cover ``needed`` (up to the hard
    limit); the server and the load generators are its children and inherit it. The limit
    now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = needed + FD_MARGIN
    if soft != resource.RLIM_INFINITY and soft < wanted:
        soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


async def witness_among_idle(target: Target, plan: ScalePlan) -> dict[str, Any]:
    """The witness's latency while ``plan.connections`` idle connections are held."""
    await open_clients(target, plan.connections)
    try:
        async with hostile.Witness(target.server, WITNESS) as witness:
            await hostile.settle_witness(witness, 30.0)
            seqs, failed = await witness.feed(plan.witness_seconds)
            await witness.timeline.wait_for(seqs, 30.0)
            return {
                "idle_connections": plan.connections,
                "latency_ms": witness.timeline.window(seqs),
                "feed_failed": failed,
            }
    finally:
        # Reset, not closed politely: 10,000 polite closes hold the server's loop for longer
        # than a query waits, and idle connections have no subscription to wait for.
        await target.pool.all({"cmd": "abort"})


async def scale(
    plan: ScalePlan,
    say: Callable[[str], None] = print,
    directory: Path = RESULTS,
    redis_url: str = DEFAULT_REDIS_URL,
) -> dict[str, Any]:
    """Run every measurement of ``plan`` against one fresh server; the results."""
    limit = raise_open_files_limit(plan.connections)
    began = time.monotonic()
    results: dict[str, Any] = {
        "stamp": time.strftime("%Y%m%d-%H%M%S"),
        "plan": dataclasses.asdict(plan),
        "environment": environment(),
        "open_files_limit": limit,
    }
    with Server("gqlchannels", plan.layer, directory / "logs", redis_url) as server:
        async with publisher_for(server) as publisher, WorkerPool(plan.workers) as pool:
            control = GraphQLClient(server.url, TRANSPORT_WS)
            await control.open()
            target = Target(server, publisher, pool, control, TRANSPORT_WS, plan.concurrency)
            # Under load a few of 10,000 handshakes outlast Daphne's 5 s handshake timeout:
            # they are tried again, and reported.
            target.open_attempts = OPEN_ATTEMPTS
            target.collect_stall = COLLECT_STALL
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("idle", lambda: idle(target, plan.connections)),
                (
                    "fanout_baseline",
                    lambda: fan_out(target, plan.baseline, plan.events, None, plan.fan_timeout),
                ),
                (
                    "fanout_full",
                    lambda: fan_out(target, plan.connections, plan.events, None, plan.fan_timeout),
                ),
                ("witness", lambda: witness_among_idle(target, plan)),
            ]
            results.update({name: {"failed": "not run (the server died)"} for name in STEPS})
            for name, step in steps:
                try:
                    await target.rebase()
                    results[name] = await step()
                except Exception as exc:  # recorded; the next step runs on a cleared server
                    results[name] = {"failed": f"{type(exc).__name__}: {exc}"}
                    if not server.alive():
                        break
                    await pool.all({"cmd": "abort"})
                say(f"  {name} done after {time.monotonic() - began:.0f}s")
            await control.close()
            results["open_failures"] = target.open_failures
        results["server_log"] = hostile.log_lines(server.output())
        results["server_log_tail"] = server.output()[-3000:]
    results["seconds"] = time.monotonic() - began
    return results


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(results: dict[str, Any]) -> str:
    """The table of one run (a step that failed says why), then what the server logged."""
    plan = results["plan"]
    failed = [(name, results[name]["failed"]) for name in STEPS if "failed" in results[name]]
    rows = [(f"{name} FAILED", reason[:200]) for name, reason in failed]
    idle_run = results["idle"]
    if "failed" not in idle_run:
        rows += [
            ("idle KB per connection", _number(idle_run["per_connection_bytes"] / 1024, 1)),
            ("idle KB per subscription", _number(idle_run["per_subscription_bytes"] / 1024, 1)),
        ]
    for label, run in (
        (f"{plan['baseline']:,}", results["fanout_baseline"]),
        (f"{plan['connections']:,}", results["fanout_full"]),
    ):
        if "failed" in run:
            continue
        latency = run["latency_ms"]
        defects = sum(run[key] for key in ("lost", "late", "duplicates", "reordered", "errors"))
        rows += [
            (f"fan-out {label}: deliveries/s", _number(run["deliveries_per_s"])),
            (f"fan-out {label}: deliveries/CPU-s", _number(run["deliveries_per_cpu_s"])),
            (
                f"fan-out {label}: latency p50/p99 ms",
                f"{_number(latency['p50'])} / {_number(latency['p99'])}",
            ),
            (f"fan-out {label}: lost+late+dup+reordered+errors", str(defects)),
        ]
    if "failed" not in results["witness"]:
        witness = results["witness"]["latency_ms"]
        rows += [
            (
                f"witness with {plan['connections']:,} idle: p50/p99/max ms",
                f"{_number(witness['p50'])} / {_number(witness['p99'])} / "
                f"{_number(witness['max'])}",
            ),
            ("witness events missed", f"{witness['missed']} of {witness['events']}"),
        ]
    rows.append(("handshakes retried", "; ".join(results.get("open_failures", [])) or "none"))
    width = max(len(label) for label, _ in rows)
    table = "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
    logged = "\n".join(f"  {count:>6}  {line}" for line, count in results["server_log"].items())
    return f"{table}\n\nserver log, by kind of line:\n{logged or '  (nothing)'}"


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run once, print the table, write the JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--tiny", action="store_true", help="the test suite's sizes")
    parser.add_argument("--connections", type=int, help="override the full size")
    parser.add_argument("--workers", type=int, help="load generator processes")
    parser.add_argument("--layer", choices=("memory", "redis"), help="override the plan's")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    args = parser.parse_args(argv)
    plan = TINY if args.tiny else FULL
    if args.connections is not None:
        plan = dataclasses.replace(plan, connections=args.connections)
    if args.workers is not None:
        plan = dataclasses.replace(plan, workers=args.workers)
    if args.layer is not None:
        plan = dataclasses.replace(plan, layer=args.layer)
    if plan.layer == "redis" and (problem := redis_answers(args.redis_url)):
        parser.error(f"Redis does not answer at {args.redis_url} ({problem}); try --layer memory")
    results = asyncio.run(scale(plan, redis_url=args.redis_url))
    print(render(results))
    path = write(results, RESULTS / f"scale-{results['stamp']}.json")
    print(f"\n{plan.name} run: {results['seconds'] / 60:.1f} min; results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
