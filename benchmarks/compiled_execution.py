"""What one subscription event costs to execute: graphql-core's interpreter against the
compiled closures (``gqlchannels.compiled``), for the benchmark schema's ``tick``.

The subscription is built once as the server builds it (graphql-core's ``Executor.build``
with the operation's BatchedSyncResolvers), then ``--events`` events of the benchmark's
shape (``{"seq", "sentAt", "pad"}``) are executed one by one each way, ``--repeats`` times;
printed per way: the best and the median microseconds per event, and the ratio. Without
shared results a server pays this once per subscriber and event.

    python -m benchmarks.compiled_execution
    python -m benchmarks.compiled_execution --events 50000 --repeats 7

It is a measurement, not a test: nothing asserts, and the numbers depend on the machine
(and on what else it runs).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import graphql
from graphql import parse

from benchmarks.client import TICK_SUBSCRIPTION
from benchmarks.servers.gqlchannels_schema import unshared_schema
from gqlchannels.compiled import CompiledEvents, CompiledPlans
from gqlchannels.execution import _per_event_executor
from gqlchannels.resolvers import BatchedSyncResolvers


def executors() -> dict[str, Callable[[Any], Any]]:
    """The ``tick`` subscription's event executor each way."""
    document = parse(TICK_SUBSCRIPTION)
    built = graphql.Executor.build(
        unshared_schema,
        document,
        None,
        None,
        {"topic": "bench"},
        None,
        middleware=[BatchedSyncResolvers()],
    )
    assert not isinstance(built, list), built

    def interpreted(event: Any) -> Any:
        return graphql.execute_subscription_event(_per_event_executor(built, event))

    compiled = CompiledPlans(unshared_schema, offload_sync=True).event_executor(
        built, document, None, '{"topic":"bench"}', interpreted
    )
    assert isinstance(compiled, CompiledEvents), "the tick subscription was not compiled"
    return {"graphql-core": interpreted, "compiled": compiled}


def per_event(execute: Callable[[Any], Any], events: list[dict[str, Any]]) -> float:
    """Microseconds per event for executing ``events`` one by one."""
    started = time.perf_counter()
    for event in events:
        execute(event)
    return (time.perf_counter() - started) / len(events) * 1e6


def main() -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    events = [{"seq": seq, "sentAt": time.time(), "pad": "x" * 40} for seq in range(options.events)]
    ways = executors()
    first = {name: execute(events[0]) for name, execute in ways.items()}
    assert first["compiled"] == first["graphql-core"], first
    timings: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(options.repeats):
        for name, execute in ways.items():  # alternated, so drift hits both alike
            timings[name].append(per_event(execute, events))
    for name, figures in timings.items():
        print(
            f"{name:>12}: best {min(figures):6.2f} us/event, "
            f"median {statistics.median(figures):6.2f} us/event"
        )
    ratio = statistics.median(timings["graphql-core"]) / statistics.median(timings["compiled"])
    runs = f"{options.events} events x {options.repeats}"
    print(f"compiled is {ratio:.1f}x as fast (medians, {runs})")


if __name__ == "__main__":
    main()
