"""Compare gqlchannels, Strawberry and a bare Channels consumer in one run, on one machine,
under the same load, each served by a real daphne process.

    python -m benchmarks.compare --quick      # about 3 minutes, one pass
    python -m benchmarks.compare              # about 15 minutes, two passes

Each pass starts a fresh daphne per server and channel layer (in-memory, then Redis) and runs
the scenarios of ``benchmarks.scenarios`` against it, servers interleaved so that a noisy
moment on a shared machine does not land on one server only. It prints one table per layer
(median of the passes, with the range when there are several) with the ratios
gqlchannels/Strawberry and gqlchannels/floor, then the targets, met or not, and writes
everything to ``benchmarks/results/compare-<time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.client import PROTOCOLS, TRANSPORT_WS, GraphQLClient
from benchmarks.harness import (
    DEFAULT_REDIS_URL,
    PROJECT_ROOT,
    Profiler,
    Server,
    ServerFailed,
    publisher_for,
)
from benchmarks.loadgen import WorkerPool
from benchmarks.scenarios import (
    Target,
    churn,
    close_clients,
    connect_storm,
    fan_out,
    idle,
)
from benchmarks.servers import SERVERS
from benchmarks.servers.common import TUNED_GC_ENV

RESULTS = Path(__file__).resolve().parent / "results"
LAYERS = ("memory", "redis")
SCENARIOS = ("idle", "churn", "storm", "fanout_max", "fanout_rate")


@dataclass(frozen=True)
class Plan:
    """The size of every scenario, and how many passes run which of them."""

    name: str
    idle_connections: int
    churn_rounds: int
    churn_clients: int
    storm_connections: int
    #: Handshakes in flight at once (daphne listens with a backlog of 50).
    concurrency: int
    fan_subscribers: int
    fan_events: int
    rate_subscribers: int
    rate: float
    rate_seconds: float
    #: Seconds allowed, beyond publishing, for the last delivery of a fan-out.
    drain_seconds: float
    passes: int
    #: Scenarios the passes after the first repeat (churn is long and measures a trend
    #: within one run, so the first pass's is enough).
    repeated: tuple[str, ...]
    workers: int = 2
    pad_bytes: int = 64


#: A smoke-sized comparison: every scenario, both layers, under 3 minutes. Its fan-outs have
#: half the subscribers of the targets', so its target lines are indicative only.
QUICK = Plan(
    name="quick",
    idle_connections=200,
    churn_rounds=3,
    churn_clients=200,
    storm_connections=300,
    concurrency=50,
    fan_subscribers=500,
    fan_events=10,
    rate_subscribers=500,
    rate=10.0,
    rate_seconds=2.0,
    drain_seconds=15.0,
    passes=1,
    repeated=(),
)
FULL = Plan(
    name="full",
    idle_connections=1000,
    churn_rounds=10,
    churn_clients=500,
    storm_connections=1000,
    concurrency=50,
    fan_subscribers=1000,
    fan_events=30,
    rate_subscribers=1000,
    rate=10.0,
    rate_seconds=5.0,
    drain_seconds=30.0,
    passes=2,
    repeated=("idle", "storm", "fanout_max", "fanout_rate"),
)
#: What the test suite runs: a few clients, a few events, seconds in all.
TINY = Plan(
    name="tiny",
    idle_connections=5,
    churn_rounds=2,
    churn_clients=5,
    storm_connections=10,
    concurrency=5,
    fan_subscribers=5,
    fan_events=20,
    rate_subscribers=5,
    rate=20.0,
    rate_seconds=1.0,
    drain_seconds=20.0,
    passes=1,
    repeated=(),
    workers=1,
)
PLANS = {plan.name: plan for plan in (QUICK, FULL, TINY)}

Scenario = Callable[[Target, Plan, "Profiler | None"], Awaitable[dict[str, Any]]]


async def _idle(target: Target, plan: Plan, profiler: Profiler | None) -> dict[str, Any]:
    return await idle(target, plan.idle_connections)


async def _churn(target: Target, plan: Plan, profiler: Profiler | None) -> dict[str, Any]:
    return await churn(target, plan.churn_rounds, plan.churn_clients)


async def _storm(target: Target, plan: Plan, profiler: Profiler | None) -> dict[str, Any]:
    return await connect_storm(target, plan.storm_connections)


async def _fanout_max(target: Target, plan: Plan, profiler: Profiler | None) -> dict[str, Any]:
    # As fast as possible: publishing takes well under a second; the rest is the drain.
    timeout = plan.drain_seconds + plan.fan_events * plan.fan_subscribers / 500
    return await fan_out(target, plan.fan_subscribers, plan.fan_events, None, timeout, profiler)


async def _fanout_rate(target: Target, plan: Plan, profiler: Profiler | None) -> dict[str, Any]:
    events = max(1, round(plan.rate * plan.rate_seconds))
    # A server slower than the rate drains its backlog after publishing stops; the cap
    # leaves it time for about twice the floor's.
    timeout = plan.rate_seconds + plan.drain_seconds + events * plan.rate_subscribers / 1000
    return await fan_out(target, plan.rate_subscribers, events, plan.rate, timeout)


RUNNERS: dict[str, Scenario] = {
    "idle": _idle,
    "churn": _churn,
    "storm": _storm,
    "fanout_max": _fanout_max,
    "fanout_rate": _fanout_rate,
}


async def run_server(
    kind: str,
    layer: str,
    plan: Plan,
    scenarios: tuple[str, ...],
    protocol: str,
    redis_url: str,
    profile_to: Path | None = None,
    say: Callable[[str], None] = print,
    logs: Path = RESULTS / "logs",
) -> dict[str, Any]:
    """Start one server, run ``scenarios`` against it, stop it; the results by scenario.

    A scenario that fails is recorded as ``{"failed": reason}`` and the next one runs (on a
    server cleared of clients), unless the server itself died.
    """
    results: dict[str, Any] = {"server": kind, "layer": layer, "protocol": protocol}
    with Server(kind, layer, logs, redis_url) as server:
        async with publisher_for(server) as publisher, WorkerPool(plan.workers) as pool:
            control = GraphQLClient(server.url, TRANSPORT_WS)
            await control.open()
            target = Target(server, publisher, pool, control, protocol, plan.concurrency)
            target.pad_bytes = plan.pad_bytes
            for name in scenarios:
                began = time.monotonic()
                profiler = None
                if profile_to is not None and name == "fanout_max":
                    profiler = Profiler(server.pid, profile_to)
                try:
                    await target.rebase()
                    outcome = await RUNNERS[name](target, plan, profiler)
                except Exception as exc:
                    outcome = {"failed": f"{type(exc).__name__}: {exc}"}
                    if not server.alive():
                        outcome["failed"] += f" (server died)\n{server.output()[-2000:]}"
                        results[name] = outcome
                        break
                    await pool.all({"cmd": "abort"})
                    await close_clients(target)
                outcome["duration"] = time.monotonic() - began
                results[name] = outcome
                say(f"  {kind:<11} {layer:<6} {name:<11} {brief(name, outcome)}")
            await control.close()
        results["server_log_tail"] = server.output()[-3000:]
    return results


def brief(name: str, outcome: dict[str, Any]) -> str:
    """One line of progress for a finished scenario."""
    if "failed" in outcome:
        return f"FAILED {outcome['failed'].splitlines()[0][:160]}"
    took = f"({outcome['duration']:.0f}s)"
    if name == "idle":
        return (
            f"{outcome['per_connection_bytes'] / 1024:.1f} KB/conn, "
            f"{outcome['per_subscription_bytes'] / 1024:.1f} KB/sub {took}"
        )
    if name == "churn":
        growth = outcome["rss_growth_per_disconnect"]
        return (
            f"left {outcome['live_after_total']}, "
            f"growth {'-' if growth is None else f'{growth:.0f} B'}/disconnect {took}"
        )
    if name == "storm":
        return (
            f"{outcome['connections_per_s']:.0f} conn/s, ack p99 "
            f"{outcome['ack_ms']['p99']:.1f} ms {took}"
        )
    latency = outcome["latency_ms"]
    return (
        f"{outcome['deliveries_per_s']:.0f} deliveries/s, p99 {latency['p99']:.0f} ms, "
        f"lost {outcome['lost']} dup {outcome['duplicates']} reord {outcome['reordered']}"
        f"{' late ' + str(outcome['late']) if outcome['late'] else ''} {took}"
    )


# -- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One row of the table: where its figure is in a scenario's results."""

    label: str
    scenario: str
    path: tuple[str, ...]
    digits: int = 0
    scale: float = 1.0


METRICS = (
    Metric("connect storm: connections/s", "storm", ("connections_per_s",)),
    Metric("connect storm: connections/CPU-s", "storm", ("connections_per_cpu_s",)),
    Metric("connect storm: ack p50 (ms)", "storm", ("ack_ms", "p50"), 1),
    Metric("connect storm: ack p99 (ms)", "storm", ("ack_ms", "p99"), 1),
    Metric("fan-out max: deliveries/s", "fanout_max", ("deliveries_per_s",)),
    Metric("fan-out max: deliveries/CPU-s", "fanout_max", ("deliveries_per_cpu_s",)),
    Metric("fan-out max: latency p50 (ms)", "fanout_max", ("latency_ms", "p50")),
    Metric("fan-out max: latency p99 (ms)", "fanout_max", ("latency_ms", "p99")),
    Metric("fan-out max: latency max (ms)", "fanout_max", ("latency_ms", "max")),
    Metric("fan-out max: lost+dup+reordered", "fanout_max", ("defects",)),
    Metric("fan-out max: late (undelivered at cap)", "fanout_max", ("late",)),
    Metric("fan-out max: server CPU %", "fanout_max", ("server_cpu_pct",)),
    Metric("fan-out max: load generator CPU %", "fanout_max", ("workers_cpu_pct",)),
    Metric("fan-out 10/s: events published/s", "fanout_rate", ("published_per_s",), 1),
    Metric("fan-out 10/s: deliveries/s", "fanout_rate", ("deliveries_per_s",)),
    Metric("fan-out 10/s: deliveries/CPU-s", "fanout_rate", ("deliveries_per_cpu_s",)),
    Metric("fan-out 10/s: latency p50 (ms)", "fanout_rate", ("latency_ms", "p50")),
    Metric("fan-out 10/s: latency p99 (ms)", "fanout_rate", ("latency_ms", "p99")),
    Metric("fan-out 10/s: latency max (ms)", "fanout_rate", ("latency_ms", "max")),
    Metric("fan-out 10/s: lost+dup+reordered", "fanout_rate", ("defects",)),
    Metric("fan-out 10/s: late (undelivered at cap)", "fanout_rate", ("late",)),
    Metric("churn: subscriptions left unfinished", "churn", ("live_after_total",)),
    Metric("churn: seconds until all finished", "churn", ("finally_seconds_max",), 2),
    Metric("polite close: seconds until finished", "idle", ("close_finally_seconds",), 2),
    Metric("churn: RSS growth B/disconnect", "churn", ("rss_growth_per_disconnect",)),
    Metric("idle: RSS KB per connection", "idle", ("per_connection_bytes",), 1, 1 / 1024),
    Metric("idle: RSS KB per subscription", "idle", ("per_subscription_bytes",), 1, 1 / 1024),
    Metric("all: subscriptions never finished", "*", ("unfinished",)),
)


def figure(run: dict[str, Any], metric: Metric) -> float | None:
    """The metric's value in one run, or None if the scenario did not run or failed."""
    if metric.scenario == "*":
        return float(unfinished(run))
    value: Any = run.get(metric.scenario)
    if not isinstance(value, dict) or "failed" in value:
        return None
    if metric.path == ("defects",):
        return float(value["lost"] + value["duplicates"] + value["reordered"])
    for key in metric.path:
        value = value.get(key) if isinstance(value, dict) else None
    return None if value is None else float(value) * metric.scale


def unfinished(run: dict[str, Any]) -> int:
    """Subscriptions whose ``finally`` never ran, over every scenario of one run."""
    total = 0
    for name in SCENARIOS:
        outcome = run.get(name)
        if isinstance(outcome, dict):
            total += int(outcome.get("live_after_close") or 0)
            total += int(outcome.get("live_after_total") or 0)
    return total


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """For each layer, server and metric: the median of the passes, its range, and each value."""
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        cell = table.setdefault(run["layer"], {}).setdefault(run["server"], {})
        for metric in METRICS:
            value = figure(run, metric)
            if value is not None:
                cell.setdefault(metric.label, {"values": []})["values"].append(value)
            elif isinstance(run.get(metric.scenario), dict) and "failed" in run[metric.scenario]:
                cell.setdefault(metric.label, {"values": []})["failed"] = True
    for servers in table.values():
        for metrics in servers.values():
            for entry in metrics.values():
                values = entry["values"]
                if values:
                    entry["median"] = statistics.median(values)
                    entry["min"], entry["max"] = min(values), max(values)
    return table


def _cell(entry: dict[str, Any] | None, digits: int) -> str:
    if not entry or "median" not in entry:
        return "failed" if entry and entry.get("failed") else "-"
    text = f"{entry['median']:,.{digits}f}"
    if len(entry["values"]) > 1:
        text += f" ({entry['min']:,.{digits}f}-{entry['max']:,.{digits}f})"
    return text


def _ratio(mine: dict[str, Any] | None, theirs: dict[str, Any] | None) -> str:
    if not mine or not theirs or "median" not in mine or "median" not in theirs:
        return "-"
    if theirs["median"] == 0:
        return "-"
    return f"{mine['median'] / theirs['median']:.2f}"


def render(summary: dict[str, dict[str, dict[str, Any]]], servers: list[str], passes: int) -> str:
    """The tables, one per layer: median (range over passes), and gqlchannels' ratios."""
    lines: list[str] = []
    width = 38
    columns = [server for server in SERVERS if server in servers]
    ratios = [
        other for other in ("strawberry", "floor") if "gqlchannels" in servers and other in servers
    ]
    for layer, cells in summary.items():
        lines.append("")
        lines.append(
            f"== {'in-memory' if layer == 'memory' else 'Redis'} channel layer "
            f"(median of {passes} pass{'es' if passes > 1 else ''}, range in brackets) =="
        )
        header = f"{'':<{width}}" + "".join(f"{name:>26}" for name in columns)
        header += "".join(f"{'gq/' + other[:5]:>10}" for other in ratios)
        lines.append(header)
        for metric in METRICS:
            entries = {server: cells.get(server, {}).get(metric.label) for server in columns}
            row = f"{metric.label:<{width}}"
            for server in columns:
                row += f"{_cell(entries[server], metric.digits):>26}"
            for other in ratios:
                row += f"{_ratio(entries['gqlchannels'], entries[other]):>10}"
            lines.append(row)
    return "\n".join(lines)


# -- targets ---------------------------------------------------------------------------------


def _median(summary: dict[str, Any], layer: str, server: str, label: str) -> float | None:
    median: float | None = summary.get(layer, {}).get(server, {}).get(label, {}).get("median")
    return median


def _all_values(summary: dict[str, Any], layer: str, server: str, label: str) -> list[float]:
    return list(summary.get(layer, {}).get(server, {}).get(label, {}).get("values", []))


def targets(summary: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    """gqlchannels' targets, each met (True), not met (False) or not measured (None).

    Throughput ratios use the medians; zero-loss and zero-leak targets must hold in every pass.
    """
    found: list[dict[str, Any]] = []

    def add(text: str, met: bool | None, measured: str) -> None:
        found.append({"target": text, "met": met, "measured": measured})

    for layer, factor in (("memory", 5.0), ("redis", 3.0)):
        label = "fan-out max: deliveries/s"
        mine = _median(summary, layer, "gqlchannels", label)
        theirs = _median(summary, layer, "strawberry", label)
        text = (
            f"fan-out {plan.fan_subscribers} subscribers, max rate, {layer}: "
            f">= {factor:g}x Strawberry"
        )
        if mine is None or theirs is None:
            add(text, None, "not measured")
        else:
            add(
                text,
                mine >= factor * theirs,
                f"{mine:,.0f} vs {theirs:,.0f}/s = {mine / theirs:.2f}x",
            )
    for layer in LAYERS:
        p99 = _all_values(summary, layer, "gqlchannels", "fan-out 10/s: latency p99 (ms)")
        defects = [
            lost + late
            for lost, late in zip(
                _all_values(summary, layer, "gqlchannels", "fan-out 10/s: lost+dup+reordered"),
                _all_values(
                    summary, layer, "gqlchannels", "fan-out 10/s: late (undelivered at cap)"
                ),
                strict=True,
            )
        ]
        text = (
            f"{plan.rate_subscribers} subscribers x {plan.rate:g} events/s, {layer}: "
            "p99 < 100 ms, nothing lost or late"
        )
        if not p99 or not defects:
            add(text, None, "not measured")
        else:
            add(
                text,
                max(p99) < 100 and max(defects) == 0,
                f"p99 {', '.join(f'{v:,.0f}' for v in p99)} ms; "
                f"lost+dup+reordered+late {', '.join(f'{v:.0f}' for v in defects)}",
            )
    for layer in LAYERS:
        left = _all_values(summary, layer, "gqlchannels", "all: subscriptions never finished")
        growth = _all_values(summary, layer, "gqlchannels", "churn: RSS growth B/disconnect")
        text = (
            f"churn {plan.churn_rounds} rounds x {plan.churn_clients} abrupt disconnects, "
            f"{layer}: every finally ran (in all scenarios), RSS growth < 1 KB/disconnect "
            "after round 1"
        )
        if not left or not growth:
            add(text, None, "not measured")
        else:
            add(
                text,
                max(left) == 0 and max(growth) < 1024,
                f"never finished {max(left):.0f}; growth "
                f"{', '.join(f'{v:,.0f}' for v in growth)} B",
            )
    for layer in LAYERS:
        label = "idle: RSS KB per connection"
        mine = _median(summary, layer, "gqlchannels", label)
        theirs = _median(summary, layer, "strawberry", label)
        text = f"idle memory per connection, {layer}: no higher than Strawberry's"
        if mine is None or theirs is None:
            add(text, None, "not measured")
        else:
            add(text, mine <= theirs, f"{mine:.1f} KB vs {theirs:.1f} KB")
    return found


def render_targets(found: list[dict[str, Any]]) -> str:
    """The targets as lines of text."""
    mark = {True: "MET    ", False: "NOT MET", None: "n/a    "}
    return "\n".join(f"{mark[t['met']]} {t['target']}: {t['measured']}" for t in found)


# -- the run ---------------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """What the figures depend on: machine, versions, and the code measured."""
    versions: dict[str, str | None] = {}
    for package in (
        "Django", "channels", "daphne", "channels-redis", "redis", "graphql-core",
        "strawberry-graphql", "websockets", "orjson", "Twisted",
    ):  # fmt: skip
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None

    def git(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "versions": versions,
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--", "gqlchannels")),
        "tuned_gc": os.environ.get(TUNED_GC_ENV) == "1",
    }


def redis_answers(url: str) -> str | None:
    """None if Redis answers at ``url``, else why not."""
    try:
        import redis
    except ImportError:
        return "redis-py is not installed"
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        return str(error)
    finally:
        client.close()
    return None


async def compare(
    plan: Plan,
    servers: list[str],
    layers: list[str],
    protocol: str = TRANSPORT_WS,
    redis_url: str = DEFAULT_REDIS_URL,
    profile: tuple[str, ...] = (),
    scenarios: tuple[str, ...] = SCENARIOS,
    say: Callable[[str], None] = print,
    directory: Path = RESULTS,
    profile_suffix: str = ".svg",
) -> dict[str, Any]:
    """Run ``plan`` on every server and layer; the full results (also what goes in the JSON).

    Server logs (and the gqlchannels server's SQLite database) go under ``directory/logs``,
    flame graphs of ``profile``d servers in ``directory``."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    # The code measured, as it was when the run began (a long run may outlive a commit).
    measured = environment()
    runs: list[dict[str, Any]] = []
    began = time.monotonic()
    for number in range(1, plan.passes + 1):
        wanted = scenarios if number == 1 else tuple(s for s in scenarios if s in plan.repeated)
        if not wanted:
            continue
        say(f"pass {number} of {plan.passes}: {', '.join(wanted)}")
        for layer in layers:
            for kind in servers:
                profile_to = None
                if kind in profile and number == 1:
                    profile_to = directory / f"profile-{stamp}-{kind}-{layer}{profile_suffix}"
                try:
                    run = await run_server(
                        kind,
                        layer,
                        plan,
                        wanted,
                        protocol,
                        redis_url,
                        profile_to,
                        say,
                        directory / "logs",
                    )
                except ServerFailed as failure:
                    run = {"server": kind, "layer": layer, "failed": str(failure)}
                    say(f"  {kind:<11} {layer:<6} server failed: {failure}")
                run["pass"] = number
                runs.append(run)
    summary = summarise(runs)
    found = targets(summary, plan)
    return {
        "plan": dataclasses.asdict(plan),
        "protocol": protocol,
        "servers": servers,
        "layers": layers,
        "seconds": time.monotonic() - began,
        "environment": measured,
        "environment_at_end": environment(),
        "stamp": stamp,
        "runs": runs,
        "summary": summary,
        "targets": found,
    }


def write(results: dict[str, Any], path: Path | None = None) -> Path:
    """Save the results as JSON (latencies of each delivery are not kept: summaries are)."""
    path = path or RESULTS / f"compare-{results['stamp']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str))
    return path


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, run the comparison, print the tables, write the JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one pass (~3 min)")
    parser.add_argument("--plan", choices=sorted(PLANS), help="a named plan (overrides --quick)")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated")
    parser.add_argument("--layers", default=",".join(LAYERS), help="memory,redis")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=TRANSPORT_WS)
    parser.add_argument("--passes", type=int, help="override the plan's number of passes")
    parser.add_argument("--workers", type=int, help="load generator processes (default 2)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument(
        "--profile", default="", help="servers to py-spy during the max-rate fan-out (flame graph)"
    )
    parser.add_argument(
        "--profile-raw",
        action="store_true",
        help="write folded stacks (.txt, for benchmarks.profile_summary) instead of an .svg",
    )
    parser.add_argument(
        "--tuned-gc",
        action="store_true",
        help="every server freezes its start-up objects and collects the young generation "
        "every 50,000 allocations (the README's production advice)",
    )
    parser.add_argument("--output", type=Path, help="JSON path (default benchmarks/results/)")
    args = parser.parse_args(argv)
    if args.tuned_gc:
        os.environ[TUNED_GC_ENV] = "1"

    plan = PLANS[args.plan] if args.plan else QUICK if args.quick else FULL
    if args.passes is not None:
        plan = dataclasses.replace(plan, passes=args.passes, repeated=SCENARIOS)
    if args.workers is not None:
        plan = dataclasses.replace(plan, workers=args.workers)
    servers = [name for name in args.servers.split(",") if name]
    layers = [name for name in args.layers.split(",") if name]
    scenarios = tuple(name for name in args.scenarios.split(",") if name)
    for name in servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r}; choose from {', '.join(SERVERS)}")
        missing = [need for need in SERVERS[name].needs if importlib.util.find_spec(need) is None]
        if missing:
            parser.error(
                f"server {name!r} needs {', '.join(missing)}: "
                "pip install -r benchmarks/requirements.txt"
            )
    for name in scenarios:
        if name not in RUNNERS:
            parser.error(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    if "redis" in layers and (problem := redis_answers(args.redis_url)):
        print(f"Redis does not answer at {args.redis_url} ({problem}): skipping the Redis layer")
        layers = [layer for layer in layers if layer != "redis"]

    results = asyncio.run(
        compare(
            plan,
            servers,
            layers,
            args.protocol,
            args.redis_url,
            tuple(name for name in args.profile.split(",") if name),
            scenarios,
            profile_suffix=".txt" if args.profile_raw else ".svg",
        )
    )
    if args.tuned_gc:
        print("Garbage collector tuned in every server (--tuned-gc)")
    print(render(results["summary"], servers, plan.passes))
    print()
    print("Targets (gqlchannels):")
    print(render_targets(results["targets"]))
    path = write(results, args.output)
    print(f"\n{plan.name} run: {results['seconds'] / 60:.1f} min; results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
