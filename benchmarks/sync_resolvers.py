"""How long a wide query of plain sync resolvers takes, batched into the database thread
versus run inline on the loop (issue 11's target: within 2x of inline).

Run: ``python -m benchmarks.sync_resolvers [--fields 4999] [--rounds 5]``. Prints the median
and best of each way over the rounds, in milliseconds, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any


def main() -> None:
    """Time the query both ways and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fields", type=int, default=4999)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_project.settings")
    import django

    django.setup()
    from graphql import GraphQLField, GraphQLObjectType, GraphQLSchema, GraphQLString

    from gqlchannels.execution import Executor, OperationRequest

    schema = GraphQLSchema(
        GraphQLObjectType("Query", {"hop": GraphQLField(GraphQLString, resolve=lambda *_: "x")})
    )
    query = "{ " + " ".join(f"f{n}: hop" for n in range(options.fields)) + " }"

    async def once(executor: Executor) -> float:
        started = time.perf_counter()
        async for _result in executor.run(OperationRequest(query), context=None):
            pass
        return (time.perf_counter() - started) * 1000

    async def measure() -> dict[str, list[float]]:
        unlimited: dict[str, Any] = {"validation_rules": ()}  # 4,999 aliases, on purpose
        ways = {
            "inline": Executor(schema, offload_sync=False, **unlimited),
            "batched": Executor(schema, **unlimited),
        }
        for executor in ways.values():
            await once(executor)  # parse, validate and cache the document first
        return {name: [await once(ex) for _ in range(options.rounds)] for name, ex in ways.items()}

    timings = asyncio.run(measure())
    for name, values in timings.items():
        print(f"{name:8s} median {statistics.median(values):8.1f} ms  best {min(values):8.1f} ms")
    ratio = statistics.median(timings["batched"]) / statistics.median(timings["inline"])
    print(f"batched / inline: {ratio:.2f}x ({options.fields} sync fields)")


if __name__ == "__main__":
    main()
