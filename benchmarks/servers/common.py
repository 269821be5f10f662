"""What the three servers share: the live-subscription counter, the event shape, batch
publishing, and the HTTP endpoint that publishes from inside the server process.

An event is ``{"seq": int, "sentAt": float, "pad": str}``: ``seq`` lets each client check
loss, duplicates and order, ``sentAt`` (``time.time()`` when it was published) gives the
end-to-end latency, ``pad`` makes its size realistic.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import json
import os
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

#: The channel-layer message type Strawberry's and the floor's subscriptions wait for.
TICK_TYPE = "bench.tick"

#: Set by ``compare --tuned-gc`` for every server alike.
TUNED_GC_ENV = "BENCH_TUNED_GC"
#: Allocations between young collections when tuned (CPython's default is 700).
TUNED_GEN0_THRESHOLD = 50_000

Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


class LiveCounter:
    """Subscriptions started and finished in this process.

    ``live`` is how many started but have not run their ``finally``: after every client has
    gone it must return to zero, or the server leaks subscriptions (and whatever they hold).
    """

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0

    @property
    def live(self) -> int:
        """Subscriptions started whose ``finally`` has not run."""
        return self.started - self.finished


live = LiveCounter()


def tick_group(topic: str) -> str:
    """The group Strawberry's and the floor's subscribers of ``topic`` join (gqlchannels
    names its own groups)."""
    return f"bench.tick.{topic}"


def event(seq: int, pad: str, sent_at: float | None = None) -> dict[str, Any]:
    """One event, stamped ``sent_at`` (default: now)."""
    return {"seq": seq, "sentAt": time.time() if sent_at is None else sent_at, "pad": pad}


async def publish_request(publish: Publish, request: dict[str, Any]) -> dict[str, Any]:
    """``publish_batch`` for one JSON request from the driver (HTTP body or a stdin line)."""
    return await publish_batch(
        publish,
        request["topic"],
        int(request.get("start", 0)),
        int(request.get("count", 1)),
        request.get("rate"),
        int(request.get("pad_bytes", 0)),
        bool(request.get("stamp_schedule", False)),
    )


async def publish_batch(
    publish: Publish,
    topic: str,
    start: int,
    count: int,
    rate: float | None,
    pad_bytes: int,
    stamp_schedule: bool = False,
) -> dict[str, Any]:
    """Publish events ``start`` .. ``start + count - 1`` to ``topic``, at ``rate`` per second
    or, when ``rate`` is None or 0, as fast as the layer takes them.

    The schedule is absolute (event ``i`` leaves at ``t0 + i / rate``), so a slow publish
    call does not slow the whole run down. Each event is stamped with the time it left,
    unless ``stamp_schedule``: then with the time it was due, so that a server too busy to
    publish on time (publishing runs on its loop with the in-memory layer) shows that delay
    in its latencies instead of hiding it (the hostile scenario's witness needs this).
    """
    pad = "x" * pad_bytes
    loop = asyncio.get_running_loop()
    began, wall_began = loop.time(), time.time()
    for index in range(count):
        due = None
        if rate:
            delay = began + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if stamp_schedule:
                due = wall_began + index / rate
        await publish(topic, event(start + index, pad, due))
    return {"published": count, "seconds": loop.time() - began}


_snapshots: list[tracemalloc.Snapshot] = []
#: Frames kept per traced allocation when ``/bench/memory`` starts tracing.
TRACE_FRAMES = 25


def memory_growth(top: int) -> dict[str, Any]:
    """Where Python memory grew since the previous call, by allocating line (a diagnostic:
    call once as a baseline, open connections or attack, call again).

    The first call starts tracing (25 frames deep) unless the server already traces
    (``PYTHONTRACEMALLOC``): tracing from start-up makes Django's imports many times slower,
    and only what is allocated after the baseline matters here.
    """
    if not tracemalloc.is_tracing():
        tracemalloc.start(TRACE_FRAMES)
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    previous = _snapshots[-1] if _snapshots else None
    _snapshots[:] = [snapshot]
    if previous is None:
        return {"baseline": True}
    stats = snapshot.compare_to(previous, "traceback")
    return {
        "total_growth": sum(stat.size_diff for stat in stats),
        "top": [
            {
                "bytes": stat.size_diff,
                "blocks": stat.count_diff,
                "where": [str(frame) for frame in stat.traceback[-6:]],
            }
            for stat in stats[:top]
        ],
    }


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """Where a pending task waits: each coroutine or async generator down its ``await``
    chain (``Task.get_stack`` shows only the outermost frame of a suspended coroutine)."""
    chain: list[str] = []
    awaited: Any = task.get_coro()
    for _ in range(64):
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        following = (
            getattr(awaited, "cr_await", None)
            or getattr(awaited, "ag_await", None)
            or getattr(awaited, "gi_yieldfrom", None)
        )
        if following is None and type(awaited).__name__.startswith("async_generator_a"):
            # asend/athrow objects expose nothing; their async generator is a referent.
            following = next(
                (ref for ref in gc.get_referents(awaited) if hasattr(ref, "ag_frame")), None
            )
        if following is None:
            if awaited is not None and frame is None:
                chain.append(repr(awaited)[:200])
            break
        awaited = following
    return chain


def stuck_tasks(name_contains: str) -> dict[str, Any]:
    """Pending tasks of the server's loop whose await chain mentions ``name_contains``, with
    that chain: a diagnostic for operations whose ``finally`` never ran."""
    tasks = []
    for task in asyncio.all_tasks():
        chain = await_chain(task)
        if name_contains in " ".join(chain) or name_contains in task.get_name():
            tasks.append({"name": task.get_name(), "cancelling": task.cancelling(), "chain": chain})
    return {"count": len(tasks), "tasks": tasks[:20]}


def object_census(top: int) -> dict[str, Any]:
    """Objects the garbage collector tracks, counted by type, then again after a full
    collection, with the process's RSS each time: whether what departed connections left
    behind is garbage in reference cycles (a full collection frees it) or still referenced
    (a leak, or a cache). A diagnostic of the hostile scenario (``--census``)."""

    def census() -> dict[str, Any]:
        counts = collections.Counter(
            f"{type(item).__module__}.{type(item).__qualname__}" for item in gc.get_objects()
        )
        with open("/proc/self/status") as status:
            rss = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS"))
        return {"objects": sum(counts.values()), "rss": rss, "top": counts.most_common(top)}

    before = census()
    collected = gc.collect()
    return {"before": before, "collected": collected, "after": census()}


def apply_gc_policy() -> None:
    """Tune the garbage collector as the README's production section recommends, when the
    driver asks (``--tuned-gc``); call it once the server has imported everything.

    Start-up objects are frozen out of every later collection, and the young generation is
    collected every 50,000 allocations instead of 700, so a short-lived object (a frame, an
    event in flight) rarely lives long enough to be promoted, and full collections, which
    pause the whole process to scan every connection's objects, come far less often.
    """
    if os.environ.get(TUNED_GC_ENV) == "1":
        gc.freeze()
        gc.set_threshold(TUNED_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def control_app(publish: Publish) -> ASGIApp:
    """An ASGI HTTP app: ``POST /bench/publish`` with a JSON body of ``publish_batch``'s
    arguments publishes the batch and answers when it is done; ``GET /bench/memory``,
    ``GET /bench/objects`` and ``GET /bench/tasks?<text>`` are the diagnostics of
    ``memory_growth``, ``object_census`` and ``stuck_tasks``."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        status, answer = 404, {"error": "not found"}
        if scope["path"] == "/bench/publish" and scope["method"] == "POST":
            request = json.loads(body or b"{}")
            answer = await publish_request(publish, request)
            status = 200
        elif scope["path"] == "/bench/tasks":
            answer = stuck_tasks(scope.get("query_string", b"").decode() or "gqlchannels-op")
            status = 200
        elif scope["path"] == "/bench/memory":
            answer, status = memory_growth(int(scope.get("query_string", b"").decode() or 30)), 200
        elif scope["path"] == "/bench/objects":
            answer, status = object_census(int(scope.get("query_string", b"").decode() or 30)), 200
        encoded = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(encoded)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": encoded})

    return app
