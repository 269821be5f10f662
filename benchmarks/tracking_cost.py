"""What the live registry costs: the same workload on the demo with tracking on, then off.

Each configuration runs in its own ``daphne`` process (``GQLCHANNELS_TRACKING=1`` / ``0``,
everything else equal, default timings, SQLite in a fresh directory). ``--clients`` clients
loop for ``--seconds``: connect (graphql-transport-ws), open one long-lived
``messageAdded`` subscription (its row holds a topic), run N short operations in turn (a
``countdown(from: 0)`` subscription and a ``{ __typename }`` query, each answered by
``next`` + ``complete``), and close. Two workloads:

- ``churn`` (N = 20): connections live a fraction of a second, shorter than one flush
  interval, so no row is ever written; what is measured is the bookkeeping on the hot path
  (signal receivers, per-operation records);
- ``held`` (N = 300): connections live a few seconds, so each connection and its held
  subscription is inserted and later deleted, while the short operations come and go
  unwritten; this adds the flusher's database work (SQLite, in the same process).

Printed per configuration: frames/s received by the clients, connections/s, the server's
CPU seconds per 10,000 frames, and the registry's rows halfway through (proof that tracking
was on or off). Runs alternate off/on and the median of ``--rounds`` is reported.

    python benchmarks/tracking_cost.py                    # about 3 minutes
    python benchmarks/tracking_cost.py --workloads held --clients 40 --rounds 5

It is a measurement, not a test: nothing asserts, and the numbers depend on the machine
(and on whatever else runs on it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import websockets  # noqa: E402

from tests.live_server import ORIGIN, LiveServer, running_daphne  # noqa: E402

#: Seconds any single wait on the server may take before the run is declared broken.
TIMEOUT = 10.0


@dataclass
class Result:
    """One run of one configuration."""

    tracking: bool
    seconds: float
    frames: int
    connections: int
    server_cpu: float
    #: Connection rows in the registry halfway through the run.
    rows_midway: int

    @property
    def frames_per_second(self) -> float:
        """Frames the clients received per second."""
        return self.frames / self.seconds

    @property
    def connections_per_second(self) -> float:
        """Connections opened and closed per second."""
        return self.connections / self.seconds

    @property
    def cpu_per_10k_frames(self) -> float:
        """Server CPU seconds per 10,000 frames received."""
        return self.server_cpu / max(self.frames, 1) * 10_000


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class Counter:
    """Frames and connections all clients of one run have seen."""

    def __init__(self) -> None:
        self.frames = 0
        self.connections = 0


async def frame(ws: Any) -> dict[str, Any]:
    """The next frame other than a server ping (answered)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if message.get("type") != "ping":
            return message
        await ws.send(json.dumps({"type": "pong"}))


async def one_connection(url: str, index: int, operations: int, counter: Counter) -> None:
    """Connect, hold one subscription, run ``operations`` short operations, close."""
    async with websockets.connect(
        url,
        subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
        additional_headers={"Origin": ORIGIN},
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        assert (await frame(ws))["type"] == "connection_ack"
        counter.frames += 1
        room = f"bench-{index % 10}"
        held = f'subscription {{ messageAdded(room: "{room}") {{ text }} }}'
        await ws.send(json.dumps({"type": "subscribe", "id": "held", "payload": {"query": held}}))
        for number in range(operations):
            query = "subscription { countdown(from: 0) }" if number % 2 else "{ __typename }"
            operation_id = f"op{number}"
            await ws.send(
                json.dumps({"type": "subscribe", "id": operation_id, "payload": {"query": query}})
            )
            while True:
                message = await frame(ws)
                counter.frames += 1
                if message.get("id") == operation_id and message["type"] == "complete":
                    break
                assert message.get("type") in ("next", "complete"), message
    counter.connections += 1


async def client_loop(
    url: str, index: int, deadline: float, operations: int, counter: Counter
) -> None:
    """Open connection after connection until ``deadline``."""
    while time.monotonic() < deadline:
        await one_connection(url, index, operations, counter)


async def drive(
    server: LiveServer, clients: int, seconds: float, operations: int
) -> tuple[int, int, float, int]:
    """Run the workload against ``server``; frames, connections, elapsed seconds, and the
    registry's connection rows halfway through (proof that tracking was on, or off)."""
    counter = Counter()
    # Warm-up: documents parsed and cached, database file created, hub channel made.
    await one_connection(server.ws_url, 0, operations, Counter())
    start = time.monotonic()
    deadline = start + seconds
    workload = asyncio.gather(
        *(
            client_loop(server.ws_url, index, deadline, operations, counter)
            for index in range(clients)
        )
    )
    await asyncio.sleep(seconds / 2)
    report = await asyncio.to_thread(server.manage, "gqlchannels_audit", "--json")
    await workload
    rows = json.loads(report)["totals"]["connections"]
    return counter.frames, counter.connections, time.monotonic() - start, rows


def run(tracking: bool, clients: int, seconds: float, operations: int) -> Result:
    """One daphne with tracking on or off, the workload against it."""
    env = {
        "GQLCHANNELS_TRACKING": "1" if tracking else "0",
        # Production-like timings (the defaults), spelled out so the comparison is explicit.
        "GQLCHANNELS_TRACKING_FLUSH_INTERVAL": "1",
        "GQLCHANNELS_HEARTBEAT_INTERVAL": "15",
    }
    with tempfile.TemporaryDirectory(prefix="gqlc-tracking-cost-") as directory:
        with running_daphne(Path(directory), env=env) as server:
            cpu_before = cpu_seconds(server.process.pid)
            frames, connections, elapsed, rows = asyncio.run(
                drive(server, clients, seconds, operations)
            )
            cpu = cpu_seconds(server.process.pid) - cpu_before
    return Result(tracking, elapsed, frames, connections, cpu, rows)


class _FakeConsumer:
    """The sender of the signals (the receivers read only the records and ids they carry)."""


def hot_path(operations: int = 100_000) -> None:
    """In-process: what the signals of one operation (start + finish) cost with the
    tracking receivers connected and without, in microseconds. This is all tracking adds
    on a consumer's path; the writes happen later, in the flusher."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
    import django

    django.setup()
    from gqlchannels import signals, tracking
    from gqlchannels.context import GraphQLWSContext
    from gqlchannels.execution import OperationRequest

    async def timed() -> dict[str, float]:
        consumer = _FakeConsumer()
        request = OperationRequest("{ __typename }")
        context = GraphQLWSContext({}, {}, consumer, "1")
        opened = tracking.ConnectionRecord.of({}, "bench", "", "graphql-transport-ws")
        costs = {}
        for label in ("on", "off"):
            if label == "off":
                tracking.disconnect()
            signals.connection_opened.send(sender=_FakeConsumer, consumer=consumer, record=opened)
            start = time.perf_counter()
            for _ in range(operations):
                # The record is made per operation, as the consumer does (redaction included).
                record = tracking.OperationRecord.of("bench", "1", request, "query", "")
                signals.operation_started.send(
                    sender=_FakeConsumer,
                    consumer=consumer,
                    operation_id="1",
                    request=request,
                    context=context,
                    record=record,
                )
                signals.operation_finished.send(
                    sender=_FakeConsumer, consumer=consumer, connection_id="bench", operation_id="1"
                )
            costs[label] = (time.perf_counter() - start) / operations * 1e6
            signals.connection_closed.send(
                sender=_FakeConsumer, consumer=consumer, connection_id="bench"
            )
        tracker = tracking.loop_tracker()
        if tracker is not None:
            await asyncio.wait_for(tracker.wait_stopped(), TIMEOUT)
        tracking.connect()
        return costs

    costs = asyncio.run(timed())
    print(
        f"hot path, per operation (start + finish signals, {operations:,} in one process): "
        f"{costs['on']:.2f} us with tracking, {costs['off']:.2f} us without"
    )


#: Short operations per connection, per workload.
WORKLOADS = {"churn": 20, "held": 300}


def measure(workload: str, clients: int, seconds: float, rounds: int) -> None:
    """Run ``rounds`` alternating off/on runs of ``workload``; print each and the medians."""
    operations = WORKLOADS[workload]
    results: dict[bool, list[Result]] = {False: [], True: []}
    for round_number in range(1, rounds + 1):
        for tracking in (False, True):
            result = run(tracking, clients, seconds, operations)
            results[tracking].append(result)
            print(
                f"{workload} round {round_number} tracking {'on ' if tracking else 'off'}: "
                f"{result.frames_per_second:8.0f} frames/s, "
                f"{result.connections_per_second:6.1f} connections/s, "
                f"{result.cpu_per_10k_frames:5.2f} server CPU s per 10k frames, "
                f"{result.rows_midway} registry rows midway",
                file=sys.stderr,
            )
    print(
        f"\n{workload}: {clients} clients x {seconds:g}s, {operations} short operations per "
        f"connection, median of {rounds} rounds (cpus: {os.cpu_count()})"
    )
    print(
        f"{'tracking':<10}{'frames/s':>12}{'connections/s':>16}{'CPU s/10k frames':>20}"
        f"{'rows midway':>14}"
    )
    medians = {}
    for tracking in (False, True):
        runs = results[tracking]
        medians[tracking] = statistics.median(r.frames_per_second for r in runs)
        print(
            f"{'on' if tracking else 'off':<10}{medians[tracking]:>12.0f}"
            f"{statistics.median(r.connections_per_second for r in runs):>16.1f}"
            f"{statistics.median(r.cpu_per_10k_frames for r in runs):>20.2f}"
            f"{statistics.median(r.rows_midway for r in runs):>14.0f}"
        )
    change = (medians[True] / medians[False] - 1) * 100
    print(f"frames/s with tracking on: {change:+.1f}% of tracking off")


def main() -> None:
    """Parse the options and measure each workload."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="churn,held", help="comma-separated: churn, held")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    hot_path()
    for workload in options.workloads.split(","):
        if workload not in WORKLOADS:
            parser.error(f"unknown workload {workload!r}: choose from {', '.join(WORKLOADS)}")
        measure(workload, options.clients, options.seconds, options.rounds)


if __name__ == "__main__":
    main()
